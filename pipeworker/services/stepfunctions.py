"""AWS Step Functions activity workers behind the service interface.

How the activity calls map onto the interface the supervisor speaks::

    poll(activity)           GetActivityTask        (60 s hold; no taskToken when no task)
    acknowledge(task)        nothing                (the task started when it was handed out)
    report_progress(task)    SendTaskHeartbeat      (on the worker's cadence; see below)
    finish(task, outcome)    SendTaskSuccess(output=JSON) / SendTaskFailure(error, cause)
    heartbeat(queue)         never called: Step Functions has no runner heartbeat

Step Functions never tells a worker a state's ``HeartbeatSeconds``, and a heartbeat answers no
"cancel requested": a stop is learned only when a heartbeat answers ``TaskTimedOut``,
``TaskDoesNotExist`` or ``InvalidToken`` (the heartbeat timeout passed, the state's
``TimeoutSeconds`` passed, or the execution was stopped). That is a lost lease: the handler is
cancelled and nothing more is sent. So heartbeats go out every ``progress_interval`` of the
worker, or every third of the ``HeartbeatSeconds`` declared per activity with
``heartbeat_seconds=``, whichever is shorter.

A SendTaskSuccess or SendTaskFailure whose answer was lost is sent again; if the first one
landed, the second answers ``TaskTimedOut``. That is logged at INFO as "most likely recorded",
not as a failure. ``ActivityWorkerLimitExceeded``, the throttles and ``KmsThrottlingException``
are retried with backoff; the other Kms* errors are rejections.

``transport="lean"`` (the default) sends GetActivityTask and SendTask* signed (as ``states``) by
botocore's SigV4 signer over bare aiohttp (JSON 1.0, ``AWSStepFunctions.<Op>``); the rest
(ListActivities, CreateActivity, once at start) goes through aiobotocore, as does everything
with ``transport="aiobotocore"``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pipeworker._model import validate_input
from pipeworker.exceptions import (
    ConfigurationError,
    LeaseLost,
    PipeworkerError,
    TransientServiceError,
)
from pipeworker.services import _aws
from pipeworker.services._aws import AwsConnection, Transport, Wire
from pipeworker.services._awsservice import AwsService
from pipeworker.services._sfndescription import STEP_FUNCTIONS
from pipeworker.services._sfntask import StepFunctionsTask
from pipeworker.services.base import (
    Connection,
    ConnectionSettings,
    MalformedAnswer,
    Outcome,
    RateLimit,
    ReceivedTask,
    truncate_head,
    truncate_tail,
)

__all__ = [
    "ERROR_LIMIT",
    "OUTPUT_LIMIT",
    "RESULT_NOT_SERIALIZABLE",
    "RESULT_TOO_LARGE",
    "StepFunctions",
    "StepFunctionsTask",
    "failure_params",
    "map_error",
    "output_text",
    "rate_limits_for",
]

SERVICE: Final = STEP_FUNCTIONS.name

OUTPUT_LIMIT = STEP_FUNCTIONS.limits["output"]
"""The most UTF-8 bytes of SendTaskSuccess's output."""
ERROR_LIMIT = STEP_FUNCTIONS.limits["error"]
CAUSE_LIMIT = STEP_FUNCTIONS.limits["cause"]
WORKER_NAME_LIMIT = STEP_FUNCTIONS.limits["worker_name"]
# Of a cut cause, the message keeps at most this much of the head; the trace's tail the rest.
_CAUSE_MESSAGE_SHARE = 4096

RESULT_NOT_SERIALIZABLE = "ResultNotSerializable"
"""The error a task fails with when its handler returned something JSON cannot encode."""
RESULT_TOO_LARGE = "ResultTooLarge"
"""The error a task fails with when its handler's JSON output is over 262,144 bytes."""

# GetActivityTask's largest answer: input up to 256 KiB characters, each at most 12 bytes once
# JSON-escaped, plus a token of <= 2,048: about 3.2 MB. 4 MiB leaves room.
MAX_POLL_ANSWER_BYTES = 4 << 20

log = logging.getLogger("pipeworker.stepfunctions")

_WIRE = Wire(
    STEP_FUNCTIONS,
    lean=STEP_FUNCTIONS.worker_operations,
    slow=frozenset({"ListActivities", "CreateActivity"}),  # once at start
    max_poll_answer_bytes=MAX_POLL_ANSWER_BYTES,
)
_ACTIVITY_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:activity:[^:\s]+")
# Step Functions' rule for names: no whitespace, brackets, wildcards, specials or controls.
_BAD_NAME = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]")


def rate_limits_for(region: str | None) -> dict[str, RateLimit]:
    """The account's per-call buckets in *region*, by connection method: 3,000 burst and 500
    per second in us-east-1, us-west-2 and eu-west-1; 1,500 and 300 elsewhere (and when the
    region is unknown, the conservative reading)."""
    return STEP_FUNCTIONS.pacing(region)


def map_error(operation: str, exc: Exception) -> PipeworkerError:
    """Translate what either transport raised for a Step Functions *operation*.

    TaskTimedOut, TaskDoesNotExist and InvalidToken on a call with a token are a lost lease;
    ActivityWorkerLimitExceeded and KmsThrottlingException are throttles (retried with backoff).
    """
    return _aws.map_error(operation, exc, STEP_FUNCTIONS.errors)


def output_text(result: Any) -> str:
    """A handler's return value as SendTaskSuccess's output: JSON, at most 262,144 bytes.

    Raises:
        TypeError, ValueError: the value cannot be encoded as JSON (NaN and infinities included,
            which Step Functions refuses).
        OverflowError: the JSON is over the limit (its message says how large it is).
    """
    text = json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    size = len(text.encode())
    if size > OUTPUT_LIMIT:
        raise OverflowError(f"the output is {size} bytes of JSON, the limit is {OUTPUT_LIMIT}")
    return text


def failure_params(token: str, outcome: Outcome) -> dict[str, Any]:
    """SendTaskFailure for *outcome*: ``error`` is the error id (<= 256, its head kept), ``cause``
    the message and then the stack trace (<= 32,768: the message's head, the trace's tail)."""
    error = "PreconditionNotMet" if outcome.status == "FALSE" else outcome.error_id or "Error"
    message = outcome.message or ""
    if outcome.stack_trace:
        head = truncate_head(message, _CAUSE_MESSAGE_SHARE)
        # The trace ends with the message again: cut it there too, or a long message would
        # push every frame out of the tail kept.
        trace = outcome.stack_trace
        if message and len(message) > 200:
            trace = trace.replace(message, truncate_head(message, 200))
        room = CAUSE_LIMIT - len(head) - 2
        cause = f"{head}\n\n{truncate_tail(trace, room)}" if head else truncate_tail(trace, room)
    else:
        cause = truncate_head(message, CAUSE_LIMIT)
    return {"taskToken": token, "error": truncate_head(error, ERROR_LIMIT), "cause": cause}


def _name_problems(name: str, what: str) -> list[str]:
    if not 1 <= len(name) <= 80:
        return [f"a {what} is 1 to 80 characters, got {len(name)}"]
    found = _BAD_NAME.search(name)
    if found is not None:
        return [
            f"a {what} must not contain {found.group()!r} (no whitespace, brackets or specials)"
        ]
    return []


def _default_worker_name(hostname: str) -> str:
    return f"{os.getpid()}@{hostname}"[:WORKER_NAME_LIMIT]


class StepFunctions(AwsService[StepFunctionsTask]):
    """AWS Step Functions (2016-11-23) activity workers.

    ``Worker(service=StepFunctions())`` polls the activities its handlers name:
    ``@worker.activity("arn:aws:states:us-east-1:123456789012:activity:resize")``. A bare
    activity name (``"resize"``) is resolved once at start, with ListActivities in the worker's
    account and region; it must exist unless ``create_activities=True``.

    Args:
        worker_name: the ``workerName`` of every GetActivityTask (1 to 80 characters, shown in
            the execution's ActivityStarted events); by default ``"<pid>@<hostname>"``.
        heartbeat_seconds: the ``HeartbeatSeconds`` of the states each activity serves, by the
            name or ARN its handler was registered with; its tasks then heartbeat every third
            of it when that is sooner than the worker's ``progress_interval``.
        create_activities: create the activities named by bare names that do not exist yet
            (CreateActivity is idempotent); off by default, as a typo would otherwise create
            an activity no state machine uses.
        poll_read_timeout: the poll client's read timeout, at least 65 s (the hold is 60 s).
        report_pool_size: connections for heartbeats and SendTask*; by default
            ``max_concurrency`` capped to 10..100.
        transport: ``"lean"`` (default) or ``"aiobotocore"``.

    Raises:
        ConfigurationError: a setting breaks Step Functions' rules; the message says how.
    """

    description = STEP_FUNCTIONS
    wire = _WIRE
    typed_tasks = False

    def __init__(
        self,
        *,
        worker_name: str | None = None,
        heartbeat_seconds: Mapping[str, float] | None = None,
        create_activities: bool = False,
        poll_read_timeout: float = STEP_FUNCTIONS.poll_read_timeout,
        report_pool_size: int | None = None,
        transport: Transport = "lean",
    ) -> None:
        super().__init__(
            poll_read_timeout=poll_read_timeout,
            report_pool_size=report_pool_size,
            transport=transport,
        )
        if worker_name is not None:
            if not isinstance(worker_name, str):
                raise ConfigurationError(f"worker_name must be a string, got {worker_name!r}")
            problems = self._worker_name_problems(worker_name)
            if problems:
                raise ConfigurationError(f"invalid worker_name: {'; '.join(problems)}")
        beats = dict(heartbeat_seconds or {})
        for activity, seconds in beats.items():
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
                raise ConfigurationError(
                    f"heartbeat_seconds[{activity!r}] must be the state's HeartbeatSeconds "
                    f"(a number > 0), got {seconds!r}"
                )
        self.worker_name = worker_name
        self.heartbeat_seconds = beats
        self.create_activities = bool(create_activities)

    def __repr__(self) -> str:
        return f"StepFunctions(transport={self.transport!r})"

    @property
    def task_class(self) -> type[StepFunctionsTask]:
        return StepFunctionsTask

    @property
    def rate_limits(self) -> Mapping[str, RateLimit]:  # type: ignore[override]
        """The account's buckets in the region of the usual AWS settings (see
        :func:`rate_limits_for`)."""
        return rate_limits_for(os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))

    @staticmethod
    def _worker_name_problems(name: str) -> list[str]:
        problems = validate_input(
            SERVICE, "GetActivityTask", {"activityArn": "a", "workerName": name}
        )
        return problems or _name_problems(name, "worker name")

    def check_queue(self, queue: str) -> list[str]:
        """An activity ARN (<= 256 characters) or a bare activity name (1..80)."""
        if not isinstance(queue, str) or not queue:
            return ["an activity must be its ARN or its name, not empty"]
        if queue.startswith("arn:"):
            problems = validate_input(SERVICE, "GetActivityTask", {"activityArn": queue})
            if _ACTIVITY_ARN.fullmatch(queue) is None:
                problems.append("not an activity ARN (arn:aws:states:REGION:ACCOUNT:activity:NAME)")
            return problems
        return _name_problems(queue, "activity name")

    def check_identity(self, taskrunner_id: str, hostname: str) -> list[str]:
        """Check the workerName polls will carry (the default one is cut to 80 characters)."""
        return self._worker_name_problems(self.worker_name or _default_worker_name(hostname))

    async def open_connection(
        self, senders: Mapping[str, _aws.Sender], settings: ConnectionSettings
    ) -> Connection:
        """The connection, bare activity names resolved (and created if asked)."""
        connection = _StepFunctionsConnection(
            senders,
            self.worker_name or _default_worker_name(settings.hostname),
            self.heartbeat_seconds,
        )
        unknown = sorted(set(self.heartbeat_seconds) - set(settings.queues))
        if unknown:
            raise ConfigurationError(
                f"heartbeat_seconds names {', '.join(map(repr, unknown))}, which no handler "
                "polls: use the activity ARN or name its handler was registered with"
            )
        await connection.resolve(settings.queues, create=self.create_activities)
        return connection


def _read_activity_task(answer: Any) -> dict[str, Any] | None:
    """GetActivityTask's answer: None when no task came, else its token and decoded input."""
    response = _aws.read_object(answer)
    token = response.get("taskToken")
    if not token:
        return None
    raw = response.get("input")
    if not isinstance(token, str) or not isinstance(raw, str | None):
        raise MalformedAnswer("taskToken and input must be strings")
    raw = raw if raw is not None else "null"
    try:
        decoded = json.loads(raw)
    except ValueError as exc:
        raise MalformedAnswer(f"the task's input is not JSON: {exc}") from None
    return {"taskToken": token, "raw_input": raw, "input": decoded}


class _StepFunctionsConnection(AwsConnection):
    runner_heartbeat = False
    errors = STEP_FUNCTIONS.errors
    log = log

    def __init__(
        self,
        senders: Mapping[str, _aws.Sender],
        worker_name: str,
        heartbeat_seconds: Mapping[str, float],
    ) -> None:
        super().__init__(senders)
        self._worker_name = worker_name
        self._heartbeat_seconds = heartbeat_seconds
        self._arns: dict[str, str] = {}
        # Tokens whose SendTask* was sent and not answered: a TaskTimedOut on the next attempt
        # most likely means the first one landed.
        self._unanswered: set[str] = set()

    async def resolve(self, queues: Sequence[str], *, create: bool) -> None:
        """Map each queue to its activity ARN; bare names are looked up (or created) once."""
        names = [queue for queue in queues if not queue.startswith("arn:")]
        for queue in queues:
            if queue.startswith("arn:"):
                self._arns[queue] = queue
        if not names:
            return
        found: dict[str, str] = {}
        params: dict[str, Any] = {}
        while True:
            page: dict[str, Any] = await self.call("ListActivities", params)
            for activity in page.get("activities") or []:
                found[str(activity.get("name"))] = str(activity.get("activityArn"))
            token = page.get("nextToken")
            if not token:
                break
            params = {"nextToken": token}
        for name in names:
            if name not in found and create:
                created: dict[str, Any] = await self.call("CreateActivity", {"name": name})
                found[name] = str(created["activityArn"])
                log.info("created activity %s", found[name])
            if name not in found:
                raise ConfigurationError(
                    f"activity {name!r} does not exist in this account and region: create it "
                    f"(aws stepfunctions create-activity --name {name}), register its ARN, or "
                    "pass StepFunctions(create_activities=True)"
                )
            self._arns[name] = found[name]
            log.info("activity %r is %s", name, found[name])

    async def poll(self, queue: str) -> ReceivedTask | None:
        arn = self._arns.get(queue, queue)
        response = await self.call(
            "GetActivityTask",
            {"activityArn": arn, "workerName": self._worker_name},
            _read_activity_task,
        )
        if response is None:
            return None
        return ReceivedTask(
            id=response["taskToken"],
            queue=queue,
            lease_seconds=self._heartbeat_seconds.get(queue),
            attributes={**response, "activityArn": arn},
        )

    async def acknowledge(self, task: ReceivedTask) -> bool:
        return False  # the task started when GetActivityTask handed it out

    async def report_progress(
        self, task: ReceivedTask, fields: Mapping[str, Any] | None = None
    ) -> bool:
        await self.call("SendTaskHeartbeat", {"taskToken": task.id})
        return False  # no "cancel requested": a stop answers TaskTimedOut (a lost lease)

    async def finish(self, task: ReceivedTask, outcome: Outcome) -> None:
        if outcome.status == "FINISHED":
            try:
                params = {"taskToken": task.id, "output": output_text(outcome.result)}
                operation = "SendTaskSuccess"
            except OverflowError as exc:
                log.warning("task %s: %s", task.id, exc)
                failed = Outcome.failed(RESULT_TOO_LARGE, str(exc))
                params, operation = failure_params(task.id, failed), "SendTaskFailure"
            except (TypeError, ValueError) as exc:
                log.warning("task %s: the result is not JSON-serialisable: %s", task.id, exc)
                message = f"{type(outcome.result).__name__}: {exc}"
                failed = Outcome.failed(RESULT_NOT_SERIALIZABLE, message)
                params, operation = failure_params(task.id, failed), "SendTaskFailure"
        else:
            params, operation = failure_params(task.id, outcome), "SendTaskFailure"
        retried = task.id in self._unanswered
        self._unanswered.add(task.id)
        try:
            await self.call(operation, params)
        except LeaseLost as exc:
            self._unanswered.discard(task.id)
            if retried and exc.code == "TaskTimedOut":
                log.info(
                    "task %s: %s answered TaskTimedOut on a retry: the first attempt most "
                    "likely landed and only its answer was lost",
                    task.id,
                    operation,
                )
                return
            raise
        except PipeworkerError as exc:
            if not isinstance(exc, TransientServiceError):
                self._unanswered.discard(task.id)
            raise
        self._unanswered.discard(task.id)

    async def heartbeat(self, queue: str) -> bool:
        return False  # no runner heartbeat; the supervisor does not call this
