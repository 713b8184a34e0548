"""Amazon SWF activity workers behind the service interface: client profiles, wire shapes, errors.

How the SWF activity calls map onto the interface the supervisor speaks::

    poll(task list)          PollForActivityTask     (60 s hold; an empty answer has no taskToken)
    acknowledge(task)        nothing                 (SWF needs no acknowledgement)
    report_progress(task)    RecordActivityTaskHeartbeat, with the latest task.heartbeat() details
    finish(task, outcome)    RespondActivityTaskCompleted / RespondActivityTaskFailed
    canceled(task)           RespondActivityTaskCanceled, after cancelRequested stopped the handler
    heartbeat(queue)         never called: SWF has no runner heartbeat

The heartbeat cadence comes from the activity type's ``defaultTaskHeartbeatTimeout``
(DescribeActivityType, once per type), handed to the supervisor as the task's lease; the
worker's ``progress_interval`` applies when the type sets none. UnknownResourceFault on a task's
token means the task timed out or its execution closed: the lease is lost.

As for Data Pipeline (:mod:`pipeworker.services._aws`, shared by both), long polls have their
own profile (read timeout above the hold) so the heartbeats that keep tasks alive never queue
behind them, botocore's retries are off, and every request goes through the connection's
``call``. ``transport="lean"`` (the default) sends the hot calls (PollForActivityTask,
RecordActivityTaskHeartbeat, RespondActivityTask*) signed by botocore's SigV4 signer over bare
aiohttp (JSON 1.0, ``SimpleWorkflowService``), reading at most :data:`MAX_POLL_ANSWER_BYTES` of
a poll's answer and :data:`MAX_REPORT_ANSWER_BYTES` of any other; DescribeActivityType (once per
type) stays on aiobotocore. ``transport="aiobotocore"`` sends everything through aiobotocore.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any, Final

from pipeworker._model import validate_input
from pipeworker.exceptions import ConfigurationError, PipeworkerError
from pipeworker.services import _aws
from pipeworker.services._answers import read_flag, read_member
from pipeworker.services._aws import AwsConnection, Transport, Wire
from pipeworker.services._awsservice import AwsService
from pipeworker.services._swfdescription import SWF_DESCRIPTION
from pipeworker.services._swftask import ActivityTask, ActivityType, WorkflowExecution
from pipeworker.services.base import (
    Connection,
    ConnectionSettings,
    Outcome,
    ReceivedTask,
    truncate_head,
    truncate_tail,
)

__all__ = [
    "SWF",
    "ActivityTask",
    "ActivityType",
    "WorkflowExecution",
    "failure_params",
    "map_error",
    "result_text",
]

SERVICE: Final = SWF_DESCRIPTION.name

RESULT_LIMIT = SWF_DESCRIPTION.limits["result"]
REASON_LIMIT = SWF_DESCRIPTION.limits["reason"]
DETAILS_LIMIT = SWF_DESCRIPTION.limits["details"]
IDENTITY_LIMIT = SWF_DESCRIPTION.limits["identity"]

# The largest legitimate PollForActivityTask answer: input (<= 32,768 characters, at most 12
# bytes each once JSON-escaped: a surrogate pair as two \uXXXX) plus the token (<= 1,024) and a
# few names of <= 256: under 450 KB. 2 MiB is over four times that.
MAX_POLL_ANSWER_BYTES = 2 << 20
MAX_REPORT_ANSWER_BYTES = _aws.MAX_REPORT_ANSWER_BYTES

log = logging.getLogger("pipeworker.swf")

_WIRE = Wire(
    SWF_DESCRIPTION,
    lean=SWF_DESCRIPTION.worker_operations,
    slow=frozenset({"DescribeActivityType"}),  # once per activity type
    max_poll_answer_bytes=MAX_POLL_ANSWER_BYTES,
)
# SWF's naming rule for domains and task lists (the model checks only lengths): no ':', '/',
# '|' or control characters, and not the literal string "arn".
_FORBIDDEN = re.compile("[:/|\u0000-\u001f\u007f-\u009f]")


def map_error(operation: str, exc: Exception) -> PipeworkerError:
    """Translate what either transport raised for an SWF *operation* into the exception tree.

    The shared table (:func:`pipeworker.services._aws.map_error`): UnknownResourceFault on a
    call with a task token is a lost lease (the task timed out, was cancelled or its execution
    closed); on a poll it means the domain does not exist. LimitExceededException and the
    throttling codes are throttles, retried with backoff.
    """
    return _aws.map_error(operation, exc, SWF_DESCRIPTION.errors)


def result_text(result: Any) -> str:
    """A handler's return value as SWF's result: a str as-is, anything else as JSON.

    Raises:
        TypeError: the value is neither a str nor JSON-serialisable.
    """
    text = result if isinstance(result, str) else json.dumps(result, separators=(",", ":"))
    return truncate_head(text, RESULT_LIMIT)


def failure_params(token: str, outcome: Outcome) -> dict[str, Any]:
    """RespondActivityTaskFailed for *outcome*: ``reason`` is ``"<error id>: <message>"``
    (<= 256), ``details`` the stack trace, else the message (<= 32,768, the end kept)."""
    if outcome.status == "FALSE":
        reason = f"PreconditionNotMet: {outcome.message}" if outcome.message else ""
        reason = reason or "PreconditionNotMet"
    else:
        error_id = outcome.error_id or "Error"
        reason = f"{error_id}: {outcome.message}" if outcome.message else error_id
    params: dict[str, Any] = {"taskToken": token, "reason": truncate_head(reason, REASON_LIMIT)}
    details = outcome.stack_trace or outcome.message
    if details:
        params["details"] = truncate_tail(details, DETAILS_LIMIT)
    return params


def _timeout_seconds(text: Any) -> float | None:
    # SWF durations are strings of seconds, or "NONE" for no timeout.
    if not isinstance(text, str) or text.upper() == "NONE":
        return None
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _check_name(kind: str, name: str) -> list[str]:
    if name == "arn":
        return [f"a {kind} must not be the literal string 'arn'"]
    found = _FORBIDDEN.search(name)
    if found is None:
        return []
    return [f"a {kind} must not contain {found.group()!r} (nor ':', '/', '|', control characters)"]


def _default_identity(hostname: str) -> str:
    return f"{os.getpid()}@{hostname}"[:IDENTITY_LIMIT]


class SWF(AwsService[ActivityTask]):
    """Amazon SWF (2012-01-25) activity workers.

    ``Worker(service=SWF(domain="orders"))`` polls the task lists its handlers name:
    ``@worker.activity("orders-tasks", type="charge")``.

    Args:
        domain: the SWF domain the task lists belong to.
        identity: what the worker calls itself in the workflow history (<= 256 characters); by
            default ``"<pid>@<hostname>"``, with the worker's hostname.
        poll_read_timeout: the poll client's read timeout, at least 70 s (the hold is 60 s).
        report_pool_size: connections for heartbeats and responses; by default
            ``max_concurrency`` capped to 10..100.
        transport: ``"lean"`` (default) sends polls, heartbeats and responses signed by
            botocore's SigV4 signer over bare aiohttp; ``"aiobotocore"`` sends every call
            through aiobotocore clients.

    Raises:
        ConfigurationError: the domain or identity breaks SWF's rules; the message says how.
    """

    # No service-wide lease: each activity type sets its own heartbeat timeout (or none).
    description = SWF_DESCRIPTION
    wire = _WIRE

    def __init__(
        self,
        *,
        domain: str,
        identity: str | None = None,
        poll_read_timeout: float = SWF_DESCRIPTION.poll_read_timeout,
        report_pool_size: int | None = None,
        transport: Transport = "lean",
    ) -> None:
        super().__init__(
            poll_read_timeout=poll_read_timeout,
            report_pool_size=report_pool_size,
            transport=transport,
        )
        if not isinstance(domain, str):
            raise ConfigurationError(f"SWF domain must be a string, got {domain!r}")
        problems = validate_input(
            SERVICE, "PollForActivityTask", {"domain": domain, "taskList": {"name": "t"}}
        ) + _check_name("domain", domain)
        if problems:
            raise ConfigurationError(f"invalid SWF domain {domain!r}: {'; '.join(problems)}")
        if identity is not None:
            problems = self._identity_problems(identity)
            if problems:
                raise ConfigurationError(f"invalid SWF identity: {'; '.join(problems)}")
        self.domain = domain
        self.identity = identity

    def __repr__(self) -> str:
        return f"SWF(domain={self.domain!r}, transport={self.transport!r})"

    @property
    def task_class(self) -> type[ActivityTask]:
        return ActivityTask

    @staticmethod
    def _identity_problems(identity: str) -> list[str]:
        if not isinstance(identity, str):
            return [f"identity must be a string, got {identity!r}"]
        return validate_input(
            SERVICE,
            "PollForActivityTask",
            {"domain": "d", "taskList": {"name": "t"}, "identity": identity},
        )

    def check_queue(self, queue: str) -> list[str]:
        """Check a task list name against the model (1..256) and SWF's naming rule."""
        if not queue:
            return ["a task list must not be empty"]
        problems = validate_input(
            SERVICE, "PollForActivityTask", {"domain": self.domain, "taskList": {"name": queue}}
        )
        return problems + _check_name("task list", queue)

    def check_identity(self, taskrunner_id: str, hostname: str) -> list[str]:
        """Check the identity polls will carry (the default one is cut to 256 characters)."""
        return self._identity_problems(self.identity or _default_identity(hostname))

    async def open_connection(
        self, senders: Mapping[str, _aws.Sender], settings: ConnectionSettings
    ) -> Connection:
        identity = self.identity or _default_identity(settings.hostname)
        return _SWFConnection(senders, self.domain, identity)


def _read_activity_task(answer: Any) -> dict[str, Any] | None:
    """PollForActivityTask's answer, its members checked; None when no task came."""
    response = _aws.read_object(answer)
    token = read_member(response, "taskToken", str)
    if not token:
        return None  # moto omits it, SWF sends ""
    kind = read_member(response, "activityType", dict) or {}
    execution = read_member(response, "workflowExecution", dict) or {}
    # Checked here so the task's properties (activity_id, input, ...) can trust them.
    for mapping, name in (
        (response, "activityId"),
        (response, "input"),
        (kind, "name"),
        (kind, "version"),
        (execution, "workflowId"),
        (execution, "runId"),
    ):
        read_member(mapping, name, str)
    read_member(response, "startedEventId", int)
    return {**response, "activityType": kind, "workflowExecution": execution}


def _read_configuration(answer: Any) -> Mapping[str, Any]:
    return read_member(_aws.read_object(answer), "configuration", dict) or {}


# SWF's model requires cancelRequested; moto leaves it out (and never cancels).
_read_cancel_requested = read_flag("cancelRequested", default=False)


class _SWFConnection(AwsConnection):
    runner_heartbeat = False
    errors = SWF_DESCRIPTION.errors
    log = log

    def __init__(self, senders: Mapping[str, _aws.Sender], domain: str, identity: str) -> None:
        super().__init__(senders)
        self._domain = domain
        self._identity = identity
        # Heartbeat timeout per (name, version): a float, or None for "NONE"/unknown.
        self._timeouts: dict[tuple[str, str], float | None] = {}

    async def poll(self, queue: str) -> ReceivedTask | None:
        response = await self.call(
            "PollForActivityTask",
            {"domain": self._domain, "taskList": {"name": queue}, "identity": self._identity},
            _read_activity_task,
        )
        if response is None:
            return None
        token = response["taskToken"]
        kind = response["activityType"]
        return ReceivedTask(
            id=token,
            queue=queue,
            type=kind.get("name"),
            lease_seconds=await self._heartbeat_timeout(kind),
            attributes=response,
        )

    async def _heartbeat_timeout(self, kind: Mapping[str, str]) -> float | None:
        key = (kind.get("name") or "", kind.get("version") or "")
        if key in self._timeouts:
            return self._timeouts[key]
        try:
            configuration = await self.call(
                "DescribeActivityType",
                {"domain": self._domain, "activityType": {"name": key[0], "version": key[1]}},
                _read_configuration,
            )
        except PipeworkerError as exc:
            # Not fatal: the worker's progress_interval is the cadence then. Cached, so a
            # missing permission costs one call per type, not one per task.
            log.warning(
                "cannot read the heartbeat timeout of activity type %s/%s (%s); "
                "heartbeats follow progress_interval",
                key[0],
                key[1],
                exc,
            )
            timeout = None
        else:
            timeout = _timeout_seconds(configuration.get("defaultTaskHeartbeatTimeout"))
        self._timeouts[key] = timeout
        return timeout

    async def acknowledge(self, task: ReceivedTask) -> bool:
        return False  # SWF starts the task when it hands it out

    async def report_progress(
        self, task: ReceivedTask, fields: Mapping[str, Any] | None = None
    ) -> bool:
        params: dict[str, Any] = {"taskToken": task.id}
        details = fields.get("details") if fields else None
        if isinstance(details, str):
            params["details"] = details
        return await self.call("RecordActivityTaskHeartbeat", params, _read_cancel_requested)

    async def finish(self, task: ReceivedTask, outcome: Outcome) -> None:
        if outcome.status == "FINISHED":
            params: dict[str, Any] = {"taskToken": task.id}
            if outcome.result is not None:
                try:
                    params["result"] = result_text(outcome.result)
                except (TypeError, ValueError) as exc:
                    log.warning("task %s: result is not JSON-serialisable: %s", task.id, exc)
                    failed = Outcome.failed(
                        "ResultNotSerializable", f"{type(outcome.result).__name__}: {exc}"
                    )
                    await self.call("RespondActivityTaskFailed", failure_params(task.id, failed))
                    return
            await self.call("RespondActivityTaskCompleted", params)
        else:
            await self.call("RespondActivityTaskFailed", failure_params(task.id, outcome))

    async def canceled(self, task: ReceivedTask) -> None:
        await self.call("RespondActivityTaskCanceled", {"taskToken": task.id})

    async def heartbeat(self, queue: str) -> bool:
        return False  # SWF has no runner heartbeat; the supervisor does not call this
