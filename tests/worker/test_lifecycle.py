"""Starting, heartbeats, terminate, two-phase shutdown, and the documented subclass pattern."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiobotocore.session import get_session

from pipeworker import Outcome, Task, Worker
from pipeworker.local import LocalService
from tests.helpers import (
    activities,
    attempts,
    by_component,
    calls,
    eventually,
    start_pipeline,
    statuses,
)


async def test_heartbeat_carries_the_runner_and_terminate_stops_it_gracefully(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(taskrunner_id="runner-7", hostname="box-1.example.com")
    worker.activity("wg-a")(_noop)
    worker.activity("wg-b")(_noop)
    serving = asyncio.create_task(worker.serve())
    await eventually(lambda: calls(service, "ReportTaskRunnerHeartbeat") >= 4)
    runner = service.state.runners["runner-7"]
    assert runner.hostname == "box-1.example.com"
    assert runner.worker_group in {"wg-a", "wg-b"}  # one heartbeat per worker group
    service.terminate_runner("runner-7")
    await asyncio.wait_for(serving, 5)  # serve() returns on its own


# A failing heartbeat is never fatal: tests/unit/test_shutdown.py.


async def _is(pending: Awaitable[dict[str, str]], name: str, status: str) -> bool:
    return (await pending).get(name) == status


async def _noop(task: Task) -> None:
    pass


async def test_graceful_stop_lets_tasks_finish_within_the_grace_then_fails_the_rest(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(shutdown_grace=0.5)
    started: set[str] = set()
    reasons: list[str] = []

    @worker.activity("wg-stop")
    async def handle(task: Task) -> None:
        name = task.attempt_id.split("_")[0]
        started.add(name)
        if name == "@Quick":
            await asyncio.sleep(0.3)
            return
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            reasons.append(str(exc.args[0]))
            raise

    pipeline_id = await start_pipeline(dp, activities("wg-stop", "Quick", "Slow"))
    async with worker:
        await eventually(lambda: len(started) == 2)
        polls = calls(service, "PollForTask")
        began = time.monotonic()
        await worker.stop()
        took = time.monotonic() - began
    assert 0.5 <= took < 10.0  # the grace, then the statuses: never the handler's 30 s
    assert calls(service, "PollForTask") <= polls + 1  # at most the poll already in flight
    ended = by_component(await attempts(dp, pipeline_id))
    assert ended["Quick"]["@status"] == "FINISHED"
    assert ended["Slow"]["@status"] == "FAILED"
    assert ended["Slow"]["errorId"] == "RunnerShutdown"
    assert not ended["Slow"]["errorId"].startswith("Service_")
    assert reasons == ["the task runner is shutting down"]


async def test_data_pipeline_polls_in_flight_are_aborted_at_once_on_stop(
    make_service: Callable[..., Awaitable[LocalService]],
    make_worker: Callable[..., Worker],
) -> None:
    # The service's real 90 s hold: the stop must not wait for it. A task published after the
    # stop is not taken by the aborted poll; it waits for the next runner.
    held = await make_service(poll_hold=90.0)
    worker = make_worker(endpoint_url=held.endpoint_url, shutdown_grace=30.0, max_concurrency=1)
    ran: list[str] = []

    @worker.activity("wg-late")
    async def handle(task: Task) -> None:
        ran.append(task.id)

    async with get_session().create_client(
        "datapipeline", region_name="us-east-1", endpoint_url=held.endpoint_url
    ) as dp:
        async with worker:
            await eventually(lambda: calls(held, "PollForTask") == 1)
            began = time.monotonic()
            await asyncio.wait_for(worker.stop(), 5)
            took = time.monotonic() - began
        pipeline_id = await start_pipeline(dp, activities("wg-late", "Late"))
        assert await attempts(dp, pipeline_id) == []  # nobody took it
    assert took < 1.0
    assert calls(held, "PollForTask") == 1  # nothing polled after the stop
    assert ran == []


async def test_stop_called_from_a_handler_does_not_wait_for_itself(
    dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()

    @worker.activity("wg-self-stop")
    async def handle(task: Task) -> None:
        await worker.stop()

    pipeline_id = await start_pipeline(dp, activities("wg-self-stop", "Once"))
    await asyncio.wait_for(worker.serve(), 10)
    assert (await statuses(dp, pipeline_id))["Once"] == "FINISHED"


# The documented subclass pattern: activities as methods, lifecycle hooks as overrides.
class ExportWorker(Worker):
    """A worker that keeps a resource for its whole life and records what happens."""

    def __init__(self, *, target: str, **settings: Any) -> None:
        super().__init__(**settings)
        self.target = target
        self.events: list[str] = []

    async def on_startup(self) -> None:
        self.events.append(f"startup:{self.target}")

    async def on_shutdown(self) -> None:
        self.events.append("shutdown")

    async def on_task_start(self, task: Task) -> None:
        self.events.append(f"start:{task.field('command')}")

    async def on_task_end(self, task: Task, outcome: Outcome | None) -> None:
        self.events.append(f"end:{outcome.status if outcome else None}")

    @Worker.activity("wg-subclass")
    async def export(self, task: Task) -> None:
        self.events.append(f"export to {self.target}")


async def test_subclass_declares_activities_as_methods_and_overrides_hooks(
    dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(ExportWorker, target="s3://out")
    assert isinstance(worker, ExportWorker)
    assert worker.activities["wg-subclass", None].name == "ExportWorker.export"
    pipeline_id = await start_pipeline(dp, activities("wg-subclass", "Nightly"))
    async with worker:
        await eventually(lambda: _is(statuses(dp, pipeline_id), "Nightly", "FINISHED"))
    assert worker.events == [
        "startup:s3://out",
        "start:run Nightly",
        "export to s3://out",
        "end:FINISHED",
        "shutdown",
    ]


async def test_async_with_returns_once_polling_and_the_worker_cannot_run_twice(
    service: LocalService, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    worker.activity("wg-twice")(_noop)
    async with worker:
        await eventually(lambda: calls(service, "PollForTask") >= 1, within=1.0)
        with pytest.raises(RuntimeError, match="already running"):
            await worker.serve()
    # Stopped: it may serve again.
    async with worker:
        pass
