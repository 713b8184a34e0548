"""The HTTP edge of the local service: reading and decoding bodies, and malformed HTTP.

Whatever a client sends, the answer is an AWS-shaped JSON error and the service goes on: a body
over the cap (also once a ``Content-Encoding: gzip`` body is inflated, so a gzip bomb costs at most
the cap), a body that does not decode, JSON nested deeper than any real request, and requests
that are not HTTP at all (aiohttp would answer those in plain text before any handler runs).
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from pipeworker.local._errors import COMMON, ApiError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "BodyError",
    "JsonErrorRunner",
    "parse_json",
    "read_body",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024
"""The largest request body accepted, after any Content-Encoding is undone."""
MAX_JSON_DEPTH = 64
"""The deepest nesting of objects and lists accepted; real requests nest four or five deep."""


class BodyError(ApiError):
    """A body that could not be read whole: answer it, then close the connection, whose
    remaining bytes can no longer be trusted to start the next request."""


async def read_body(request: web.Request) -> bytes:
    """The request's body, decoded; an AWS-shaped 4xx when it is too large or does not decode."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyError(
            "RequestEntityTooLargeException",
            f"The request body is larger than the {MAX_BODY_BYTES // (1024 * 1024)} MiB the "
            "service accepts (after Content-Encoding is undone)",
            status=413,
            namespace=COMMON,
        ) from exc
    except RequestPayloadError as exc:
        encoding = request.headers.get("Content-Encoding", "")
        what = f"Content-Encoding {encoding!r}" if encoding else "its transfer encoding"
        # The parser has given up on this body: mark it read, so that aiohttp does not try to
        # drain it after the answer and log the same error again with a traceback.
        with contextlib.suppress(Exception):
            request.content.feed_eof()
        raise BodyError(
            "SerializationException",
            f"The request body could not be decoded as {what} says",
            namespace=COMMON,
        ) from exc


def parse_json(body: bytes) -> Any:
    """The JSON document in *body*; SerializationException when it is malformed or too deep."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            "SerializationException", f"Malformed JSON body: {exc}", namespace=COMMON
        ) from exc
    except RecursionError:
        raise _too_deep() from None
    _check_depth(document)
    return document


def _too_deep() -> ApiError:
    return ApiError(
        "SerializationException",
        f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels",
        namespace=COMMON,
    )


def _check_depth(document: Any) -> None:
    # Iterative, so that no handler or validator below ever recurses into a hostile document.
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


class _JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering requests it cannot parse with JSON errors."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("local service: error answering a request", exc_info=exc)
        else:
            # A client's malformed request is no error of the service's: no traceback.
            log.debug("local service: malformed HTTP request: %s", message or exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer was already started; the connection is dropped")
        if status >= 500:
            error = ApiError(
                "InternalServiceError", "Internal service error, please retry", status=status
            )
        else:
            detail = (getattr(exc, "message", None) or message or "").strip().splitlines()
            error = ApiError(
                "BadRequestException",
                "Malformed HTTP request" + (f": {detail[0][:200]}" if detail else ""),
                status=status,
                namespace=COMMON,
            )
        response = web.Response(
            status=error.status,
            body=json.dumps(error.body()).encode(),
            content_type="application/x-amz-json-1.1",
        )
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections answer malformed HTTP with JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The app's own Server, with its settings; only the connection handler differs.
        server.__class__ = _JsonErrorServer
        return server
