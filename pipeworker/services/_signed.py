"""A lean transport for the hot task-runner calls: botocore's SigV4 signer, JSON over aiohttp.

botocore's generic call path (model-driven serialisation, validation, event hooks, retry handler,
response parsing) costs about 0.9 ms of CPU per call, three times what a polling worker spends on
everything else. The calls a runner makes thousands of times (poll, progress, status, heartbeat)
have fixed, tiny JSON shapes, so this module sends them directly:

- credentials come from the aiobotocore session (``get_frozen_credentials()`` on every call, so
  refreshable credentials such as an instance role's are refreshed as aiobotocore would);
- region and endpoint come from an aiobotocore client created once by the caller;
- each request is signed by botocore's own ``SigV4Auth``;
- each *profile* (polls, reports) has its own aiohttp session, connection pool and timeouts, so
  long polls can never take the connections progress reports need.

A non-2xx answer raises :class:`ErrorAnswer` with the code and message parsed the way botocore
parses JSON protocol errors; the service module maps it with the same table as botocore's
``ClientError``. Credentials and the Authorization header are never logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

__all__ = ["ErrorAnswer", "Profile", "SignedTransport", "parse_error"]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


@dataclass(frozen=True, slots=True)
class Profile:
    """How one kind of call is sent: its connection pool and its timeouts (seconds)."""

    pool: int
    read_timeout: float
    connect_timeout: float = 10.0


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
    except ValueError:
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
        self._region = region
        self._signing_name = signing_name
        self._url = endpoint_url.rstrip("/") + "/"
        self._prefix = target_prefix + "."
        self._content_type = content_type
        self._user_agent = user_agent
        self._sessions: dict[str, aiohttp.ClientSession] = {}
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
            aiohttp.ClientError, TimeoutError: the request did not get an answer.
        """
        body = _dumps(params).encode()
        frozen = await self._credentials.get_frozen_credentials()
        request = AWSRequest(
            method="POST",
            url=self._url,
            data=body,
            headers={
                "Content-Type": self._content_type,
                "X-Amz-Target": self._prefix + operation,
            },
        )
        SigV4Auth(frozen, self._signing_name, self._region).add_auth(request)
        headers = dict(request.headers.items())
        headers["User-Agent"] = self._user_agent
        async with self._sessions[profile].post(self._url, data=body, headers=headers) as response:
            raw = await response.read()
            status = response.status
            if status >= 300:
                raise parse_error(status, raw, response.headers)
        return _loads(raw) if raw else {}
