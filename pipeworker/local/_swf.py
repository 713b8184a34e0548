"""The SWF activity-worker subset moto lacks: long polls, heartbeat timeouts, cancellation.

Speaks JSON 1.0 under the ``SimpleWorkflowService.`` target prefix, beside the Data Pipeline API
on the same server. There are no deciders and no workflow history here: activity tasks are
scheduled (and cancelled) with local-only calls, and what became of each is read back with
:meth:`SwfApi.history`::

    RegisterDomain, RegisterActivityType, DescribeActivityType      the setup a worker reads
    PollForActivityTask                                             held up to 60 s (or poll_hold)
    RecordActivityTaskHeartbeat                                     resets the heartbeat timeout
    RespondActivityTaskCompleted / Failed / Canceled
    PipeworkerLocal.ScheduleActivityTask / RequestCancelActivityTask / DescribeActivityTasks

A task whose heartbeat timeout passes is TIMED_OUT and its token dead: every later call with it
answers UnknownResourceFault, as SWF does. Heartbeat timeouts may be fractions of a second
(``"0.3"``), so tests of expiry run fast.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeworker.local._config import LocalConfig
from pipeworker.local._errors import ApiError, invalid_request
from pipeworker.local._longpoll import CONNECTION_ALIVE, LongPollQueue
from pipeworker.services._swfdescription import SWF_DESCRIPTION

__all__ = ["ActivityTaskRecord", "SwfApi"]

NAMESPACE = "com.amazonaws.swf.base.model"

_Key = tuple[str, str]


def unknown_resource(message: str) -> ApiError:
    """UnknownResourceFault: an unknown domain or type, or a task token that is not live."""
    return ApiError("UnknownResourceFault", message, namespace=NAMESPACE)


def _fault(code: str, message: str) -> ApiError:
    return ApiError(code, message, namespace=NAMESPACE)


def _seconds(value: Any, what: str) -> float | None:
    # SWF durations: a string of seconds or "NONE"; numbers are accepted by the local calls.
    if value is None or (isinstance(value, str) and value.upper() == "NONE"):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise invalid_request(
            f"{what} must be a number of seconds or 'NONE', not {value!r}"
        ) from None
    if not seconds > 0:
        raise invalid_request(f"{what} must be > 0 seconds")
    return seconds


@dataclass(eq=False)
class ActivityTaskRecord:
    """One scheduled activity task and what became of it."""

    domain: str
    activity_id: str
    name: str
    version: str
    task_list: str
    input: str | None
    heartbeat_timeout: float | None
    workflow_id: str
    run_id: str
    status: str = "SCHEDULED"  # STARTED, COMPLETED, FAILED, CANCELED, TIMED_OUT
    token: str | None = None
    identity: str | None = None
    started_event_id: int | None = None
    cancel_requested: bool = False
    heartbeats: int = 0
    last_details: str | None = None
    result: str | None = None
    reason: str | None = None
    details: str | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        """A JSON-ready description (``DescribeActivityTasks``, ``swf_task_history()``)."""
        view: dict[str, Any] = {
            "domain": self.domain,
            "activityId": self.activity_id,
            "activityType": {"name": self.name, "version": self.version},
            "taskList": self.task_list,
            "status": self.status,
            "cancelRequested": self.cancel_requested,
            "heartbeats": self.heartbeats,
            "workflowExecution": {"workflowId": self.workflow_id, "runId": self.run_id},
        }
        optional = {
            "input": self.input,
            "identity": self.identity,
            "lastHeartbeatDetails": self.last_details,
            "result": self.result,
            "reason": self.reason,
            "details": self.details,
        }
        view.update({key: value for key, value in optional.items() if value is not None})
        return view


class SwfApi:
    """In-memory SWF domains, activity types and activity tasks, with their handlers."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.poll_hold = min(config.poll_hold, SWF_DESCRIPTION.poll_hold)
        self.domains: dict[str, dict[str, Any]] = {}
        self.types: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.tasks: list[ActivityTaskRecord] = []
        self._queue: LongPollQueue[ActivityTaskRecord] = LongPollQueue()
        self._live: dict[str, ActivityTaskRecord] = {}  # STARTED tasks, by token
        self._by_id: dict[_Key, ActivityTaskRecord] = {}  # open tasks, by (domain, activityId)
        self._events = itertools.count(1)
        self._ids = itertools.count(1)
        self._closed_at: float | None = None  # time.monotonic() of close(), until reopen()

    def operations(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """The SWF operations, by name."""
        return {
            "RegisterDomain": self.register_domain,
            "RegisterActivityType": self.register_activity_type,
            "DescribeActivityType": self.describe_activity_type,
            "PollForActivityTask": self.poll_for_activity_task,
            "RecordActivityTaskHeartbeat": self.record_activity_task_heartbeat,
            "RespondActivityTaskCompleted": self.respond_activity_task_completed,
            "RespondActivityTaskFailed": self.respond_activity_task_failed,
            "RespondActivityTaskCanceled": self.respond_activity_task_canceled,
        }

    def control(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """The local-only calls, by name (under the ``PipeworkerLocal.`` prefix)."""
        return {
            "ScheduleActivityTask": self.schedule_call,
            "RequestCancelActivityTask": self.request_cancel_call,
            "DescribeActivityTasks": self.describe_tasks_call,
        }

    def close(self) -> None:
        """Answer waiting polls with no task and stop the heartbeat timers."""
        self._queue.close()
        for record in self._live.values():
            if record.timer is not None:
                record.timer.cancel()
        self._closed_at = time.monotonic()

    def reopen(self) -> None:
        """Re-arm the heartbeat timers :meth:`close` paused, with the time they had left."""
        closed_at, self._closed_at = self._closed_at, None
        if closed_at is None:
            return
        paused = max(0.0, time.monotonic() - closed_at)
        loop = asyncio.get_running_loop()
        for record in self._live.values():
            timer = record.timer
            if timer is not None and timer.cancelled():
                record.timer = loop.call_at(timer.when() + paused, self._close, record, "TIMED_OUT")

    # -- setup ---------------------------------------------------------------------------------

    def _domain(self, name: str) -> dict[str, Any]:
        domain = self.domains.get(name)
        if domain is None:
            raise unknown_resource(f"Unknown domain: {name}")
        return domain

    def register_domain(self, params: dict[str, Any]) -> dict[str, Any]:
        """RegisterDomain."""
        name = params["name"]
        if name in self.domains:
            raise _fault("DomainAlreadyExistsFault", name)
        self.domains[name] = {"name": name, "status": "REGISTERED", **params}
        return {}

    def register_activity_type(self, params: dict[str, Any]) -> dict[str, Any]:
        """RegisterActivityType; timeouts may be fractional seconds here."""
        domain = params["domain"]
        self._domain(domain)
        key = (domain, params["name"], params["version"])
        if key in self.types:
            raise _fault(
                "TypeAlreadyExistsFault", f"ActivityType=[name={key[1]}, version={key[2]}]"
            )
        _seconds(params.get("defaultTaskHeartbeatTimeout"), "defaultTaskHeartbeatTimeout")
        configuration = {
            name: params[name]
            for name in (
                "defaultTaskStartToCloseTimeout",
                "defaultTaskHeartbeatTimeout",
                "defaultTaskList",
                "defaultTaskPriority",
                "defaultTaskScheduleToStartTimeout",
                "defaultTaskScheduleToCloseTimeout",
            )
            if name in params
        }
        self.types[key] = {
            "description": params.get("description"),
            "created": time.time(),
            "configuration": configuration,
        }
        return {}

    def _type(self, domain: str, name: str, version: str) -> dict[str, Any]:
        self._domain(domain)
        kind = self.types.get((domain, name, version))
        if kind is None:
            raise unknown_resource(f"Unknown type: ActivityType=[name={name}, version={version}]")
        return kind

    def describe_activity_type(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeActivityType."""
        wanted = params["activityType"]
        kind = self._type(params["domain"], wanted["name"], wanted["version"])
        info: dict[str, Any] = {
            "activityType": {"name": wanted["name"], "version": wanted["version"]},
            "status": "REGISTERED",
            "creationDate": kind["created"],
        }
        if kind["description"]:
            info["description"] = kind["description"]
        return {"typeInfo": info, "configuration": kind["configuration"]}

    # -- scheduling (local-only) ---------------------------------------------------------------

    def schedule(
        self,
        *,
        domain: str,
        activity_type: tuple[str, str],
        task_list: str | None = None,
        input: str | None = None,
        activity_id: str | None = None,
        heartbeat_timeout: float | str | None = None,
        workflow_id: str = "local-workflow",
        run_id: str = "local-run",
    ) -> ActivityTaskRecord:
        """Schedule an activity task, as a decider's ScheduleActivityTask decision would.

        The task list and heartbeat timeout default to the type's registered defaults.
        """
        name, version = activity_type
        configuration = self._type(domain, name, version)["configuration"]
        if task_list is None:
            task_list = (configuration.get("defaultTaskList") or {}).get("name")
            if not task_list:
                raise _fault(
                    "DefaultUndefinedFault", f"no task list given and {name}/{version} has none"
                )
        if heartbeat_timeout is None:
            timeout = _seconds(configuration.get("defaultTaskHeartbeatTimeout"), "heartbeat")
        else:
            timeout = _seconds(heartbeat_timeout, "heartbeatTimeout")
        if activity_id is None:
            activity_id = f"activity-{next(self._ids)}"
        if (domain, activity_id) in self._by_id:
            raise invalid_request(f"activity {activity_id!r} is already open in {domain!r}")
        record = ActivityTaskRecord(
            domain, activity_id, name, version, task_list, input, timeout, workflow_id, run_id
        )
        self.tasks.append(record)
        self._by_id[(domain, activity_id)] = record
        self._queue.offer((record.domain, record.task_list), record)
        return record

    def request_cancel(self, domain: str, activity_id: str) -> ActivityTaskRecord:
        """Request cancellation: a waiting task is CANCELED at once, a started one learns of it
        from its next heartbeat (``cancelRequested: true``)."""
        record = self._by_id.get((domain, activity_id))
        if record is None:
            raise unknown_resource(f"no open activity {activity_id!r} in domain {domain!r}")
        record.cancel_requested = True
        if record.status == "SCHEDULED":
            self._queue.remove((domain, record.task_list), record)
            self._close(record, "CANCELED")
        return record

    def history(self, domain: str | None = None) -> list[dict[str, Any]]:
        """Every activity task scheduled (in *domain*), oldest first, with what became of it."""
        return [task.view() for task in self.tasks if domain is None or task.domain == domain]

    def schedule_call(self, params: dict[str, Any]) -> dict[str, Any]:
        """``PipeworkerLocal.ScheduleActivityTask``."""
        kind = params.get("activityType")
        if not isinstance(kind, dict) or not kind.get("name") or not kind.get("version"):
            raise invalid_request("ScheduleActivityTask needs activityType {name, version}")
        task_list = params.get("taskList")
        if isinstance(task_list, dict):
            task_list = task_list.get("name")
        execution = params.get("workflowExecution") or {}
        record = self.schedule(
            domain=_text(params, "domain"),
            activity_type=(str(kind["name"]), str(kind["version"])),
            task_list=task_list,
            input=params.get("input"),
            activity_id=params.get("activityId"),
            heartbeat_timeout=params.get("heartbeatTimeout"),
            workflow_id=execution.get("workflowId", "local-workflow"),
            run_id=execution.get("runId", "local-run"),
        )
        return {"activityId": record.activity_id}

    def request_cancel_call(self, params: dict[str, Any]) -> dict[str, Any]:
        """``PipeworkerLocal.RequestCancelActivityTask``."""
        record = self.request_cancel(_text(params, "domain"), _text(params, "activityId"))
        return {"status": record.status}

    def describe_tasks_call(self, params: dict[str, Any]) -> dict[str, Any]:
        """``PipeworkerLocal.DescribeActivityTasks``: the history, optionally of one domain."""
        return {"activityTasks": self.history(params.get("domain"))}

    # -- the activity worker's calls -----------------------------------------------------------

    async def poll_for_activity_task(self, params: dict[str, Any]) -> dict[str, Any]:
        """PollForActivityTask: hold until a task is scheduled on the list, or the hold ends."""
        domain = params["domain"]
        self._domain(domain)
        key = (domain, params["taskList"]["name"])
        record = await self._queue.take(key, self.poll_hold, CONNECTION_ALIVE.get())
        if record is None:
            return {"startedEventId": 0}  # no taskToken: nothing to do
        return self._start(record, params.get("identity"))

    def _start(self, record: ActivityTaskRecord, identity: str | None) -> dict[str, Any]:
        record.status = "STARTED"
        record.token = secrets.token_urlsafe(24)
        record.identity = identity
        record.started_event_id = next(self._events)
        self._live[record.token] = record
        self._arm(record)
        answer: dict[str, Any] = {
            "taskToken": record.token,
            "activityId": record.activity_id,
            "startedEventId": record.started_event_id,
            "workflowExecution": {"workflowId": record.workflow_id, "runId": record.run_id},
            "activityType": {"name": record.name, "version": record.version},
        }
        if record.input is not None:
            answer["input"] = record.input
        return answer

    def _arm(self, record: ActivityTaskRecord) -> None:
        if record.timer is not None:
            record.timer.cancel()
        if record.heartbeat_timeout is not None:
            loop = asyncio.get_running_loop()
            record.timer = loop.call_later(
                record.heartbeat_timeout, self._close, record, "TIMED_OUT"
            )

    def _close(self, record: ActivityTaskRecord, status: str) -> None:
        record.status = status
        if record.timer is not None:
            record.timer.cancel()
            record.timer = None
        if record.token is not None:
            self._live.pop(record.token, None)
        self._by_id.pop((record.domain, record.activity_id), None)

    def _live_task(self, token: str) -> ActivityTaskRecord:
        record = self._live.get(token)
        if record is None:
            raise unknown_resource("Unknown or expired task token")
        return record

    def record_activity_task_heartbeat(self, params: dict[str, Any]) -> dict[str, Any]:
        """RecordActivityTaskHeartbeat: reset the heartbeat timeout; answer cancelRequested."""
        record = self._live_task(params["taskToken"])
        record.heartbeats += 1
        if "details" in params:
            record.last_details = params["details"]
        self._arm(record)
        return {"cancelRequested": record.cancel_requested}

    def respond_activity_task_completed(self, params: dict[str, Any]) -> dict[str, Any]:
        """RespondActivityTaskCompleted."""
        record = self._live_task(params["taskToken"])
        record.result = params.get("result")
        self._close(record, "COMPLETED")
        return {}

    def respond_activity_task_failed(self, params: dict[str, Any]) -> dict[str, Any]:
        """RespondActivityTaskFailed."""
        record = self._live_task(params["taskToken"])
        record.reason = params.get("reason")
        record.details = params.get("details")
        self._close(record, "FAILED")
        return {}

    def respond_activity_task_canceled(self, params: dict[str, Any]) -> dict[str, Any]:
        """RespondActivityTaskCanceled."""
        record = self._live_task(params["taskToken"])
        record.details = params.get("details")
        self._close(record, "CANCELED")
        return {}


def _text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_request(f"{name} must be a non-empty string")
    return value
