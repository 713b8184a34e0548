"""SigV4 for the lean transport's fixed request shape, byte for byte what botocore signs.

botocore's ``SigV4Auth.add_auth`` is general: it parses the URL, copies and normalises every
header and derives the signing key (four HMACs) on every request. The lean transport always sends
the same shape (``POST`` to one URL, ``Content-Type`` and ``X-Amz-Target``, a JSON body), so the
parts that never change are computed once per transport (canonical URI, host, header names), and
the signing key once per UTC day, region and service, as AWS allows
(https://docs.aws.amazon.com/general/latest/gr/sigv4-calculate-signature.html). The credentials
are read on every call, so refreshed credentials are used as soon as they are refreshed.

``tests/services/test_sigv4.py`` checks every header against botocore's own signer over
randomised requests, and the local service's ``--verify-signatures`` checks them on the wire.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.utils import normalize_url_path

__all__ = ["FastSigner"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _host(url: str) -> str:
    # As botocore derives the Host it signs: lower case, IPv6 in brackets, no default port.
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _trim(value: str) -> str:
    return " ".join(value.split())


class FastSigner:
    """Signs the lean transport's requests to one URL for one service and region.

    Args:
        url: where every request goes.
        signing_name: the SigV4 service name (``"datapipeline"``, ``"swf"``, ``"states"``).
        region: the region requests are signed for.
        content_type: the ``Content-Type`` every request carries.
    """

    def __init__(self, *, url: str, signing_name: str, region: str, content_type: str) -> None:
        parts = urlsplit(url)
        if parts.query:
            raise ValueError(f"the lean transport signs URLs without a query, not {url!r}")
        self._uri = quote(normalize_url_path(parts.path), safe="/~")
        self._host = _host(url)
        self._signing_name = signing_name
        self._region = region
        self._content_type = _trim(content_type)
        self._content_type_raw = content_type
        self._key: tuple[str, str, bytes] | None = None  # (secret, date, signing key)

    def _signing_key(self, secret: str, date: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret and cached[1] == date:
            return cached[2]
        key = _hmac(f"AWS4{secret}".encode(), date)
        key = _hmac(key, self._region)
        key = _hmac(key, self._signing_name)
        key = _hmac(key, "aws4_request")
        self._key = (secret, date, key)
        return key

    def headers(
        self,
        credentials: Any,
        target: str,
        body: bytes,
        now: datetime.datetime | None = None,
    ) -> dict[str, str]:
        """The request's headers, ``Authorization`` included, signed at *now* (UTC).

        *credentials* are botocore frozen credentials (``access_key``, ``secret_key``,
        ``token``).
        """
        moment = now or datetime.datetime.now(datetime.UTC)
        timestamp = moment.strftime("%Y%m%dT%H%M%SZ")
        date = timestamp[:8]
        token = credentials.token
        signed = {
            "content-type": self._content_type,
            "host": self._host,
            "x-amz-date": timestamp,
            "x-amz-target": _trim(target),
        }
        if token:
            signed["x-amz-security-token"] = _trim(token)
        names = ";".join(sorted(signed))
        canonical = "\n".join(
            (
                "POST",
                self._uri,
                "",
                "".join(f"{name}:{signed[name]}\n" for name in sorted(signed)),
                names,
                hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256,
            )
        )
        scope = f"{date}/{self._region}/{self._signing_name}/aws4_request"
        string_to_sign = "\n".join(
            (_ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest())
        )
        signature = hmac.new(
            self._signing_key(credentials.secret_key, date),
            string_to_sign.encode("utf-8"),
            hashlib.sha256,
        ).hexdigest()
        headers = {
            "Content-Type": self._content_type_raw,
            "X-Amz-Target": target,
            "X-Amz-Date": timestamp,
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        headers["Authorization"] = (
            f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        return headers
