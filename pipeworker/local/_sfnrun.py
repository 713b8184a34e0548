"""One Step Functions execution, interpreted state by state, with its AWS-shaped history.

Each execution runs in its own asyncio task: states follow one another as the definition says,
Task states hand an :class:`ActivityTaskRecord` to the activity's long-poll queue and wait for a
worker's SendTask* (or a timeout), and every step appends the event AWS would record
(``TaskStateEntered``, ``ActivityScheduled``, ``ActivityStarted``, ...). StopExecution cancels
the task; the activity it waits for is taken back and its token dies.

Durations read from the definition (Wait, TimeoutSeconds, HeartbeatSeconds, Retry intervals)
are multiplied by ``time_scale``, so tests can run a one-minute heartbeat timeout in a second.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pipeworker.local._aslpath import (
    StatesError,
    apply_template,
    evaluate_rule,
    read_path,
    write_result,
)
from pipeworker.services._sfndescription import STEP_FUNCTIONS

__all__ = ["DATA_LIMIT", "ActivityTaskRecord", "Execution", "Scheduler", "StateMachine"]

DATA_LIMIT = STEP_FUNCTIONS.limits["output"]
"""The most UTF-8 bytes of an input, output or state payload (256 KiB)."""

# Never caught by States.ALL, only by name (AWS: such errors always fail the execution).
_TERMINAL = frozenset({"States.Runtime", "States.DataLimitExceeded"})
_NOT_A_TASK_FAILURE = frozenset({"States.Timeout", "States.HeartbeatTimeout"})


def dumps(value: Any) -> str:
    """JSON as Step Functions writes it: compact, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def check_size(text: str, what: str) -> None:
    """States.DataLimitExceeded when *text* is over :data:`DATA_LIMIT` UTF-8 bytes."""
    size = len(text.encode())
    if size > DATA_LIMIT:
        raise StatesError(
            "States.DataLimitExceeded",
            f"The {what} of {size} bytes exceeds the maximum of {DATA_LIMIT} bytes",
        )


@dataclass(eq=False)
class StateMachine:
    """A created state machine."""

    arn: str
    name: str
    definition_text: str
    definition: dict[str, Any]
    role_arn: str
    type: str
    created: float
    status: str = "ACTIVE"


@dataclass(eq=False)
class ActivityTaskRecord:
    """One scheduled activity task: in the activity's queue, then held by a worker."""

    execution: Execution
    activity_arn: str
    input: str
    heartbeat: float | None
    timeout: float | None
    token: str | None = None
    worker_name: str | None = None
    outcome: asyncio.Future[tuple[bool, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return not self.outcome.done()


class Scheduler(Protocol):
    """What an execution needs from the service: the activity queues and the clock's scale."""

    time_scale: float

    def activity_exists(self, arn: str) -> bool: ...

    def schedule(self, record: ActivityTaskRecord) -> None: ...

    def discard(self, record: ActivityTaskRecord) -> None: ...


class Execution:
    """A running (or finished) execution, its events, and the asyncio task interpreting it."""

    def __init__(
        self, arn: str, name: str, machine: StateMachine, input_text: str, scheduler: Scheduler
    ) -> None:
        self.arn = arn
        self.name = name
        self.machine = machine
        self.input = input_text
        self.status = "RUNNING"
        self.started = time.time()
        self.stopped: float | None = None
        self.output: str | None = None
        self.error: str | None = None
        self.cause: str | None = None
        self.events: list[dict[str, Any]] = []
        self._scheduler = scheduler
        self._state_name = ""
        self._entered = ""
        self._retry_count = 0
        self.task: asyncio.Task[None] | None = None

    # -- history ---------------------------------------------------------------------------

    def event(self, kind: str, details_key: str | None = None, **details: Any) -> int:
        """Append an event of type *kind*; return its id."""
        event_id = len(self.events) + 1
        event: dict[str, Any] = {"timestamp": time.time(), "type": kind, "id": event_id}
        if event_id > 1:
            event["previousEventId"] = event_id - 1
        if details_key is not None:
            event[details_key] = {k: v for k, v in details.items() if v is not None}
        self.events.append(event)
        return event_id

    def _close(self, status: str, kind: str, details_key: str, **details: Any) -> None:
        self.status = status
        self.stopped = time.time()
        self.error = details.get("error")
        self.cause = details.get("cause")
        self.event(kind, details_key, **details)

    def abort(self, error: str | None, cause: str | None) -> None:
        """StopExecution: ABORTED now; the interpreting task is cancelled."""
        if self.status != "RUNNING":
            return
        self._close(
            "ABORTED", "ExecutionAborted", "executionAbortedEventDetails", error=error, cause=cause
        )
        if self.task is not None:
            self.task.cancel()

    # -- interpretation ----------------------------------------------------------------------

    def context(self) -> dict[str, Any]:
        """The context object (``$$``)."""
        return {
            "Execution": {
                "Id": self.arn,
                "Name": self.name,
                "Input": json.loads(self.input),
                "StartTime": _iso(self.started),
                "RoleArn": self.machine.role_arn,
            },
            "StateMachine": {"Id": self.machine.arn, "Name": self.machine.name},
            "State": {
                "Name": self._state_name,
                "EnteredTime": self._entered,
                "RetryCount": self._retry_count,
            },
        }

    async def run(self) -> None:
        """Interpret the definition from StartAt to the end; record how it ended."""
        self.event(
            "ExecutionStarted",
            "executionStartedEventDetails",
            input=self.input,
            inputDetails={"truncated": False},
            roleArn=self.machine.role_arn,
        )
        timeout = self.machine.definition.get("TimeoutSeconds")
        try:
            async with asyncio.timeout(
                None if timeout is None else timeout * self._scheduler.time_scale
            ):
                output = await self._states()
        except StatesError as exc:
            self._close(
                "FAILED",
                "ExecutionFailed",
                "executionFailedEventDetails",
                error=exc.error,
                cause=exc.cause,
            )
        except TimeoutError:
            self._close(
                "TIMED_OUT",
                "ExecutionTimedOut",
                "executionTimedOutEventDetails",
                error="States.Timeout",
                cause="The execution ran longer than its TimeoutSeconds",
            )
        else:
            self.output = dumps(output)
            self._close(
                "SUCCEEDED",
                "ExecutionSucceeded",
                "executionSucceededEventDetails",
                output=self.output,
                outputDetails={"truncated": False},
            )

    async def _states(self) -> Any:
        states = self.machine.definition["States"]
        name: str | None = self.machine.definition["StartAt"]
        data: Any = json.loads(self.input)
        while name is not None:
            state = states[name]
            kind = state["Type"]
            self._state_name, self._entered, self._retry_count = name, _iso(time.time()), 0
            self.event(
                f"{kind}StateEntered",
                "stateEnteredEventDetails",
                name=name,
                input=dumps(data),
                inputDetails={"truncated": False},
            )
            if kind == "Fail":
                error, cause = state.get("Error"), state.get("Cause")
                if "ErrorPath" in state:
                    error = read_path(state["ErrorPath"], data, self.context())
                if "CausePath" in state:
                    cause = read_path(state["CausePath"], data, self.context())
                raise StatesError(str(error or ""), str(cause or ""))
            data, name = await self._step(name, state, data)
            text = dumps(data)
            check_size(text, f"output of state {self._state_name!r}")
            self.event(
                f"{kind}StateExited",
                "stateExitedEventDetails",
                name=self._state_name,
                output=text,
                outputDetails={"truncated": False},
            )
        return data

    async def _step(self, name: str, state: dict[str, Any], data: Any) -> tuple[Any, str | None]:
        """Run one state on *data*; return its output and the next state's name (None: end)."""
        kind = state["Type"]
        context = self.context()
        effective = _input_path(state, data, context)
        following = None if state.get("End") else state.get("Next")
        if kind == "Choice":
            following = state.get("Default")
            for rule in state["Choices"]:
                if evaluate_rule(rule, effective, context):
                    following = rule["Next"]
                    break
            else:
                if following is None:
                    raise StatesError(
                        "States.NoChoiceMatched",
                        f"No Choice Rules matched and no Default is specified in state {name!r}",
                    )
            return _output_path(state, effective, context), following
        if kind in ("Succeed", "Wait"):
            if kind == "Wait":
                await asyncio.sleep(_wait_seconds(state, effective, context) * self._scale)
            return _output_path(state, effective, context), following
        if "Parameters" in state:
            effective = apply_template(state["Parameters"], effective, context)
        if kind == "Pass":
            result = state.get("Result", effective)
        else:
            result, caught = await self._task(state, effective, data)
            if caught is not None:
                return result, caught  # a Catch: its output, and its Next
            if "ResultSelector" in state:
                result = apply_template(state["ResultSelector"], result, context)
        combined = write_result(state.get("ResultPath", "$"), data, result)
        return _output_path(state, combined, context), following

    @property
    def _scale(self) -> float:
        return self._scheduler.time_scale

    async def _task(self, state: dict[str, Any], effective: Any, data: Any) -> tuple[Any, Any]:
        """A Task state's result, with its Retry; or a Catch's output and Next."""
        retriers: list[dict[str, Any]] = state.get("Retry", [])
        attempts = [0] * len(retriers)
        while True:
            try:
                return await self._activity(state, effective), None
            except StatesError as exc:
                index = _first_match(retriers, exc)
                if index is not None:
                    retrier = retriers[index]
                    if attempts[index] < retrier.get("MaxAttempts", 3):
                        delay = (
                            retrier.get("IntervalSeconds", 1)
                            * retrier.get("BackoffRate", 2.0) ** attempts[index]
                        )
                        delay = min(delay, retrier.get("MaxDelaySeconds", delay))
                        if retrier.get("JitterStrategy") == "FULL":
                            delay = random.uniform(0, delay)
                        attempts[index] += 1
                        self._retry_count += 1
                        await asyncio.sleep(delay * self._scale)
                        continue
                catchers: list[dict[str, Any]] = state.get("Catch", [])
                catch = _first_match(catchers, exc)
                if catch is None:
                    raise
                catcher = catchers[catch]
                error_output = {"Error": exc.error, "Cause": exc.cause}
                return write_result(catcher.get("ResultPath", "$"), data, error_output), catcher[
                    "Next"
                ]

    async def _activity(self, state: dict[str, Any], effective: Any) -> Any:
        arn = state["Resource"]
        text = dumps(effective)
        check_size(text, "input of the activity task")
        timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
        if not self._scheduler.activity_exists(arn):
            cause = f"Activity does not exist: {arn}"
            self.event(
                "ActivityScheduleFailed",
                "activityScheduleFailedEventDetails",
                error="States.Runtime",
                cause=cause,
            )
            raise StatesError("States.Runtime", cause)
        record = ActivityTaskRecord(
            self,
            arn,
            text,
            heartbeat=None if heartbeat is None else heartbeat * self._scale,
            timeout=None if timeout is None else timeout * self._scale,
        )
        self.event(
            "ActivityScheduled",
            "activityScheduledEventDetails",
            resource=arn,
            input=text,
            inputDetails={"truncated": False},
            timeoutInSeconds=timeout,
            heartbeatInSeconds=heartbeat,
        )
        self._scheduler.schedule(record)
        try:
            succeeded, value = await asyncio.shield(record.outcome)
        finally:
            self._scheduler.discard(record)  # a stopped execution takes its task back
        if not succeeded:
            raise value
        return value


def _first_match(entries: list[dict[str, Any]], exc: StatesError) -> int | None:
    for index, entry in enumerate(entries):
        for name in entry["ErrorEquals"]:
            if _matches(name, exc):
                return index
    return None


def _matches(name: str, exc: StatesError) -> bool:
    if name == exc.error:
        return True
    if exc.error in _TERMINAL:
        return False
    if name == "States.ALL":
        return True
    if name == "States.TaskFailed":
        return exc.error not in _NOT_A_TASK_FAILURE
    if name == "States.HeartbeatTimeout":
        return exc.heartbeat
    return False


def _input_path(state: dict[str, Any], data: Any, context: Any) -> Any:
    if "InputPath" not in state:
        return data
    path = state["InputPath"]
    return {} if path is None else read_path(path, data, context)


def _output_path(state: dict[str, Any], data: Any, context: Any) -> Any:
    if "OutputPath" not in state:
        return data
    path = state["OutputPath"]
    return {} if path is None else read_path(path, data, context)


def _wait_seconds(state: dict[str, Any], data: Any, context: Any) -> float:
    if "Seconds" in state:
        return float(state["Seconds"])
    if "SecondsPath" in state:
        seconds = read_path(state["SecondsPath"], data, context)
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise StatesError(
                "States.Runtime",
                f"Invalid SecondsPath '{state['SecondsPath']}': {dumps(seconds)} is not an "
                "integer >= 0",
            )
        return float(seconds)
    stamp = state.get("Timestamp")
    if stamp is None:
        stamp = read_path(state["TimestampPath"], data, context)
    try:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        if when.tzinfo is None:
            raise ValueError("no time zone")
    except ValueError:
        raise StatesError("States.Runtime", f"Invalid timestamp {dumps(stamp)}") from None
    return max(0.0, when.timestamp() - time.time())


def _iso(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
