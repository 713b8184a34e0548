"""SigV4 verification for the local service, off by default.

With ``LocalConfig(verify_signatures=True, credentials={access_key: secret})`` every request must
carry an ``Authorization: AWS4-HMAC-SHA256 ...`` header signed with one of the configured keys,
so a runner with a wrong secret fails locally the way it would on AWS. The signature is
recomputed with botocore's own signer from the headers the client says it signed; the answers
are the errors AWS JSON services give:

- no Authorization header: ``MissingAuthenticationTokenException`` (HTTP 403);
- a header that is not a complete SigV4 header: ``IncompleteSignatureException`` (400);
- an access key that is not configured: ``UnrecognizedClientException`` (400);
- a wrong signature, or a request dated outside the 5-minute skew window:
  ``InvalidSignatureException`` (400).

Messages never contain the secret or the expected signature.
"""

from __future__ import annotations

import datetime
import hmac
import re
from collections.abc import Mapping

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pipeworker.local._errors import COMMON, ApiError

__all__ = ["CLOCK_SKEW", "SignatureVerifier"]

CLOCK_SKEW = datetime.timedelta(minutes=5)
"""How far a request's X-Amz-Date may be from the service's clock, as on AWS."""

ALGORITHM = "AWS4-HMAC-SHA256"
_PART = re.compile(r"\s*(Credential|SignedHeaders|Signature)=([^,\s]*)\s*")


def _error(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(code, message, status=status, namespace=COMMON)


class SignatureVerifier:
    """Checks SigV4 ``Authorization`` headers against configured credentials.

    Args:
        credentials: secret access key by access key id.
        service: the signing name requests must be scoped to (``datapipeline``).
    """

    def __init__(self, credentials: Mapping[str, str], service: str = "datapipeline") -> None:
        self._credentials = dict(credentials)
        self._service = service

    def verify(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime.datetime | None = None,
        service: str | None = None,
    ) -> None:
        """Raise the AWS error for a request that is not signed with a configured key.

        Args:
            method: the HTTP method.
            url: the URL as the client addressed it (``http://<Host header><path and query>``).
            headers: the request's headers (case-insensitive lookup is done here).
            body: the raw body.
            now: the service's clock (UTC); the current time by default.
            service: the signing name this request must be scoped to (``swf`` for SWF's calls);
                the verifier's own by default.
        """
        expected = service or self._service
        lowered = {name.lower(): value for name, value in headers.items()}
        authorization = lowered.get("authorization")
        if not authorization:
            raise _error(
                "MissingAuthenticationTokenException", "Missing Authentication Token", status=403
            )
        scheme, _, rest = authorization.partition(" ")
        parts: dict[str, str] = {match[1]: match[2] for match in _PART.finditer(rest)}
        missing = [
            name for name in ("Credential", "SignedHeaders", "Signature") if not parts.get(name)
        ]
        if scheme != ALGORITHM or missing:
            raise _error(
                "IncompleteSignatureException",
                f"Authorization header requires the {ALGORITHM} scheme with Credential, "
                f"SignedHeaders and Signature (missing: {', '.join(missing) or 'the scheme'})",
            )
        scope = parts["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise _error(
                "IncompleteSignatureException",
                "Credential must have the form <key>/<date>/<region>/<service>/aws4_request",
            )
        access_key, day, region, service, _ = scope
        secret = self._credentials.get(access_key)
        if secret is None:
            raise _error(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if service != expected:
            raise _error(
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{expected}'.",
            )
        stamp = lowered.get("x-amz-date", "")
        try:
            signed_at = datetime.datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(
                tzinfo=datetime.UTC
            )
        except ValueError:
            raise _error(
                "IncompleteSignatureException",
                "Authorization header requires an X-Amz-Date header (yyyyMMdd'T'HHmmss'Z')",
            ) from None
        now = now or datetime.datetime.now(datetime.UTC)
        if abs(now - signed_at) > CLOCK_SKEW:
            raise _error(
                "InvalidSignatureException",
                f"Signature expired: {stamp} is now earlier or later than "
                f"{(now - CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} .. "
                f"{(now + CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)}",
            )
        if day != stamp[:8]:
            raise _error(
                "InvalidSignatureException",
                "Credential should be scoped to a valid date matching X-Amz-Date.",
            )
        signed = parts["SignedHeaders"].split(";")
        absent = [name for name in signed if name not in lowered]
        if absent or "host" not in signed:
            raise _error(
                "IncompleteSignatureException",
                "SignedHeaders must include host and only headers present in the request "
                f"(absent: {', '.join(absent) or 'host'})",
            )
        # Rebuild the request the client signed: the same method, URL, body and signed headers.
        request = AWSRequest(
            method=method, url=url, data=body, headers={name: lowered[name] for name in signed}
        )
        request.context["timestamp"] = stamp
        signer = SigV4Auth(Credentials(access_key, secret), service, region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, parts["Signature"]):
            raise _error(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method.",
            )
