"""A lean transport for the hot task-runner calls: botocore's SigV4 signer, JSON over aiohttp.

botocore's generic call path (model-driven serialisation, validation, event hooks, retry handler,
response parsing) costs about 0.9 ms of CPU per call, three times what a polling worker spends on
everything else. The calls a runner makes thousands of times (poll, progress, status, heartbeat)
have fixed, tiny JSON shapes, so this module sends them directly:

- credentials come from the aiobotocore session (``get_frozen_credentials()`` on every call, so
  refreshable credentials such as an instance role's are refreshed as aiobotocore would);
- region and endpoint come from an aiobotocore client created once by the caller;
- each request is signed as botocore's ``SigV4Auth`` signs it, byte for byte
  (``pipeworker.services._sigv4``: the fixed parts once per transport, the key once a day);
- each *profile* (polls, reports) has its own aiohttp session, connection pool and timeouts, so
  long polls can never take the connections progress reports need.

A non-2xx answer raises :class:`ErrorAnswer` with the code and message parsed the way botocore
parses JSON protocol errors; the service module maps it with the same table as botocore's
``ClientError``. So does a 2xx answer that carries ``__type``: an error with the wrong status is
still an error (a SetTaskStatus must not be taken as landed on its word). A 2xx body that is not
a JSON object raises :class:`~pipeworker.services.base.MalformedAnswer`, and so does any answer
longer than its profile's ``max_answer_bytes``: the body is read in bounded pieces and the
connection dropped at the cap, so a hostile or broken peer cannot make the runner buffer without
limit. Credentials and the Authorization header are never logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from pipeworker.services._sigv4 import FastSigner
from pipeworker.services.base import MalformedAnswer

__all__ = ["ErrorAnswer", "Profile", "SignedTransport", "parse_error"]

# As botocore serialises (json.dumps, ensure_ascii on): non-ASCII text goes \u-escaped, so a lone
# surrogate in a result or a message is sent as botocore would send it instead of failing to
# encode as UTF-8, which lost the status.
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads


@dataclass(frozen=True, slots=True)
class Profile:
    """How one kind of call is sent: its connection pool, its timeouts (seconds) and the
    largest answer it reads (bytes, after decompression; a longer one is a MalformedAnswer)."""

    pool: int
    read_timeout: float
    connect_timeout: float = 10.0
    max_answer_bytes: int = 1 << 20


class ErrorAnswer(Exception):
    """The service answered with an error: HTTP *status*, error *code* and *message*."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status = status
        self.code = code
        self.message = message


def parse_error(status: int, body: bytes, headers: Mapping[str, str]) -> ErrorAnswer:
    """An error answer of the AWS JSON protocols, read as botocore reads it.

    The code is ``__type`` after its last ``#`` (or the ``x-amzn-ErrorType`` header before its
    first ``:``), else the HTTP status; the message is ``message`` or ``Message``.
    """
    try:
        document = _loads(body) if body else {}
    except (ValueError, RecursionError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    code = str(document.get("__type") or "")
    if not code:
        code = str(headers.get("x-amzn-ErrorType", "")).split(":", 1)[0]
    code = code.rsplit("#", 1)[-1] or str(status)
    message = document.get("message") or document.get("Message") or ""
    return ErrorAnswer(status, code, str(message))


class SignedTransport:
    """Signed JSON calls to one AWS JSON-protocol service, one aiohttp session per profile.

    Args:
        credentials: aiobotocore credentials (``await session.get_credentials()``).
        region: the region requests are signed for.
        endpoint_url: where requests go (``client.meta.endpoint_url``).
        signing_name: SigV4 service name (``"datapipeline"``).
        target_prefix: the ``X-Amz-Target`` prefix (``"DataPipeline"``).
        content_type: ``application/x-amz-json-1.1`` or ``-1.0``.
        profiles: the call profiles by name; :meth:`call` names one.
        user_agent: sent with every request.
    """

    def __init__(
        self,
        *,
        credentials: Any,
        region: str,
        endpoint_url: str,
        signing_name: str,
        target_prefix: str,
        content_type: str,
        profiles: Mapping[str, Profile],
        user_agent: str = "pipeworker",
    ) -> None:
        self._credentials = credentials
        self._signing_name = signing_name
        self._url = endpoint_url.rstrip("/") + "/"
        self._signer = FastSigner(
            url=self._url, signing_name=signing_name, region=region, content_type=content_type
        )
        self._prefix = target_prefix + "."
        # HTTPS_PROXY, HTTP_PROXY and NO_PROXY, as botocore honours them: read once here, since
        # aiohttp's trust_env reads them (and ~/.netrc) again on every request, which tripled
        # the CPU a task costs.
        try:
            proxy, self._proxy_auth = get_env_proxy_for_url(URL(self._url))
            self._proxy: URL | None = proxy
        except LookupError:
            self._proxy, self._proxy_auth = None, None
        self._user_agent = user_agent
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._limits = {name: profile.max_answer_bytes for name, profile in profiles.items()}
        for name, profile in profiles.items():
            connector = aiohttp.TCPConnector(limit=profile.pool, limit_per_host=profile.pool)
            timeout = aiohttp.ClientTimeout(
                total=None, connect=profile.connect_timeout, sock_read=profile.read_timeout
            )
            self._sessions[name] = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                skip_auto_headers=("User-Agent",),
                raise_for_status=False,
            )

    def __repr__(self) -> str:
        return f"<SignedTransport {self._signing_name} {self._url} profiles={list(self._sessions)}>"

    async def close(self) -> None:
        """Close every session and its connections."""
        for session in self._sessions.values():
            await session.close()

    async def call(self, profile: str, operation: str, params: Mapping[str, Any]) -> Any:
        """Send *operation* with *params*; return the decoded answer.

        Raises:
            ErrorAnswer: the service answered with an error.
            MalformedAnswer: a 2xx answer that is not a JSON object, or an answer over the cap.
            aiohttp.ClientError, TimeoutError: the request did not get an answer.
        """
        body = _dumps(params).encode()
        frozen = await self._credentials.get_frozen_credentials()
        headers = self._signer.headers(frozen, self._prefix + operation, body)
        headers["User-Agent"] = self._user_agent
        async with self._sessions[profile].post(
            self._url, data=body, headers=headers, proxy=self._proxy, proxy_auth=self._proxy_auth
        ) as response:
            raw = await _read(response, self._limits[profile])
            status = response.status
            if status >= 300:
                raise parse_error(status, raw, response.headers)
        if not raw:
            return {}
        try:
            answer = _loads(raw)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise MalformedAnswer(f"HTTP {status} answer is not JSON ({exc})") from None
        if type(answer) is not dict:
            raise MalformedAnswer(f"HTTP {status} answer is a JSON {type(answer).__name__}")
        if "__type" in answer:
            raise parse_error(status, raw, response.headers)
        return answer


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of *response*, or MalformedAnswer as soon as it exceeds *limit* bytes.

    Leaving the response unread closes its connection, so the rest is never received.
    """
    length = response.content_length
    if length is not None and length > limit:
        raise MalformedAnswer(
            f"answer of {length} bytes is over the {limit}-byte cap", code="ResponseTooLarge"
        )
    if length is not None and "Content-Encoding" not in response.headers:
        return await response.read()  # the usual answer: its length is known and within the cap
    # Chunked or compressed: the length is known only once read, so read it piece by piece.
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(1 << 16):
        size += len(chunk)
        if size > limit:
            raise MalformedAnswer(f"answer over the {limit}-byte cap", code="ResponseTooLarge")
        chunks.append(chunk)
    return b"".join(chunks)
