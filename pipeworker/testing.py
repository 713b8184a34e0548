"""Helpers for testing your own handlers: run one against a hand-built task, or a local service.

Run a handler without any server::

    from pipeworker.testing import run_handler

    async def test_export() -> None:
        result = await run_handler(export, fields={"table": "users"})
        assert result.status == "FINISHED"
        assert result.progress[-1] == {"rows": "1000"}

Cancel one mid-way, as the service would::

    harness = TaskHarness(fields={"table": "users"})
    harness.start(export)
    await harness.wait_for_progress()
    result = await harness.cancel()
    assert result.status is None                # cancelled: nothing is reported

Run a whole worker against the local service with the ``local_service`` pytest fixture: put
``from pipeworker.testing import local_service`` in your ``conftest.py``, then::

    def test_pipeline(local_service):
        local_service.client.list_pipelines()   # a boto3 client (fake credentials)
        worker = Worker(endpoint_url=local_service.endpoint_url, region="us-east-1")

The handler gets the same :class:`~pipeworker.Task` the worker gives it; only the service behind it
is a fake that records what the task would have sent.

Run a whole worker in memory, fast, with a transport that answers from a function (in the style
of httpx's ``MockTransport``)::

    from pipeworker.testing import MockTransport, ServiceErrorAnswer

    def aws(operation: str, params: dict) -> dict:
        if operation == "ReportTaskProgress":
            raise ServiceErrorAnswer("TaskNotFoundException", "gone", status=400)
        return {}

    worker = Worker(service=DataPipeline(transport=MockTransport(aws)), rate_limits=None)

``SWF(domain=..., transport=...)`` and ``StepFunctions(transport=...)`` take one too. The handler
gets each operation's parameters as they would go over the wire and answers with a dict (an
async handler may wait, as a long poll does); raising :class:`ServiceErrorAnswer` is an AWS error
answer (code, message, HTTP status), ``ConnectionError`` a dropped connection, and returning
bytes that are not JSON an unreadable answer. Only the HTTP request is replaced: nothing reads
credentials, creates a botocore client or touches the network, and the service's wire
translation and error table, the retries, pacing, supervision and task scopes are the real ones.
Pass ``rate_limits=None``: without an ``endpoint_url`` the worker otherwise paces calls by the
account's limits, as it does against AWS.

:class:`FakeDataPipeline` is a small Data Pipeline on that transport: a queue of tasks per
worker group, every call recorded with its time, and scripted faults::

    fake = FakeDataPipeline()
    worker = Worker(service=DataPipeline(transport=fake.transport), rate_limits=None)
    task_id = fake.put("wg-1", fields={"table": "users"})
    fake.fail("SetTaskStatus", "InternalServiceError", status=500)   # the first one fails
    async with worker:
        status = await fake.wait_for(lambda: fake.statuses.get(task_id))
    assert status["taskStatus"] == "FINISHED"

``fake.cancel(task_id)`` answers ``canceled: true`` to its next progress report,
``fake.lose(task_id)`` answers TaskNotFoundException to every call about it, ``drop``, ``garble``
and ``delay`` script the next calls of an operation. :class:`FakeSWF` and
:class:`FakeStepFunctions` are the same for those services (``outcomes`` by task token).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeworker._lease import Leases
from pipeworker.exceptions import LeaseLost, RequestRejected
from pipeworker.services._dptask import FieldValue, ReceivedAttempt, Ref, Task
from pipeworker.services.base import Connection, Outcome, ReceivedTask
from pipeworker.task import CancelReason

if TYPE_CHECKING:
    from pipeworker._events import Hooks
    from pipeworker._scope import TaskScopes

__all__ = [
    "Call",
    "Ending",
    "FakeDataPipeline",
    "FakeSWF",
    "FakeService",
    "FakeStepFunctions",
    "HandlerResult",
    "LocalEndpoint",
    "MockTransport",
    "Request",
    "ServiceErrorAnswer",
    "TaskHarness",
    "local_service",
    "run_handler",
    "serve_in_thread",
]

_ids = itertools.count(1)


@dataclass
class HandlerResult:
    """How a handler run by :class:`TaskHarness` ended.

    Attributes:
        outcome: what the worker would report (FINISHED, FAILED with errorId and message, or
            FALSE); None when the task was cancelled by the service, as then nothing is sent.
        progress: every progress report the handler's ``report_progress`` calls made, in order;
            calls between two reports are merged into one, as the worker merges them.
        error: the exception the handler raised, if it raised one.
        evaluated: the expressions the handler evaluated.
    """

    outcome: Outcome | None
    progress: list[dict[str, str | Ref]] = field(default_factory=list)
    error: BaseException | None = None
    evaluated: list[str] = field(default_factory=list)

    @property
    def result(self) -> Any:
        """What the handler returned (services with results, such as SWF, send it)."""
        return None if self.outcome is None else self.outcome.result

    @property
    def status(self) -> str | None:
        """``"FINISHED"``, ``"FAILED"``, ``"FALSE"``, or None when nothing would be reported."""
        return None if self.outcome is None else self.outcome.status

    @property
    def fields(self) -> dict[str, str | Ref]:
        """Every field reported, later reports overriding earlier ones."""
        merged: dict[str, str | Ref] = {}
        for report in self.progress:
            merged.update(report)
        return merged


class _RecordingConnection(Connection):
    """The service behind a harness task: records what the task's scope sends, answers
    expressions, and takes the task back when the test cancels it."""

    def __init__(self, expressions: Mapping[str, str] | Callable[[str], str]) -> None:
        self.expressions = expressions
        self.evaluated: list[str] = []
        self.progress: list[dict[str, str | Ref]] = []
        self.reported = asyncio.Event()
        self.acknowledged = False
        self.outcome: Outcome | None = None
        self.cancel_confirmed = False
        self.take_back: CancelReason | None = None  # answered at the next report

    async def poll(self, queue: str) -> ReceivedTask | None:  # pragma: no cover (unused)
        return None

    async def acknowledge(self, task: ReceivedTask) -> bool:
        self.acknowledged = True
        return self._answer(task)

    async def report_progress(
        self, task: ReceivedTask, fields: Mapping[str, Any] | None = None
    ) -> bool:
        if fields:
            self.progress.append(dict(fields))
            self.reported.set()
        return self._answer(task)

    def _answer(self, task: ReceivedTask) -> bool:
        if self.take_back is CancelReason.LEASE_LOST:
            raise LeaseLost("the test took the lease back", operation="ReportTaskProgress")
        return self.take_back is CancelReason.SERVICE

    async def finish(self, task: ReceivedTask, outcome: Outcome) -> None:
        self.outcome = outcome

    async def canceled(self, task: ReceivedTask) -> None:
        self.cancel_confirmed = True

    async def heartbeat(self, queue: str) -> bool:  # pragma: no cover (unused)
        return False

    async def evaluate(self, task: ReceivedTask, expression: str) -> str:
        self.evaluated.append(expression)
        if callable(self.expressions):
            return self.expressions(expression)
        try:
            return self.expressions[expression]
        except KeyError:
            raise RequestRejected(
                f"the test gave no result for the expression {expression!r}; pass "
                f"expressions={{{expression!r}: '...'}}",
                operation="EvaluateExpression",
                code="InvalidRequestException",
            ) from None


class _NoHooks:
    async def on_startup(self) -> None: ...
    async def on_shutdown(self) -> None: ...
    async def on_task_start(self, task: Task) -> None: ...
    async def on_task_end(self, task: Task, outcome: Outcome | None) -> None: ...


def _normalise(fields: Mapping[str, Any]) -> dict[str, FieldValue]:
    result: dict[str, FieldValue] = {}
    for key, value in fields.items():
        if isinstance(value, list | tuple):
            result[key] = [item if isinstance(item, Ref) else str(item) for item in value]
        elif isinstance(value, Ref):
            result[key] = value
        else:
            result[key] = str(value)
    return result


class TaskHarness:
    """One task, built by hand, and a handler run against it by the worker's own task scope.

    The handler runs exactly as a worker runs it (``pipeworker._scope``): the acknowledgement,
    progress reports on a cadence, the hooks, the outcome decision and the final status; only the
    service behind it is a recording fake.

    Args:
        fields: the activity's fields (``{"table": "users", "input": Ref("MyS3Node")}``);
            numbers are turned into strings, as the service sends only text.
        objects: more objects of the pipeline, by id (data nodes, the ``Default`` object);
            ``task.field`` follows ``parent`` references into them.
        expressions: what ``task.evaluate`` answers: a mapping from expression to result, or a
            function. An expression not in the mapping fails the handler's call.
        worker_group: the task's worker group.
        type: the activity type (``"ShellCommandActivity"``).
        pipeline_id: the task's pipeline id.
        attempt_id: the attempt object's id; the fields are on this object.
        progress_interval: seconds between two progress reports while the handler runs.
        hooks: a :class:`~pipeworker.Worker` (or anything with its hooks) whose
            ``on_task_start`` and ``on_task_end`` run around the handler, as in the worker.
    """

    def __init__(
        self,
        *,
        fields: Mapping[str, Any] | None = None,
        objects: Mapping[str, Mapping[str, Any]] | None = None,
        expressions: Mapping[str, str] | Callable[[str], str] | None = None,
        worker_group: str = "test-group",
        type: str | None = None,
        pipeline_id: str = "df-TESTPIPELINE",
        attempt_id: str | None = None,
        progress_interval: float = 0.01,
        hooks: Hooks | None = None,
    ) -> None:
        number = next(_ids)
        attempt = attempt_id or f"@TestActivity_2026-01-01T00:00:00_Attempt={number}"
        all_objects: dict[str, Mapping[str, FieldValue]] = {
            key: _normalise(value) for key, value in (objects or {}).items()
        }
        own = _normalise(fields or {})
        if type is not None:
            own.setdefault("type", type)
        all_objects[attempt] = own
        self._received = ReceivedAttempt(
            id=f"test-task-{number}",
            queue=worker_group,
            pipeline_id=pipeline_id,
            attempt_id=attempt,
            objects=all_objects,
            type=type,
        )
        self.connection = _RecordingConnection(expressions or {})
        self.task = Task(self._received, self.connection)
        """The task the handler is given."""
        self._interval = progress_interval
        self._hooks: Hooks = hooks if hooks is not None else _NoHooks()
        self._runner: asyncio.Task[HandlerResult] | None = None
        self._scopes: TaskScopes | None = None
        self._error: BaseException | None = None

    @property
    def progress(self) -> list[dict[str, str | Ref]]:
        """Progress reports so far (each report's fields)."""
        return self.connection.progress

    def start(self, handler: Callable[[Task], Any]) -> None:
        """Start *handler* on the task in the background; :meth:`wait` or :meth:`cancel` next."""
        if self._runner is not None:
            raise RuntimeError("this harness already ran a handler; make a new one")
        self._runner = asyncio.create_task(self._run(handler), name=f"harness-{self.task.id}")

    async def run(self, handler: Callable[[Task], Any]) -> HandlerResult:
        """Run *handler* on the task to its end and return how it ended."""
        self.start(handler)
        return await self.wait()

    async def wait(self) -> HandlerResult:
        """Wait for the started handler to end; return how it ended."""
        if self._runner is None:
            raise RuntimeError("no handler started: call start(handler) first")
        return await asyncio.shield(self._runner)

    async def wait_for_progress(self, within: float = 5.0) -> dict[str, str | Ref]:
        """Wait until the handler has made a progress report; return the latest one.

        Raises:
            TimeoutError: no report within *within* seconds.
        """
        if self._runner is None:
            raise RuntimeError("no handler started: call start(handler) first")
        async with asyncio.timeout(within):
            while not self.progress:
                if self._runner.done():
                    raise AssertionError("the handler ended without reporting progress")
                waiter = asyncio.ensure_future(self.connection.reported.wait())
                await asyncio.wait({waiter, self._runner}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        return self.progress[-1]

    async def cancel(self, reason: CancelReason | str = CancelReason.SERVICE) -> HandlerResult:
        """Cancel the running handler; return the result.

        With the default reason, as the service's ``canceled: true`` (answered at the next
        report): nothing is reported. ``CancelReason.LEASE_LOST``: the next report finds the
        lease lost, and nothing is reported. ``CancelReason.SHUTDOWN``: as a worker's stop after
        its grace, the task is reported FAILED ``RunnerShutdown``. An async handler sees
        :class:`asyncio.CancelledError`; a sync one sees ``task.cancelled`` turn True.
        """
        if self._runner is None:
            raise RuntimeError("no handler started: call start(handler) first")
        reason = CancelReason(reason)
        if reason in (CancelReason.SERVICE, CancelReason.LEASE_LOST):
            self.connection.take_back = reason
        else:
            while self._scopes is None or self.task not in self._scopes.running:
                if self._runner.done():
                    return await self.wait()
                await asyncio.sleep(0)
            self._scopes.cancel(self.task, self._scopes.running[self.task], reason)
        return await self.wait()

    async def _run(self, handler: Callable[[Task], Any]) -> HandlerResult:
        from pipeworker._events import Observer
        from pipeworker._scope import TaskScopes
        from pipeworker.worker import Activity, is_async

        recorded = self._record_errors(handler)
        name = getattr(handler, "__qualname__", None) or repr(handler)
        activity = Activity(self._received.queue, None, recorded, is_async(handler), name)
        self._scopes = TaskScopes(
            self.connection,
            routes={self._received.queue: {None: activity}},
            progress_interval=self._interval,
            cancel_patience=5.0,
            hooks=self._hooks,
            observer=Observer(),
            task_class=lambda received, connection: self.task,
            call_failed=lambda error: None,
            running={},
            give_up=asyncio.Event(),
            leases=Leases(300.0, 120.0),
        )
        thread = await self._scopes.run(self._received)
        if thread is not None:
            # A cancelled plain-function handler runs on in its thread: a test wants to see
            # what it did, so wait for it (the worker would keep its slot meanwhile).
            await asyncio.wait((thread,))
        return HandlerResult(
            self.connection.outcome,
            list(self.progress),
            self._error,
            list(self.connection.evaluated),
        )

    def _record_errors(self, handler: Callable[[Task], Any]) -> Callable[[Task], Any]:
        # The scope turns what a handler raises into an outcome; the kit also hands it back.
        from pipeworker.worker import is_async

        if is_async(handler):

            async def recorded_async(task: Task) -> Any:
                try:
                    return await handler(task)
                except BaseException as exc:
                    self._error = exc
                    raise

            return recorded_async

        def recorded(task: Task) -> Any:
            try:
                return handler(task)
            except BaseException as exc:
                self._error = exc
                raise

        return recorded


async def run_handler(
    handler: Callable[[Task], Any],
    *,
    fields: Mapping[str, Any] | None = None,
    objects: Mapping[str, Mapping[str, Any]] | None = None,
    expressions: Mapping[str, str] | Callable[[str], str] | None = None,
    worker_group: str = "test-group",
    type: str | None = None,
    hooks: Hooks | None = None,
) -> HandlerResult:
    """Run *handler* once on a hand-built task and return how it ended.

    The arguments are :class:`TaskHarness`'s. A handler that raises does not fail the call: the
    exception is in ``result.error`` and ``result.outcome`` is the FAILED the worker would send.
    """
    harness = TaskHarness(
        fields=fields,
        objects=objects,
        expressions=expressions,
        worker_group=worker_group,
        type=type,
        hooks=hooks,
    )
    return await harness.run(handler)


# The transport seam and the fake service on it: pipeworker._mocktransport, _fakeservice.
from pipeworker._fakeactivities import Ending, FakeStepFunctions, FakeSWF  # noqa: E402
from pipeworker._fakeservice import Call, FakeDataPipeline, FakeService  # noqa: E402
from pipeworker._mocktransport import MockTransport, Request, ServiceErrorAnswer  # noqa: E402

# The local service for tests that run a whole worker: pipeworker._testing_local.
from pipeworker._testing_local import (  # noqa: E402
    LocalEndpoint,
    local_service,
    serve_in_thread,
)
