"""An in-memory Data Pipeline on :class:`~pipeworker.testing.MockTransport`, with scripted faults.

::

    fake = FakeDataPipeline()
    worker = Worker(service=DataPipeline(transport=fake.transport), rate_limits=None)
    task_id = fake.put("wg-1", fields={"table": "users"})
    async with worker:
        status = await fake.wait_for(lambda: fake.statuses.get(task_id))
    assert status["taskStatus"] == "FINISHED"

The fake keeps a queue of tasks per worker group and answers the four task-runner calls as the
service does: PollForTask hands out the next task or holds until one is put or the hold ends
(90 s, the service's), ReportTaskProgress answers ``canceled``, SetTaskStatus records the
outcome, ReportTaskRunnerHeartbeat answers ``terminate``; EvaluateExpression answers from
``expressions``. Every call is recorded with its loop time, before any fault applies, and
:meth:`FakeService.wait_for` wakes on each call, so a test waits on what happened instead of on
the clock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeworker._mocktransport import MockTransport, ServiceErrorAnswer

__all__ = ["Call", "FakeDataPipeline", "FakeService"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Call:
    """One request the fake received: its operation, parameters and loop time (seconds)."""

    operation: str
    params: dict[str, Any]
    at: float


@dataclass(slots=True)
class _Fault:
    times: int
    make: Callable[[], Any]  # returns an answer to send instead, or raises


class FakeService:
    """What every fake service shares: the call record, waiting on it, scripted faults, a queue
    of tasks per queue name with the long poll's hold, and tasks cancelled or lost.

    Subclasses set :attr:`task_key` (the parameter naming a task, ``taskId`` or ``taskToken``)
    and :attr:`lost_code` (the error code of a lost lease), and answer their operations.

    Attributes:
        calls: every request received, in order.
        transport: the :class:`~pipeworker.testing.MockTransport` to give the service.
        hold: how long a poll waits for a task before answering none (seconds).
    """

    task_key: str
    lost_code: str

    def __init__(self, *, hold: float = 90.0) -> None:
        self.calls: list[Call] = []
        self.transport = MockTransport(self._handle)
        self.hold = hold
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._delays: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._queues: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        self._cancelled: set[str] = set()
        self._lost: set[str] = set()

    # -- what a test asks -----------------------------------------------------------------------

    def calls_of(self, operation: str) -> list[Call]:
        """The calls of *operation*, in order."""
        return [call for call in self.calls if call.operation == operation]

    async def wait_for(self, predicate: Callable[[], _T], within: float = 5.0) -> _T:
        """Wait until *predicate()* is truthy (checked now and after every call); return it.

        Only the fake's own calls and changes wake it: for a condition that changes without a
        call (a metric, a handler's state), wait on an event of your own.

        Raises:
            TimeoutError: it stayed falsy for *within* seconds (a test's safety net only).
        """
        async with asyncio.timeout(within):
            while not (value := predicate()):
                await self._changes()
        return value

    async def _changes(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def changed(self) -> None:
        """Wake :meth:`wait_for`: the fake's state changed outside a call."""
        self._changed.set()

    def calls_about(self, task: str) -> list[Call]:
        """Every call about *task* (by its id or token), faulted or landed."""
        return [call for call in self.calls if call.params.get(self.task_key) == task]

    # -- tasks ------------------------------------------------------------------------------------

    def cancel(self, task: str) -> None:
        """From now on, the service asks for *task* to stop at its next report (Data
        Pipeline's ``canceled``, SWF's ``cancelRequested``)."""
        self._cancelled.add(task)

    def lose(self, task: str) -> None:
        """From now on, every call about *task* answers the service's lost-lease error."""
        self._lost.add(task)

    def _queue(self, queue: str, task: dict[str, Any]) -> None:
        self._queues[queue].append(task)
        self.changed()

    async def _take(self, queue: str) -> dict[str, Any] | None:
        """The next task of *queue*, waiting up to :attr:`hold` for one; None after the hold."""
        waiting = self._queues[queue]
        try:
            async with asyncio.timeout(self.hold):
                while not waiting:
                    await self._changes()
        except TimeoutError:
            return None
        return waiting.popleft()

    # -- scripted faults ------------------------------------------------------------------------

    def fail(
        self, operation: str, code: str, *, times: int = 1, status: int = 400, message: str = ""
    ) -> None:
        """Answer the next *times* calls of *operation* with the AWS error *code*."""

        def answer() -> Any:
            raise ServiceErrorAnswer(code, message or f"scripted {code}", status=status)

        self._faults[operation].append(_Fault(times, answer))

    def drop(self, operation: str, *, times: int = 1) -> None:
        """Drop the connection of the next *times* calls of *operation* (no answer at all)."""

        def answer() -> Any:
            raise ConnectionError(f"scripted drop of {operation}")

        self._faults[operation].append(_Fault(times, answer))

    def garble(self, operation: str, answer: Any = b"<html>oops</html>", *, times: int = 1) -> None:
        """Answer the next *times* calls of *operation* with *answer*, unread by the service
        (a body that is not JSON by default; a dict of the wrong shape works too)."""
        self._faults[operation].append(_Fault(times, lambda: answer))

    def delay(self, operation: str, seconds: float | None) -> None:
        """Hold every call of *operation* *seconds* before answering (None: no more delay)."""
        if seconds is None:
            self._delays.pop(operation, None)
        else:
            self._delays[operation] = seconds

    # -- answering ------------------------------------------------------------------------------

    async def _handle(self, operation: str, params: dict[str, Any]) -> Any:
        self.calls.append(Call(operation, params, asyncio.get_running_loop().time()))
        self._changed.set()
        delay = self._delays.get(operation)
        if delay:
            await asyncio.sleep(delay)
        faults = self._faults.get(operation)
        if faults:
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.popleft()
            return fault.make()
        task = params.get(self.task_key)
        if task is not None and task in self._lost:
            raise ServiceErrorAnswer(self.lost_code, f"task {task} is not this runner's")
        answer = await self.answer(operation, params)
        self._changed.set()
        return answer

    async def answer(self, operation: str, params: dict[str, Any]) -> Any:
        """The service's answer to *operation*; subclasses answer their operations."""
        raise ServiceErrorAnswer("UnknownOperationException", f"{operation} is not served here")


_ids = itertools.count(1)


class FakeDataPipeline(FakeService):
    """Data Pipeline's task-runner calls, in memory.

    Args:
        hold: how long PollForTask waits for a task before answering none (seconds).
        expressions: EvaluateExpression's answers by expression; an expression not in it is
            answered with itself.

    Attributes:
        statuses: the SetTaskStatus request that landed for each task, by task id.
        progress: the ``fields`` of every ReportTaskProgress that landed, by task id (``{}``
            for a report without fields).
        terminate: what ReportTaskRunnerHeartbeat answers.
    """

    task_key = "taskId"
    lost_code = "TaskNotFoundException"

    def __init__(self, *, hold: float = 90.0, expressions: Mapping[str, str] = {}) -> None:
        super().__init__(hold=hold)
        self.expressions = dict(expressions)
        self.statuses: dict[str, dict[str, Any]] = {}
        self.progress: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.terminate = False

    def put(
        self,
        queue: str,
        *,
        fields: Mapping[str, str | list[str]] | None = None,
        type: str | None = None,
        lease: str | None = None,
        task_id: str | None = None,
    ) -> str:
        """Queue a task for worker group *queue*; return its id.

        Args:
            fields: the attempt's fields (what ``task.field()`` reads).
            type: the activity type (``"ShellCommandActivity"``).
            lease: the attempt's ``reportProgressTimeout`` (``"2 Minutes"``).
            task_id: the id; a new one by default.
        """
        task_id = task_id or f"task-{next(_ids)}"
        attempt = f"@attempt_{task_id}"
        wire: list[dict[str, str]] = []
        for key, value in {**(fields or {})}.items():
            for item in value if isinstance(value, list) else [value]:
                wire.append({"key": key, "stringValue": item})
        if type is not None:
            wire.append({"key": "type", "stringValue": type})
        if lease is not None:
            wire.append({"key": "reportProgressTimeout", "stringValue": lease})
        self._queue(
            queue,
            {
                "taskId": task_id,
                "pipelineId": "df-FAKE",
                "attemptId": attempt,
                "objects": {attempt: {"id": attempt, "name": attempt, "fields": wire}},
            },
        )
        return task_id

    def status_calls(self, task_id: str) -> list[Call]:
        """Every SetTaskStatus sent for *task_id*, faulted or landed."""
        return [call for call in self.calls_of("SetTaskStatus") if call.params["taskId"] == task_id]

    async def answer(self, operation: str, params: dict[str, Any]) -> Any:
        if operation == "PollForTask":
            task = await self._take(params["workerGroup"])
            return {} if task is None else {"taskObject": task}
        if operation == "ReportTaskProgress":
            self.progress[params["taskId"]].append(
                {
                    item["key"]: item.get("stringValue", item.get("refValue"))
                    for item in params.get("fields", [])
                }
            )
            return {"canceled": params["taskId"] in self._cancelled}
        if operation == "SetTaskStatus":
            self.statuses[params["taskId"]] = params
            return {}
        if operation == "ReportTaskRunnerHeartbeat":
            return {"terminate": self.terminate}
        if operation == "EvaluateExpression":
            expression = params["expression"]
            return {"evaluatedExpression": self.expressions.get(expression, expression)}
        return await super().answer(operation, params)
