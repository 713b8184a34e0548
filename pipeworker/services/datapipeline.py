"""AWS Data Pipeline behind the service interface: client profiles, wire shapes, error mapping.

Two call profiles, so long polls can never starve the calls that keep leases:

- *poll*: read timeout well above the 90 s hold, a connection for every slot (polls never
  outnumber free slots, so a poll never waits for a connection);
- *report*: progress, status, heartbeat and expressions, with its own pool.

Two transports send them (:mod:`pipeworker.services._aws`, shared with SWF). ``transport="lean"``
(the default) sends the hot calls (poll, progress, status, heartbeat) through
:mod:`pipeworker.services._signed`: botocore's SigV4 signer and bare aiohttp, about a third of
botocore's CPU per call; credentials, region and endpoint still come from aiobotocore, and
EvaluateExpression still goes through an aiobotocore client. ``transport="aiobotocore"`` sends
everything through two aiobotocore clients. Both have retries off: the one retry layer is
``pipeworker._retry``. Every request goes through the connection's ``call``, the single seam
where errors of either transport are mapped by one table (:func:`map_error`).

Answers are read in the same seam, by one reader per operation (:func:`poll_answer` and
:func:`task_from_wire` for polls): a successful answer of the wrong shape (not an object, a
member missing or of the wrong type, ``canceled`` not a boolean, a field without a ``key``) raises
:class:`~pipeworker.services.base.MalformedAnswer`, mapped like a 5xx to a retried
:class:`~pipeworker.exceptions.TransientServiceError`, so no ``KeyError`` or ``TypeError`` from a
broken answer ever reaches the supervisor. A task whose ``taskObject`` cannot be read is logged
and left to the service: no status is sent for it, even when its ``taskId`` can be read, because
a FAILED would spend one of the activity's retries on a fault that is not the task's and vouch for
an id read from a document just found corrupt; unacknowledged, the task is handed out again once
its two-minute acknowledgement window ends.

The lean transport reads at most :data:`MAX_POLL_ANSWER_BYTES` of a poll's answer and
:data:`MAX_REPORT_ANSWER_BYTES` of any other; a longer answer is dropped unread and retried as
``ResponseTooLarge``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import Any, Final, cast

from pipeworker._model import validate_input
from pipeworker.exceptions import PipeworkerError, ValidationError
from pipeworker.services import _aws
from pipeworker.services._aws import AwsConnection, Transport, Wire
from pipeworker.services._awsservice import AwsService
from pipeworker.services._dpdescription import DATA_PIPELINE
from pipeworker.services._dptask import (
    MAX_PROGRESS_BYTES,
    MAX_PROGRESS_FIELDS,
    ReceivedAttempt,
    Ref,
    Task,
    check_progress_fields,
)
from pipeworker.services._dpwire import (
    period_seconds,
    poll_answer,
    read_canceled,
    read_expression,
    read_terminate,
    task_from_wire,
)
from pipeworker.services.base import (
    Connection,
    ConnectionSettings,
    MalformedAnswer,
    Outcome,
    ReceivedTask,
    truncate_head,
    truncate_tail,
)

__all__ = [
    "MAX_PROGRESS_BYTES",
    "MAX_PROGRESS_FIELDS",
    "DataPipeline",
    "Task",
    "check_progress_fields",
    "map_error",
    "period_seconds",
    "poll_answer",
    "status_params",
    "task_from_wire",
]

SERVICE: Final = DATA_PIPELINE.name

# The largest legitimate PollForTask answer: a task carries its attempt, instance and component
# objects and what they refer to, at most the pipeline's 100 objects (AWS's default limit), each
# at most 15,360 UTF-8 bytes of fields (50 fields of <= 10,240 bytes, the whole object capped).
# JSON escapes at most 6 bytes per byte of text (``\u00XX``), plus ~64 bytes of framing per field
# and id/name: under 100 KB per object, under 10 MB per task even if every byte were escaped.
# 32 MiB is three times that, and ten times the object limit at realistic (<= 2x) escaping.
MAX_POLL_ANSWER_BYTES = 32 << 20
MAX_REPORT_ANSWER_BYTES = _aws.MAX_REPORT_ANSWER_BYTES


ERROR_ID_LIMIT = DATA_PIPELINE.limits["error_id"]
ERROR_MESSAGE_LIMIT = DATA_PIPELINE.limits["error_message"]
ERROR_STACK_LIMIT = DATA_PIPELINE.limits["error_stack_trace"]
RESERVED_ERROR_PREFIX = "Service_"

log = logging.getLogger("pipeworker.datapipeline")

# Everything outside the model's character pattern: control characters and lone surrogates.
_OUTSIDE_PATTERN = re.compile("[^\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff\r\n\t]")

_WIRE = Wire(
    DATA_PIPELINE,
    lean=DATA_PIPELINE.worker_operations - {"EvaluateExpression"},
    slow=frozenset({"EvaluateExpression"}),  # rare: it stays on aiobotocore
    max_poll_answer_bytes=MAX_POLL_ANSWER_BYTES,
)


def map_error(operation: str, exc: Exception) -> PipeworkerError:
    """Translate what either transport raised for *operation* into the exception tree.

    The shared table (:func:`pipeworker.services._aws.map_error`); TaskNotFoundException,
    PipelineNotFoundException and PipelineDeletedException on a call about a task are a lost
    lease.
    """
    return _aws.map_error(operation, exc, DATA_PIPELINE.errors)


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


class DataPipeline(AwsService[Task]):
    """AWS Data Pipeline (2012-10-29): the task-runner calls, as the default service.

    Args:
        lease: how long a running task stays this runner's without a progress report.
            Five minutes, the shortest window the API pages give; lower it if your pipelines
            set a shorter ``reportProgressTimeout``.
        poll_read_timeout: the poll client's read timeout, above the 90 s hold.
        report_pool_size: connections for progress, status and heartbeat calls; by default
            ``max_concurrency`` capped to 10..100.
        transport: ``"lean"`` (default) sends poll, progress, status and heartbeat signed by
            botocore's SigV4 signer over bare aiohttp, at about a third of botocore's CPU per
            call; ``"aiobotocore"`` sends every call through aiobotocore clients.
    """

    description = DATA_PIPELINE
    wire = _WIRE

    @property
    def task_class(self) -> type[Task]:
        return Task

    def __init__(
        self,
        *,
        lease: float | timedelta = timedelta(seconds=DATA_PIPELINE.lease_seconds),
        poll_read_timeout: float = DATA_PIPELINE.poll_read_timeout,
        report_pool_size: int | None = None,
        transport: Transport = "lean",
    ) -> None:
        super().__init__(
            poll_read_timeout=poll_read_timeout,
            report_pool_size=report_pool_size,
            transport=transport,
        )
        self.lease_seconds = lease.total_seconds() if isinstance(lease, timedelta) else lease

    def __repr__(self) -> str:
        return f"DataPipeline(lease={self.lease_seconds:g}, transport={self.transport!r})"

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

    def poll_pool(self, settings: ConnectionSettings) -> int:
        """Polls never outnumber free slots: one connection per slot, and one to spare."""
        return settings.max_concurrency + 1

    async def open_connection(
        self, senders: Mapping[str, _aws.Sender], settings: ConnectionSettings
    ) -> Connection:
        return _DataPipelineConnection(senders, settings)


class _DataPipelineConnection(AwsConnection):
    errors = DATA_PIPELINE.errors
    log = log

    def __init__(self, senders: Mapping[str, _aws.Sender], settings: ConnectionSettings) -> None:
        super().__init__(senders)
        self._settings = settings

    def unreadable(self, operation: str, exc: MalformedAnswer) -> None:
        if exc.task_id is None:
            super().unreadable(operation, exc)
            return
        log.error(
            "%s handed out task %s in a shape this runner cannot read (%s); no status "
            "is sent for it: the service hands it out again once its acknowledgement "
            "window ends",
            operation,
            exc.task_id,
            exc,
            extra={"task_id": exc.task_id},
        )

    async def poll(self, queue: str) -> ReceivedTask | None:
        return await self.call(
            "PollForTask",
            {"workerGroup": queue, "hostname": self._settings.hostname},
            partial(poll_answer, queue),
        )

    async def acknowledge(self, task: ReceivedTask) -> bool:
        return await self.report_progress(task)

    async def report_progress(
        self, task: ReceivedTask, fields: Mapping[str, Any] | None = None
    ) -> bool:
        params: dict[str, Any] = {"taskId": task.id}
        if fields:
            params["fields"] = [
                {"key": key, "refValue": value.id}
                if isinstance(value, Ref)
                else {"key": key, "stringValue": value}
                for key, value in fields.items()
            ]
        return await self.call("ReportTaskProgress", params, read_canceled)

    async def finish(self, task: ReceivedTask, outcome: Outcome) -> None:
        await self.call("SetTaskStatus", status_params(task.id, outcome))

    async def heartbeat(self, queue: str) -> bool:
        return await self.call(
            "ReportTaskRunnerHeartbeat",
            {
                "taskrunnerId": self._settings.taskrunner_id,
                "workerGroup": queue,
                "hostname": self._settings.hostname,
            },
            read_terminate,
        )

    async def evaluate(self, task: ReceivedTask, expression: str) -> str:
        attempt = cast(ReceivedAttempt, task)
        params = {
            "pipelineId": attempt.pipeline_id,
            "objectId": attempt.attempt_id,
            "expression": expression,
        }
        problems = validate_input(SERVICE, "EvaluateExpression", params)
        if problems:
            raise ValidationError(f"evaluate(): {'; '.join(problems)}")
        return await self.call("EvaluateExpression", params, read_expression)
