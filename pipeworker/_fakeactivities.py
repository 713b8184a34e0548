"""In-memory SWF and Step Functions activity services, on the fake base of ``_fakeservice``.

::

    fake = FakeSWF()
    worker = Worker(service=SWF(domain="orders", transport=fake.transport), rate_limits=None)
    token = fake.put("orders-tasks", input='{"n": 2}', type=("double", "1"))
    async with worker:
        outcome = await fake.wait_for(lambda: fake.outcomes.get(token))
    assert outcome.operation == "RespondActivityTaskCompleted"

Both hand out tasks from a queue per task list (SWF) or activity (Step Functions), holding a
poll until one is put or the hold ends (60 s, the services'), and record how each task ended.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pipeworker._fakeservice import FakeService

__all__ = ["Ending", "FakeSWF", "FakeStepFunctions"]

_tokens = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Ending:
    """How a task ended: the operation that landed (``SendTaskSuccess``...) and its request."""

    operation: str
    params: dict[str, Any]


class FakeSWF(FakeService):
    """Amazon SWF's activity-worker calls, in memory.

    Attributes:
        outcomes: how each task ended, by token (RespondActivityTaskCompleted, Failed or
            Canceled, with its request).
        heartbeats: the ``details`` of every RecordActivityTaskHeartbeat that landed, by token
            (None for a heartbeat without details).
    """

    task_key = "taskToken"
    lost_code = "UnknownResourceFault"

    def __init__(self, *, hold: float = 60.0) -> None:
        super().__init__(hold=hold)
        self.outcomes: dict[str, Ending] = {}
        self.heartbeats: dict[str, list[str | None]] = defaultdict(list)
        self._timeouts: dict[tuple[str, str], str] = {}
        self._events = itertools.count(1)

    def put(
        self,
        task_list: str,
        *,
        input: str | None = None,
        type: tuple[str, str] = ("activity", "1"),
        heartbeat_timeout: str = "NONE",
        token: str | None = None,
    ) -> str:
        """Schedule an activity task on *task_list*; return its token.

        Args:
            input: the task's input text.
            type: the activity type's name and version.
            heartbeat_timeout: the type's ``defaultTaskHeartbeatTimeout`` (seconds, or
                ``"NONE"``), as DescribeActivityType answers it.
            token: the task token; a new one by default.
        """
        token = token or f"swf-token-{next(_tokens)}"
        self._timeouts[type] = heartbeat_timeout
        task: dict[str, Any] = {
            "taskToken": token,
            "activityId": f"activity-{token}",
            "startedEventId": next(self._events),
            "activityType": {"name": type[0], "version": type[1]},
            "workflowExecution": {"workflowId": f"wf-{token}", "runId": "run-1"},
        }
        if input is not None:
            task["input"] = input
        self._queue(task_list, task)
        return token

    async def answer(self, operation: str, params: dict[str, Any]) -> Any:
        token = params.get("taskToken")
        if operation == "PollForActivityTask":
            task = await self._take(params["taskList"]["name"])
            return {"taskToken": "", "startedEventId": 0} if task is None else task
        if operation == "DescribeActivityType":
            kind = params["activityType"]
            timeout = self._timeouts.get((kind["name"], kind["version"]), "NONE")
            return {
                "typeInfo": {"activityType": kind},
                "configuration": {"defaultTaskHeartbeatTimeout": timeout},
            }
        if operation == "RecordActivityTaskHeartbeat":
            assert isinstance(token, str)
            self.heartbeats[token].append(params.get("details"))
            return {"cancelRequested": token in self._cancelled}
        if operation.startswith("RespondActivityTask"):
            assert isinstance(token, str)
            self.outcomes[token] = Ending(operation, params)
            return {}
        return await super().answer(operation, params)


class FakeStepFunctions(FakeService):
    """Step Functions' activity-worker calls, in memory.

    Activities are created by :meth:`put` (or by a worker's ``create_activities=True``); a lost
    lease (:meth:`~FakeService.lose`) answers ``TaskTimedOut``, as a stopped execution or a missed
    heartbeat does. Step Functions has no "cancel requested".

    Attributes:
        outcomes: how each task ended, by token (SendTaskSuccess or SendTaskFailure).
        heartbeats: how many SendTaskHeartbeat landed, by token.
    """

    task_key = "taskToken"
    lost_code = "TaskTimedOut"

    def __init__(self, *, hold: float = 60.0) -> None:
        super().__init__(hold=hold)
        self.outcomes: dict[str, Ending] = {}
        self.heartbeats: dict[str, int] = defaultdict(int)
        self.activities: dict[str, str] = {}  # name -> ARN

    def arn(self, activity: str) -> str:
        """The ARN of *activity*, created if new."""
        return self.activities.setdefault(
            activity, f"arn:aws:states:us-east-1:123456789012:activity:{activity}"
        )

    def put(self, activity: str, input: Any = None, *, token: str | None = None) -> str:
        """Start a task of *activity* with *input* (any JSON value); return its token."""
        token = token or f"sfn-token-{next(_tokens)}"
        self._queue(self.arn(activity), {"taskToken": token, "input": json.dumps(input)})
        return token

    async def answer(self, operation: str, params: dict[str, Any]) -> Any:
        token = params.get("taskToken")
        if operation == "ListActivities":
            return {
                "activities": [
                    {"name": name, "activityArn": arn} for name, arn in self.activities.items()
                ]
            }
        if operation == "CreateActivity":
            return {"activityArn": self.arn(params["name"])}
        if operation == "GetActivityTask":
            task = await self._take(params["activityArn"])
            return {} if task is None else task
        if operation == "SendTaskHeartbeat":
            assert isinstance(token, str)
            self.heartbeats[token] += 1
            return {}
        if operation in ("SendTaskSuccess", "SendTaskFailure"):
            assert isinstance(token, str)
            self.outcomes[token] = Ending(operation, params)
            return {}
        return await super().answer(operation, params)
