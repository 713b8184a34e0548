"""AWS Data Pipeline behind the service interface: client profiles, wire shapes, error mapping.

Two aiobotocore clients, so long polls can never starve the calls that keep leases:

- the *poll* client: read timeout well above the 90 s hold, one connection per worker group (at
  most one poll per group is in flight, so a poll never waits for a connection);
- the *report* client: progress, status, heartbeat and expressions, with its own pool.

Both have botocore's retries off: the one retry layer is ``pipeworker._retry``. Every request goes
through :meth:`_DataPipelineConnection.call`, the single seam where botocore's errors become
pipeworker's and where a leaner transport can later be switched in.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import timedelta
from functools import cache
from typing import Any, Final

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from pipeworker import _redact
from pipeworker._model import check_value, operation_input, validate_input
from pipeworker.exceptions import (
    ConfigurationError,
    LeaseLost,
    PipeworkerError,
    RequestRejected,
    ThrottlingError,
    TransientServiceError,
    ValidationError,
)
from pipeworker.services.base import (
    Connection,
    ConnectionSettings,
    FieldValue,
    Outcome,
    ReceivedTask,
    Ref,
    Service,
    resolve_field,
    truncate_head,
    truncate_tail,
)

__all__ = [
    "DataPipeline",
    "check_progress_fields",
    "map_error",
    "period_seconds",
    "status_params",
    "task_from_wire",
]

SERVICE: Final = "datapipeline"
POLL_HOLD = 90.0
"""How long the service holds a PollForTask open when it has no task."""

ERROR_ID_LIMIT = 1024
ERROR_MESSAGE_LIMIT = 1024  # the model sets none; the API page gives 4095 for the stack trace
ERROR_STACK_LIMIT = 1024
RESERVED_ERROR_PREFIX = "Service_"

_LEASE_LOST_CODES = frozenset(
    {"TaskNotFoundException", "PipelineNotFoundException", "PipelineDeletedException"}
)
# What AWS answers a request it cannot authenticate: never worth sending again as it is.
_AUTHENTICATION_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
        "MissingAuthenticationToken",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
    }
)
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
    }
)
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    BotoConnectionError,  # EndpointConnectionError, ConnectTimeoutError, proxy errors
    ConnectionClosedError,
    HTTPClientError,  # ReadTimeoutError and other transport failures
    aiohttp.ClientError,
    TimeoutError,
)
# Everything outside the model's character pattern: control characters and lone surrogates.
_OUTSIDE_PATTERN = re.compile("[^\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff\r\n\t]")

_OPERATIONS = {
    "PollForTask": "poll_for_task",
    "ReportTaskProgress": "report_task_progress",
    "SetTaskStatus": "set_task_status",
    "ReportTaskRunnerHeartbeat": "report_task_runner_heartbeat",
    "EvaluateExpression": "evaluate_expression",
}


def map_error(operation: str, exc: Exception) -> PipeworkerError:
    """Translate what aiobotocore raised for *operation* into the exception tree.

    Most specific first: lost leases, throttling, server errors, other request errors, then
    transport failures and local configuration problems.
    """
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = f"{operation}: {code}: {error.get('Message') or exc}"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        # PollForTask lists TaskNotFoundException too, but a poll holds no lease to lose.
        if code in _LEASE_LOST_CODES and operation != "PollForTask":
            return LeaseLost(message, operation=operation, code=code)
        if code in _AUTHENTICATION_CODES:
            return RequestRejected(
                f"{message} (the service did not accept this runner's credentials: check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile or role, and the clock)",
                operation=operation,
                code=code,
            )
        if code in _THROTTLING_CODES or status == 429:
            return ThrottlingError(message, operation=operation, code=code)
        if code == "InternalServiceError" or status >= 500:
            return TransientServiceError(message, operation=operation, code=code or str(status))
        return RequestRejected(message, operation=operation, code=code or str(status))
    if isinstance(exc, _TRANSIENT_ERRORS):
        name = type(exc).__name__
        return TransientServiceError(f"{operation}: {name}: {exc}", operation=operation, code=name)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError):
        return ConfigurationError(f"{operation}: {exc}")
    if isinstance(exc, ParamValidationError):
        return ValidationError(f"{operation}: {exc}")
    name = type(exc).__name__
    return RequestRejected(f"{operation}: {name}: {exc}", operation=operation, code=name)


@cache
def _field_shapes() -> tuple[Any, Any]:
    shape = operation_input(SERVICE, "ReportTaskProgress")
    assert shape is not None
    members = shape.members["fields"].member.members  # type: ignore[attr-defined]
    return members["key"], members["stringValue"]


def check_progress_fields(fields: Mapping[str, str | Ref]) -> list[str]:
    """What ReportTaskProgress would reject in *fields* (key and value lengths, characters)."""
    key_shape, value_shape = _field_shapes()
    problems: list[str] = []
    for key, value in fields.items():
        problems += check_value(key_shape, key, f"field name {key[:40]!r}")
        text = value.id if isinstance(value, Ref) else value
        shape = key_shape if isinstance(value, Ref) else value_shape
        problems += check_value(shape, text, f"field {key[:40]!r}")
    return problems


def _clean(text: str) -> str:
    return _OUTSIDE_PATTERN.sub("\ufffd", text)


def _error_id(error_id: str) -> str:
    # The service reserves the prefix for its own errors and rejects it from runners.
    if error_id.startswith(RESERVED_ERROR_PREFIX):
        error_id = "Task_" + error_id
    return truncate_head(_clean(error_id), ERROR_ID_LIMIT)


def status_params(task_id: str, outcome: Outcome) -> dict[str, Any]:
    """The SetTaskStatus request for *outcome*, fitted to the model's limits and pattern."""
    params: dict[str, Any] = {"taskId": task_id, "taskStatus": outcome.status}
    if outcome.status == "FAILED":
        params["errorId"] = _error_id(outcome.error_id or "Error")
        if outcome.message:
            params["errorMessage"] = truncate_head(_clean(outcome.message), ERROR_MESSAGE_LIMIT)
        if outcome.stack_trace:
            params["errorStackTrace"] = truncate_tail(
                _clean(outcome.stack_trace), ERROR_STACK_LIMIT
            )
    return params


def _fields_from_wire(fields: list[Mapping[str, str]]) -> dict[str, FieldValue]:
    result: dict[str, FieldValue] = {}
    for field in fields:
        key = field["key"]
        value: str | Ref = (
            Ref(field["refValue"]) if "refValue" in field else field.get("stringValue", "")
        )
        previous = result.get(key)
        if previous is None:
            result[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            result[key] = [previous, value]
    return result


_PERIOD = re.compile(r"\s*(\d+)\s*(second|minute|hour|day|week)s?\s*", re.IGNORECASE)
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


def period_seconds(text: str) -> float | None:
    """Seconds in a Data Pipeline period such as ``"10 Minutes"``; None if it is not one."""
    match = _PERIOD.fullmatch(text)
    if match is None:
        return None
    return int(match[1]) * _UNIT_SECONDS[match[2].lower()]


def task_from_wire(queue: str, task: Mapping[str, Any]) -> ReceivedTask:
    """Translate PollForTask's ``taskObject``."""
    objects = {
        object_id: _fields_from_wire(obj.get("fields", []))
        for object_id, obj in (task.get("objects") or {}).items()
    }
    attempt_id = task.get("attemptId", "")
    kind = resolve_field(objects, attempt_id, "type")
    timeout = resolve_field(objects, attempt_id, "reportProgressTimeout")
    return ReceivedTask(
        id=task["taskId"],
        queue=queue,
        pipeline_id=task.get("pipelineId", ""),
        attempt_id=attempt_id,
        objects=objects,
        type=kind if isinstance(kind, str) else None,
        lease_seconds=period_seconds(timeout) if isinstance(timeout, str) else None,
    )


class DataPipeline(Service):
    """AWS Data Pipeline (2012-10-29): the task-runner calls, as the default service.

    Args:
        lease: how long a running task stays this runner's without a progress report.
            Five minutes, the shortest window the API pages give; lower it if your pipelines
            set a shorter ``reportProgressTimeout``.
        poll_read_timeout: the poll client's read timeout, above the 90 s hold.
        report_pool_size: connections for progress, status and heartbeat calls; by default
            ``max_concurrency`` capped to 10..100.
    """

    name = SERVICE
    queue_name = "worker group"

    def __init__(
        self,
        *,
        lease: float | timedelta = timedelta(minutes=5),
        poll_read_timeout: float = POLL_HOLD + 30.0,
        report_pool_size: int | None = None,
    ) -> None:
        self.lease_seconds = lease.total_seconds() if isinstance(lease, timedelta) else lease
        if poll_read_timeout <= POLL_HOLD:
            raise ConfigurationError(
                f"poll_read_timeout={poll_read_timeout:g}s must exceed the {POLL_HOLD:g}s poll hold"
            )
        self.poll_read_timeout = poll_read_timeout
        self.report_pool_size = report_pool_size

    def __repr__(self) -> str:
        return f"DataPipeline(lease={self.lease_seconds:g})"

    def check_queue(self, queue: str) -> list[str]:
        """Check a worker group against the model (length, characters); empty is refused too."""
        if not queue:
            return ["a worker group must not be empty"]
        return validate_input(SERVICE, "PollForTask", {"workerGroup": queue, "hostname": "h"})

    def check_identity(self, taskrunner_id: str, hostname: str) -> list[str]:
        """Check the runner's id and hostname against ReportTaskRunnerHeartbeat's model."""
        return validate_input(
            SERVICE,
            "ReportTaskRunnerHeartbeat",
            {"taskrunnerId": taskrunner_id, "hostname": hostname},
        )

    def connect(self, settings: ConnectionSettings) -> AbstractAsyncContextManager[Connection]:
        """Create the poll and report clients; closing the context closes both."""
        return self._connect(settings)

    @asynccontextmanager
    async def _connect(self, settings: ConnectionSettings) -> AsyncIterator[Connection]:
        _redact.install()  # botocore logs signed headers at DEBUG
        session = get_session()
        if await session.get_credentials() is None:
            raise ConfigurationError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, or run where an instance role is available"
            )
        no_retries = {"total_max_attempts": 1, "mode": "standard"}
        pool = self.report_pool_size or min(max(settings.max_concurrency, 10), 100)
        poll_config = AioConfig(
            read_timeout=self.poll_read_timeout,
            connect_timeout=10,
            retries=no_retries,
            max_pool_connections=len(settings.queues) + 1,
        )
        report_config = AioConfig(
            read_timeout=30, connect_timeout=10, retries=no_retries, max_pool_connections=pool
        )
        async with AsyncExitStack() as stack:
            try:
                clients = [
                    await stack.enter_async_context(
                        session.create_client(
                            SERVICE,
                            region_name=settings.region,
                            endpoint_url=settings.endpoint_url,
                            config=config,
                        )
                    )
                    for config in (poll_config, report_config)
                ]
            except NoRegionError as exc:
                raise ConfigurationError(
                    "no AWS region: pass region=... or set AWS_DEFAULT_REGION"
                ) from exc
            yield _DataPipelineConnection(clients[0], clients[1], settings)


class _DataPipelineConnection(Connection):
    def __init__(self, poll_client: Any, report_client: Any, settings: ConnectionSettings) -> None:
        self._settings = settings
        # Bound once: the hot path looks a method up in a dict instead of by attribute name.
        self._methods: dict[str, Callable[..., Awaitable[Mapping[str, Any]]]] = {
            operation: getattr(poll_client if operation == "PollForTask" else report_client, name)
            for operation, name in _OPERATIONS.items()
        }

    async def call(self, operation: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Send one request; the only place botocore's errors are translated."""
        try:
            return await self._methods[operation](**params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise map_error(operation, exc) from exc

    async def poll(self, queue: str) -> ReceivedTask | None:
        response = await self.call(
            "PollForTask", {"workerGroup": queue, "hostname": self._settings.hostname}
        )
        task = response.get("taskObject")
        return task_from_wire(queue, task) if task and task.get("taskId") else None

    async def acknowledge(self, task: ReceivedTask) -> bool:
        return await self.report_progress(task)

    async def report_progress(
        self, task: ReceivedTask, fields: Mapping[str, str | Ref] | None = None
    ) -> bool:
        params: dict[str, Any] = {"taskId": task.id}
        if fields:
            params["fields"] = [
                {"key": key, "refValue": value.id}
                if isinstance(value, Ref)
                else {"key": key, "stringValue": value}
                for key, value in fields.items()
            ]
        response = await self.call("ReportTaskProgress", params)
        return bool(response.get("canceled", False))

    async def finish(self, task: ReceivedTask, outcome: Outcome) -> None:
        await self.call("SetTaskStatus", status_params(task.id, outcome))

    async def heartbeat(self, queue: str) -> bool:
        response = await self.call(
            "ReportTaskRunnerHeartbeat",
            {
                "taskrunnerId": self._settings.taskrunner_id,
                "workerGroup": queue,
                "hostname": self._settings.hostname,
            },
        )
        return bool(response.get("terminate", False))

    async def evaluate(self, task: ReceivedTask, expression: str) -> str:
        params = {
            "pipelineId": task.pipeline_id,
            "objectId": task.attempt_id,
            "expression": expression,
        }
        problems = validate_input(SERVICE, "EvaluateExpression", params)
        if problems:
            raise ValidationError(f"evaluate(): {'; '.join(problems)}")
        response = await self.call("EvaluateExpression", params)
        return str(response.get("evaluatedExpression", ""))

    def check_progress_fields(self, fields: Mapping[str, str | Ref]) -> list[str]:
        return check_progress_fields(fields)
