"""The aiohttp application: target dispatch, JSON and query-form parsing, validation, faults,
rate limits and AWS-shaped errors.

One dispatcher serves every service, each routed by the target prefix of its
:class:`~pipeworker.services._description.ServiceDescription`, which also gives its signing name,
JSON version, botocore model (for validation), long poll and the worker's calls (the ones faults
and rate limits apply to). Adding a service adds a :class:`ServiceApi`, not a code path.

Every answer is JSON; no request, however malformed, gets a traceback. Unknown targets, malformed
bodies and invalid inputs are answered as AWS JSON services answer them
(``UnknownOperationException``, ``SerializationException``, ``ValidationException``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pipeworker._model import validate_input
from pipeworker.local._errors import COMMON, VALIDATE, ApiError, internal_error
from pipeworker.local._faults import Fault, FaultInjector
from pipeworker.local._http import MAX_BODY_BYTES, BodyError, parse_json, read_body
from pipeworker.local._longpoll import CONNECTION_ALIVE
from pipeworker.local._ratelimit import RateLimiter
from pipeworker.local._sigv4 import SignatureVerifier
from pipeworker.services._description import ServiceDescription
from pipeworker.services._dpdescription import DATA_PIPELINE

__all__ = ["CONTENT_TYPE", "Dispatcher", "Handler", "ServiceApi", "Stats"]

log = logging.getLogger(__name__)

# The query form (GET /?Action=PollForTask&...) is Data Pipeline's, for its worker's calls; its
# JSON 1.1 is also what the local control calls and every error answer carry.
_QUERY_FORM = DATA_PIPELINE
CONTENT_TYPE = _QUERY_FORM.content_type
CONTROL_PREFIX = "PipeworkerLocal"
# Query-form parameters that carry JSON rather than a plain string.
_JSON_QUERY_PARAMETERS = frozenset({"fields", "instanceIdentity"})

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]]
_Entry = tuple[Handler, bool]  # the handler, and whether it is a coroutine function


@dataclass(frozen=True, slots=True)
class ServiceApi:
    """One service as the local server answers it: its description and its handlers by
    operation."""

    description: ServiceDescription
    handlers: Mapping[str, Handler]


def _entries(handlers: Mapping[str, Handler]) -> dict[str, _Entry]:
    return {op: (handler, asyncio.iscoroutinefunction(handler)) for op, handler in handlers.items()}


class Stats:
    """Counters a test can read: calls per operation, faults injected, throttles, error codes."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A JSON-ready copy of every counter."""
        return {
            "calls": dict(self.calls),
            "faults": dict(self.faults),
            "throttled": dict(self.throttled),
            "errors": dict(self.errors),
        }

    def reset(self) -> None:
        """Zero every counter."""
        for counter in (self.calls, self.faults, self.throttled, self.errors):
            counter.clear()


def _throttling() -> ApiError:
    # botocore's retry handlers treat the code ThrottlingException (HTTP 400) as a throttle.
    return ApiError(
        "ThrottlingException", "Rate exceeded", namespace="com.amazon.coral.availability"
    )


def _validation(problems: list[str]) -> ApiError:
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    return ApiError(
        "ValidationException",
        f"{count} validation {noun} detected: " + "; ".join(problems),
        namespace=VALIDATE,
    )


def _unknown_operation(target: str) -> ApiError:
    return ApiError("UnknownOperationException", f"Unknown operation {target!r}", namespace=COMMON)


class Dispatcher:
    """Routes requests to handlers; owns the counters, the fault injector and the rate limiter."""

    verifier: SignatureVerifier | None = None
    """Checks SigV4 signatures when set (``LocalConfig.verify_signatures``); the local control
    calls (``PipeworkerLocal.*``) are exempt, as they are not AWS's."""

    def __init__(
        self,
        services: Sequence[ServiceApi],
        control: Mapping[str, Handler],
        *,
        faults: FaultInjector,
        limiter: RateLimiter,
        rate_limits: bool,
    ) -> None:
        # Each service by its target prefix: its description and its handlers.
        self._services = {
            api.description.target_prefix: (api.description, _entries(api.handlers))
            for api in services
        }
        if len(self._services) != len(services):
            raise ValueError("two services share a target prefix")
        self._control = _entries(control)
        self.faults = faults
        self.limiter = limiter
        self.rate_limits = rate_limits
        self.stats = Stats()
        self._request_ids = itertools.count(1)

    def app(self) -> web.Application:
        """The aiohttp application answering every path (AWS posts to ``/``)."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def _respond(
        self, status: int, body: Mapping[str, Any], content_type: str = CONTENT_TYPE
    ) -> web.Response:
        return web.Response(
            status=status,
            body=json.dumps(body).encode(),
            headers={
                "Content-Type": content_type,
                "x-amzn-RequestId": f"pipeworker-local-{next(self._request_ids)}",
            },
        )

    def _error(self, error: ApiError) -> web.Response:
        self.stats.errors[error.code] += 1
        return self._respond(error.status, error.body())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request; every failure becomes an AWS-shaped error."""
        try:
            if self.verifier is not None:
                await self._verify(request)
            return await self._handle(request)
        except ApiError as error:
            response = self._error(error)
            if isinstance(error, BodyError):
                response.force_close()
            return response
        except Exception:
            log.exception("local service: unexpected error answering %s", request.path_qs)
            return self._error(internal_error())

    async def _verify(self, request: web.Request) -> None:
        assert self.verifier is not None
        target = request.headers.get("X-Amz-Target", "")
        if target.startswith(CONTROL_PREFIX + "."):
            return
        self.verifier.verify(
            method=request.method,
            url=f"{request.scheme}://{request.host}{request.raw_path}",
            headers=request.headers,
            body=await read_body(request),
            # One server answers every service, each signed with its own name.
            service=self._signing_name(target.partition(".")[0]),
        )

    async def _parse(self, request: web.Request) -> tuple[str, str, dict[str, Any]]:
        target = request.headers.get("X-Amz-Target")
        if target is None:
            action = request.query.get("Action")
            if action is None:
                raise _unknown_operation("")
            if action not in _QUERY_FORM.worker_operations:
                raise ApiError(
                    "InvalidAction",
                    f"The query form answers only the task-runner actions, not {action!r}",
                    namespace=COMMON,
                )
            return _QUERY_FORM.target_prefix, action, _query_params(request.query)
        prefix, _, operation = target.partition(".")
        body = await read_body(request)
        if not body.strip():
            return prefix, operation, {}
        params = parse_json(body)
        if not isinstance(params, dict):
            raise ApiError(
                "SerializationException",
                "The request body must be a JSON object",
                namespace=COMMON,
            )
        return prefix, operation, params

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        prefix, operation, params = await self._parse(request)
        if prefix == CONTROL_PREFIX:
            control = self._control.get(operation)
            if control is None:
                raise _unknown_operation(f"{prefix}.{operation}")
            self.stats.calls[f"{prefix}.{operation}"] += 1
            result = control[0](params)
            if control[1]:
                result = await result  # type: ignore[misc]
            return self._respond(200, result)  # type: ignore[arg-type]
        route = self._services.get(prefix)
        entry = route[1].get(operation) if route is not None else None
        if route is None or entry is None:
            raise _unknown_operation(f"{prefix}.{operation}")
        description = route[0]
        self.stats.calls[operation] += 1
        fault = Fault.NONE
        if operation in description.worker_operations:
            fault = await self._before(request, operation)
            if fault is Fault.DROP_BEFORE:
                return _drop(request)
        problems = validate_input(description.name, operation, params)
        if problems:
            raise _validation(problems)
        if operation == description.poll_operation and request.transport is not None:
            # The long poll hands its task only to a client still connected.
            transport = request.transport
            CONNECTION_ALIVE.set(lambda: not transport.is_closing())
        handler, is_async = entry
        result = handler(params)
        if is_async:
            result = await result  # type: ignore[misc]
        if fault is Fault.DROP_AFTER:
            return _drop(request)
        return self._respond(200, result, description.content_type)  # type: ignore[arg-type]

    def _signing_name(self, prefix: str) -> str:
        route = self._services.get(prefix)
        return (route[0] if route is not None else _QUERY_FORM).signing_name

    async def _before(self, request: web.Request, operation: str) -> Fault:
        """Latency, injected faults and rate limits, in that order; returns a pending drop."""
        fault = Fault.NONE
        if self.faults.active:
            delay = self.faults.latency()
            if delay > 0:
                await asyncio.sleep(delay)
            fault = self.faults.draw()
            if fault is not Fault.NONE:
                self.stats.faults[fault.value] += 1
            if fault is Fault.ERROR:
                raise internal_error()
            if fault is Fault.THROTTLE:
                raise _throttling()
        if self.rate_limits and not self.limiter.allow(operation):
            self.stats.throttled[operation] += 1
            raise _throttling()
        return fault


def _drop(request: web.Request) -> web.Response:
    # Abort the socket: the client sees a reset connection and no answer. aiohttp then fails to
    # write the response below and treats that as a client that went away.
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)


def _query_params(query: Mapping[str, str]) -> dict[str, Any]:
    """The query form (``GET /?Action=PollForTask&workerGroup=...``) as JSON parameters."""
    params: dict[str, Any] = {}
    for key, value in query.items():
        if key == "Action" or key == "Version" or key.startswith("X-Amz-"):
            continue
        if key in _JSON_QUERY_PARAMETERS:
            try:
                params[key] = parse_json(value.encode())
            except ApiError as exc:
                raise ApiError(
                    "SerializationException",
                    f"Query parameter {key!r} must be JSON: {exc.message}",
                    namespace=COMMON,
                ) from exc
        else:
            params[key] = value
    return params
