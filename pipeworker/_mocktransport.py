"""A transport that answers from a function: the seam for fast tests of a worker.

``DataPipeline(transport=MockTransport(handler))`` (and the same for ``SWF`` and
``StepFunctions``) sends every operation to ``handler(operation, params)`` instead of AWS. The
service's own wire translation and error table, the retries, pacing, the supervisor and the task
scope are the real ones; only the HTTP request is replaced. No credentials are read and no
botocore client is created.

The handler sees what would have gone over the wire (the parameters after a JSON round trip) and
answers as the lean transport would have decoded the answer:

- a ``dict`` is the answer; ``None`` is an empty answer (``{}``, as an empty body is);
- ``str`` or ``bytes`` is a raw body, decoded as JSON like a real one (so ``b"<html>"`` tests an
  unreadable answer); any other value (a list, a number) is a body that is not a JSON object;
- raising :class:`ServiceErrorAnswer` is an error answer: its code, message and HTTP status go
  through the service's error table as AWS's would (``TaskNotFoundException`` on a progress
  report is a lost lease, a 500 is retried, ``ThrottlingException`` is backed off);
- raising ``ConnectionError`` is a dropped connection and ``TimeoutError`` a request that timed
  out: both are retried;
- raising anything else is a request the service rejected (``RequestRejected``), so a bug in a
  handler shows in the worker's log instead of passing silently.

An async handler may wait (``await asyncio.sleep(...)``, an event): a long poll is a handler that
holds. Cancelling the request cancels the handler, as closing a connection would.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import aiohttp

from pipeworker.services._signed import ErrorAnswer, parse_error
from pipeworker.services.base import MalformedAnswer

__all__ = ["Handler", "MockTransport", "Request", "ServiceErrorAnswer"]

Handler: TypeAlias = Callable[[str, dict[str, Any]], Any | Awaitable[Any]]
"""``handler(operation, params)``, sync or async: the answer, or an exception to raise."""


class ServiceErrorAnswer(ErrorAnswer):
    """Raise it in a :class:`MockTransport` handler to answer with an AWS error.

    Args:
        code: the AWS error code (``"TaskNotFoundException"``, ``"ThrottlingException"``).
        message: the error's message.
        status: the HTTP status; 400 by default (AWS's for client errors), 500 for a fault.
    """

    def __init__(self, code: str, message: str = "", *, status: int = 400) -> None:
        super().__init__(status, code, message)

    def __repr__(self) -> str:
        return f"ServiceErrorAnswer({self.code!r}, {self.message!r}, status={self.status})"


@dataclass(frozen=True, slots=True)
class Request:
    """One request a :class:`MockTransport` received: its operation and its parameters."""

    operation: str
    params: dict[str, Any]


class MockTransport:
    """A transport answering every request with ``handler(operation, params)``.

    Attributes:
        requests: every request received, in order (also those the handler failed).
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[Request] = []

    def __repr__(self) -> str:
        name = getattr(self._handler, "__qualname__", type(self._handler).__name__)
        return f"MockTransport({name})"

    async def send(self, operation: str, params: Mapping[str, Any]) -> Any:
        """Send *operation*: ask the handler, and decode its answer as the wire would."""
        # What the service would receive: JSON values only, and a copy the handler may keep.
        request = json.loads(json.dumps(params))
        self.requests.append(Request(operation, request))
        # A request always yields to the loop once, as a real one does.
        await asyncio.sleep(0)
        try:
            answer = self._handler(operation, request)
            if inspect.isawaitable(answer):
                answer = await answer
        except ConnectionError as exc:
            raise aiohttp.ServerDisconnectedError(f"connection dropped: {exc}") from exc
        return _decode(answer)


def _decode(answer: Any) -> Any:
    """*answer* as the lean transport would have decoded the body it stands for."""
    if answer is None:
        return {}
    if isinstance(answer, str | bytes):
        body = answer.encode() if isinstance(answer, str) else answer
        if not body:
            return {}
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise MalformedAnswer(f"HTTP 200 answer is not JSON ({exc})") from None
    else:
        try:
            answer = json.loads(json.dumps(answer))  # a copy, with JSON's types only
        except (TypeError, ValueError) as exc:
            raise MalformedAnswer(f"the handler's answer is not JSON ({exc})") from None
    if type(answer) is not dict:
        raise MalformedAnswer(f"HTTP 200 answer is a JSON {type(answer).__name__}")
    if "__type" in answer:
        # An error with a 200 status is still an error, as the lean transport reads it.
        raise parse_error(200, json.dumps(answer).encode(), {})
    return answer
