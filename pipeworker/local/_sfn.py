"""The Step Functions API of the local service: activities, state machines, executions and the
activity worker's calls, under the ``AWSStepFunctions.`` target prefix (JSON 1.0, signed as
``states``), beside Data Pipeline and SWF on the same server::

    CreateActivity, DescribeActivity, ListActivities, DeleteActivity
    CreateStateMachine (the subset in pipeworker.local._asl), DescribeStateMachine,
    ListStateMachines, DeleteStateMachine
    StartExecution, DescribeExecution, ListExecutions, GetExecutionHistory, StopExecution
    GetActivityTask                      held up to 60 s (or poll_hold); wakes when a task comes
    SendTaskHeartbeat / SendTaskSuccess / SendTaskFailure

A token is live from the GetActivityTask that hands it out until its task ends. Every later call
with it answers ``TaskTimedOut``, whatever ended it (a SendTask*, a timeout, StopExecution), as
AWS does; a token this service never issued answers ``InvalidToken``.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pipeworker.local._asl import ACTIVITY_ARN, check_definition
from pipeworker.local._aslpath import StatesError
from pipeworker.local._config import LocalConfig
from pipeworker.local._errors import ApiError
from pipeworker.local._longpoll import CONNECTION_ALIVE, LongPollQueue
from pipeworker.local._sfnrun import (
    DATA_LIMIT,
    ActivityTaskRecord,
    Execution,
    StateMachine,
)
from pipeworker.services._sfndescription import STEP_FUNCTIONS

__all__ = ["ACCOUNT", "REGION", "SfnApi"]

_V = TypeVar("_V")

NAMESPACE = "com.amazonaws.swf.service.model"  # what AWS's Step Functions errors carry
MAX_POLLERS = STEP_FUNCTIONS.limits["pollers"]
"""Open GetActivityTask calls per activity before ActivityWorkerLimitExceeded."""
REGION = "us-east-1"
ACCOUNT = "123456789012"
TOKEN_PREFIX = "pwlsfn1"

# AWS's rule for names: no whitespace, brackets, wildcards, these specials or control characters.
_BAD_NAME = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]")
_MACHINE_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[^:\s]+")
_EXECUTION_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[^:\s]+:[^:\s]+")


def _error(code: str, message: str) -> ApiError:
    return ApiError(code, message, namespace=NAMESPACE)


def _check_name(name: str) -> None:
    found = _BAD_NAME.search(name)
    if found is not None:
        raise _error("InvalidName", f"Invalid Name: '{name}' (contains {found.group()!r})")


def _check_arn(arn: str, pattern: re.Pattern[str], what: str) -> None:
    if pattern.fullmatch(arn) is None:
        raise _error(
            "InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: {arn}' ({what})"
        )


def _find(table: Mapping[str, _V], arn: str, pattern: re.Pattern[str], kind: str) -> _V:
    """*table*'s entry for *arn*: InvalidArn if it is not an ARN of *kind* ("State Machine"),
    ``<Kind>DoesNotExist`` if there is none."""
    _check_arn(arn, pattern, f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind.lower()} ARN")
    found = table.get(arn)
    if found is None:
        raise _error(f"{kind.replace(' ', '')}DoesNotExist", f"{kind} Does Not Exist: '{arn}'")
    return found


def _page(key: str, items: Sequence[Any], params: dict[str, Any]) -> dict[str, Any]:
    """One page of a List* answer: *items* under *key*, and a ``nextToken`` if more follow."""
    size = params.get("maxResults") or 100
    token = params.get("nextToken")
    start = 0
    if token is not None:
        if not token.isdigit():
            raise _error("InvalidToken", f"Invalid Token: '{token}'")
        start = int(token)
    end = start + size
    page: dict[str, Any] = {key: list(items[start:end])}
    if end < len(items):
        page["nextToken"] = str(end)
    return page


def _json_text(text: str, code: str, what: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _error(code, f"Invalid {what}: the value is not valid JSON ({exc})") from None
    size = len(text.encode())
    if size > DATA_LIMIT:
        raise _error(code, f"Invalid {what}: {size} bytes, the maximum is {DATA_LIMIT} bytes")
    return value


class SfnApi:
    """In-memory activities, state machines and executions, with their handlers."""

    def __init__(self, config: LocalConfig) -> None:
        self.time_scale = config.time_scale
        self.poll_hold = min(config.poll_hold, STEP_FUNCTIONS.poll_hold)
        self.activities: dict[str, dict[str, Any]] = {}
        self.machines: dict[str, StateMachine] = {}
        self.executions: dict[str, Execution] = {}
        self._queue: LongPollQueue[ActivityTaskRecord] = LongPollQueue()
        self._live: dict[str, ActivityTaskRecord] = {}
        self._dead: set[str] = set()

    def operations(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """The Step Functions operations, by name."""
        return {
            "CreateActivity": self.create_activity,
            "DescribeActivity": self.describe_activity,
            "ListActivities": self.list_activities,
            "DeleteActivity": self.delete_activity,
            "CreateStateMachine": self.create_state_machine,
            "DescribeStateMachine": self.describe_state_machine,
            "ListStateMachines": self.list_state_machines,
            "DeleteStateMachine": self.delete_state_machine,
            "StartExecution": self.start_execution,
            "DescribeExecution": self.describe_execution,
            "ListExecutions": self.list_executions,
            "GetExecutionHistory": self.get_execution_history,
            "StopExecution": self.stop_execution,
            "GetActivityTask": self.get_activity_task,
            "SendTaskHeartbeat": self.send_task_heartbeat,
            "SendTaskSuccess": self.send_task_success,
            "SendTaskFailure": self.send_task_failure,
        }

    def close(self) -> None:
        """Answer waiting polls with no task; stop every execution and timer."""
        self._queue.close()
        for execution in self.executions.values():
            if execution.task is not None:
                execution.task.cancel()
        for record in list(self._live.values()):
            for timer in record.timers.values():
                timer.cancel()

    # -- activities ----------------------------------------------------------------------------

    def create_activity(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateActivity: idempotent for a name that exists."""
        name = params["name"]
        _check_name(name)
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:activity:{name}"
        activity = self.activities.setdefault(
            arn, {"activityArn": arn, "name": name, "creationDate": time.time()}
        )
        return {"activityArn": arn, "creationDate": activity["creationDate"]}

    def _activity(self, arn: str) -> dict[str, Any]:
        return _find(self.activities, arn, ACTIVITY_ARN, "Activity")

    def describe_activity(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeActivity."""
        return dict(self._activity(params["activityArn"]))

    def list_activities(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListActivities, oldest first, paginated."""
        return _page("activities", list(self.activities.values()), params)

    def delete_activity(self, params: dict[str, Any]) -> dict[str, Any]:
        """DeleteActivity."""
        arn = params["activityArn"]
        _check_arn(arn, ACTIVITY_ARN, "an activity ARN")
        self.activities.pop(arn, None)
        return {}

    def activity_exists(self, arn: str) -> bool:
        return arn in self.activities

    # -- state machines ------------------------------------------------------------------------

    def create_state_machine(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateStateMachine: refuses, naming it, anything outside the local subset."""
        name = params["name"]
        _check_name(name)
        if params.get("type", "STANDARD") != "STANDARD":
            raise _error(
                "StateMachineTypeNotSupported",
                "The local service runs STANDARD state machines only",
            )
        definition, problems = check_definition(params["definition"])
        if problems or definition is None:
            raise _error(
                "InvalidDefinition",
                "Invalid State Machine Definition: " + ", ".join(f"'{p}'" for p in problems),
            )
        role = params["roleArn"]
        if not role.startswith("arn:"):
            raise _error("InvalidArn", f"Invalid Arn: '{role}'")
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
        existing = self.machines.get(arn)
        if existing is not None:
            if existing.definition_text != params["definition"] or existing.role_arn != role:
                raise _error("StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'")
            return {"stateMachineArn": arn, "creationDate": existing.created}
        machine = StateMachine(
            arn, name, params["definition"], definition, role, "STANDARD", time.time()
        )
        self.machines[arn] = machine
        return {"stateMachineArn": arn, "creationDate": machine.created}

    def _machine(self, arn: str) -> StateMachine:
        return _find(self.machines, arn, _MACHINE_ARN, "State Machine")

    def describe_state_machine(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeStateMachine."""
        machine = self._machine(params["stateMachineArn"])
        return {
            "stateMachineArn": machine.arn,
            "name": machine.name,
            "status": machine.status,
            "definition": machine.definition_text,
            "roleArn": machine.role_arn,
            "type": machine.type,
            "creationDate": machine.created,
        }

    def list_state_machines(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListStateMachines, oldest first, paginated."""
        summaries = [
            {"stateMachineArn": m.arn, "name": m.name, "type": m.type, "creationDate": m.created}
            for m in self.machines.values()
        ]
        return _page("stateMachines", summaries, params)

    def delete_state_machine(self, params: dict[str, Any]) -> dict[str, Any]:
        """DeleteStateMachine: its running executions are stopped."""
        arn = params["stateMachineArn"]
        _check_arn(arn, _MACHINE_ARN, "a state machine ARN")
        machine = self.machines.pop(arn, None)
        if machine is not None:
            for execution in self.executions.values():
                if execution.machine is machine:
                    execution.abort("States.Aborted", "The state machine was deleted")
        return {}

    # -- executions ----------------------------------------------------------------------------

    def start_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartExecution: idempotent for a running execution of the same name and input."""
        machine = self._machine(params["stateMachineArn"])
        name = params.get("name") or str(uuid.uuid4())
        _check_name(name)
        text = params.get("input", "{}")
        _json_text(text, "InvalidExecutionInput", "execution input")
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine.name}:{name}"
        existing = self.executions.get(arn)
        if existing is not None:
            if existing.status != "RUNNING" or existing.input != text:
                raise _error("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
            return {"executionArn": arn, "startDate": existing.started}
        execution = Execution(arn, name, machine, text, self)
        self.executions[arn] = execution
        execution.task = asyncio.get_running_loop().create_task(
            execution.run(), name=f"sfn-execution-{name}"
        )
        return {"executionArn": arn, "startDate": execution.started}

    def _execution(self, arn: str) -> Execution:
        return _find(self.executions, arn, _EXECUTION_ARN, "Execution")

    @staticmethod
    def _summary(execution: Execution) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "executionArn": execution.arn,
            "stateMachineArn": execution.machine.arn,
            "name": execution.name,
            "status": execution.status,
            "startDate": execution.started,
        }
        if execution.stopped is not None:
            summary["stopDate"] = execution.stopped
        return summary

    def describe_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeExecution: status, input, output (once SUCCEEDED), error and cause."""
        execution = self._execution(params["executionArn"])
        answer = self._summary(execution)
        answer["input"] = execution.input
        answer["inputDetails"] = {"included": True}
        if execution.output is not None:
            answer["output"] = execution.output
            answer["outputDetails"] = {"included": True}
        for key in ("error", "cause"):
            value = getattr(execution, key)
            if value is not None:
                answer[key] = value
        return answer

    def list_executions(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListExecutions of a state machine, newest first, optionally of one status."""
        machine = self._machine(params["stateMachineArn"])
        wanted = params.get("statusFilter")
        found = [
            self._summary(e)
            for e in reversed(self.executions.values())
            if e.machine is machine and (wanted is None or e.status == wanted)
        ]
        return _page("executions", found, params)

    def get_execution_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetExecutionHistory, oldest first unless reverseOrder, paginated."""
        events = list(self._execution(params["executionArn"]).events)
        if params.get("reverseOrder"):
            events.reverse()
        if params.get("includeExecutionData") is False:
            events = [_without_data(event) for event in events]
        return _page("events", events, params)

    def stop_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        """StopExecution: ABORTED; the activity task it waits for is taken back."""
        execution = self._execution(params["executionArn"])
        execution.abort(params.get("error"), params.get("cause"))
        return {"stopDate": execution.stopped or time.time()}

    # -- the execution's side of activity tasks ------------------------------------------------

    def schedule(self, record: ActivityTaskRecord) -> None:
        """Queue *record* for its activity's pollers (a waiting poll gets it at once)."""
        loop = asyncio.get_running_loop()
        if record.timeout is not None:
            record.timers["timeout"] = loop.call_later(
                record.timeout, self._time_out, record, False
            )
        self._queue.offer(record.activity_arn, record)

    def discard(self, record: ActivityTaskRecord) -> None:
        """The execution no longer waits for *record*: out of the queue, its token dead."""
        self._queue.remove(record.activity_arn, record)
        if record.open:
            self._close(record, False, StatesError("States.Aborted", "execution stopped"))

    def _close(self, record: ActivityTaskRecord, succeeded: bool, value: Any) -> None:
        for timer in record.timers.values():
            timer.cancel()
        record.timers.clear()
        if record.token is not None:
            self._live.pop(record.token, None)
            self._dead.add(record.token)
        record.outcome.set_result((succeeded, value))

    def _time_out(self, record: ActivityTaskRecord, heartbeat: bool) -> None:
        if not record.open:
            return
        self._queue.remove(record.activity_arn, record)
        what = "HeartbeatSeconds" if heartbeat else "TimeoutSeconds"
        cause = f"The activity task went past its {what}"
        record.execution.event(
            "ActivityTimedOut",
            "activityTimedOutEventDetails",
            error="States.Timeout",
            cause=cause,
        )
        self._close(record, False, StatesError("States.Timeout", cause, heartbeat=heartbeat))

    def _arm_heartbeat(self, record: ActivityTaskRecord) -> None:
        if record.heartbeat is None:
            return
        old = record.timers.pop("heartbeat", None)
        if old is not None:
            old.cancel()
        record.timers["heartbeat"] = asyncio.get_running_loop().call_later(
            record.heartbeat, self._time_out, record, True
        )

    # -- the activity worker's calls -----------------------------------------------------------

    async def get_activity_task(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetActivityTask: hold until a task is scheduled on the activity, or the hold ends."""
        arn = params["activityArn"]
        self._activity(arn)
        if self._queue.waiting(arn) >= MAX_POLLERS:
            raise _error(
                "ActivityWorkerLimitExceeded",
                f"Too many open GetActivityTask calls on {arn} (at most {MAX_POLLERS})",
            )
        # A task whose execution stopped while it was queued is passed over.
        record = await self._queue.take(arn, self.poll_hold, CONNECTION_ALIVE.get(), _is_open)
        if record is None:
            return {}  # no taskToken: nothing to do
        record.token = f"{TOKEN_PREFIX}{secrets.token_urlsafe(48)}"
        record.worker_name = params.get("workerName")
        self._live[record.token] = record
        record.execution.event(
            "ActivityStarted", "activityStartedEventDetails", workerName=record.worker_name
        )
        self._arm_heartbeat(record)
        return {"taskToken": record.token, "input": record.input}

    def _record(self, token: str) -> ActivityTaskRecord:
        record = self._live.get(token)
        if record is not None:
            return record
        if token in self._dead:
            raise _error("TaskTimedOut", "Task Timed Out: 'Provided task does not exist anymore'")
        if token.startswith(TOKEN_PREFIX):
            raise _error("TaskDoesNotExist", "Task Does Not Exist: the token was never issued")
        raise _error("InvalidToken", "Invalid Token: 'Invalid token'")

    def send_task_heartbeat(self, params: dict[str, Any]) -> dict[str, Any]:
        """SendTaskHeartbeat: the task's HeartbeatSeconds start again."""
        self._arm_heartbeat(self._record(params["taskToken"]))
        return {}

    def send_task_success(self, params: dict[str, Any]) -> dict[str, Any]:
        """SendTaskSuccess: the output must be JSON of at most 256 KiB."""
        record = self._record(params["taskToken"])
        output = _json_text(params["output"], "InvalidOutput", "output")
        record.execution.event(
            "ActivitySucceeded",
            "activitySucceededEventDetails",
            output=params["output"],
            outputDetails={"truncated": False},
        )
        self._close(record, True, output)
        return {}

    def send_task_failure(self, params: dict[str, Any]) -> dict[str, Any]:
        """SendTaskFailure: *error* is what the state's Retry and Catch match."""
        record = self._record(params["taskToken"])
        error, cause = params.get("error", ""), params.get("cause", "")
        record.execution.event(
            "ActivityFailed", "activityFailedEventDetails", error=error, cause=cause
        )
        self._close(record, False, StatesError(error, cause))
        return {}


def _without_data(event: dict[str, Any]) -> dict[str, Any]:
    stripped: dict[str, Any] = {}
    for key, value in event.items():
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in ("input", "output")}
        stripped[key] = value
    return stripped


def _is_open(record: ActivityTaskRecord) -> bool:
    return record.open
