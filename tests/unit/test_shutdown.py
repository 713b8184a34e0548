"""Shutdown ordering: acknowledge before the handler, status after it; a stop stops polls, gives
running tasks the grace, lands their statuses before ``serve()`` returns, and is bounded by the
hard deadline. The end-to-end versions over HTTP are in ``tests/worker/test_lifecycle.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from pipeworker import Outcome, Task, Worker
from pipeworker.testing import FakeDataPipeline


async def test_the_task_is_acknowledged_before_its_handler_and_its_status_sent_after(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    seen: dict[str, list[str]] = {}

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        seen["at start"] = [call.operation for call in fake.calls if call.params.get("taskId")]
        await asyncio.sleep(0.01)
        seen["at end"] = [call.operation for call in fake.calls if call.params.get("taskId")]

    task_id = fake.put("wg-1")
    async with worker:
        await fake.wait_for(lambda: fake.statuses.get(task_id))
    assert seen == {"at start": ["ReportTaskProgress"], "at end": ["ReportTaskProgress"]}


async def test_a_stop_lets_running_tasks_finish_in_the_grace_and_their_statuses_land_first(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(shutdown_grace=30.0)
    started = asyncio.Event()
    finish = asyncio.Event()

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        started.set()
        await finish.wait()

    task_id = fake.put("wg-1")
    serving = asyncio.create_task(worker.serve())
    await started.wait()
    stopping = asyncio.create_task(worker.stop())
    await fake.wait_for(lambda: worker._supervisor and worker._supervisor.stopping)
    polls = len(fake.calls_of("PollForTask"))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waiting for the running task, within its grace
    finish.set()
    await asyncio.wait_for(stopping, 5)
    assert fake.statuses[task_id]["taskStatus"] == "FINISHED"  # landed before stop() returned
    await asyncio.wait_for(serving, 5)
    assert len(fake.calls_of("PollForTask")) == polls  # no poll after the stop


async def test_after_the_grace_a_running_task_is_cancelled_and_reported_runner_shutdown(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(shutdown_grace=0.1)
    started = asyncio.Event()
    reasons: list[str] = []

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            reasons.append(str(exc.args[0]))
            raise

    task_id = fake.put("wg-1")
    async with worker:
        await started.wait()
    status = fake.statuses[task_id]  # landed before serve() ended
    assert (status["taskStatus"], status["errorId"]) == ("FAILED", "RunnerShutdown")
    assert reasons == ["the task runner is shutting down"]
    assert worker.left_behind == ()


async def test_the_hard_deadline_ends_the_stop_and_names_what_it_left_behind(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(shutdown_grace=0.1, shutdown_hard_deadline=0.2)
    started = asyncio.Event()
    release = asyncio.Event()

    @worker.activity("wg-1", type="Stubborn")
    async def stubborn(task: Task) -> None:
        started.set()
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # ignores its cancellation
                await release.wait()

    @worker.activity("wg-1", type="Quick")
    async def quick(task: Task) -> None:
        pass

    fake.delay("SetTaskStatus", 60.0)  # a status that never gets its answer
    fake.put("wg-1", type="Stubborn", task_id="stubborn")
    fake.put("wg-1", type="Quick", task_id="quick")
    serving = asyncio.create_task(worker.serve())
    await started.wait()
    await fake.wait_for(lambda: fake.status_calls("quick"))
    await worker.stop()  # returns although neither ended
    await asyncio.wait_for(serving, 5)
    release.set()
    handler, status = sorted(worker.left_behind)
    assert handler.startswith("handler ")
    assert handler.endswith("stubborn of task stubborn ignores its cancellation")
    assert status == "task quick: its FINISHED status was not delivered"
    assert "stubborn" not in fake.statuses


async def test_data_pipeline_polls_held_by_the_service_are_aborted_at_the_stop(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    # The fake holds polls for the service's real 90 s: the stop must not wait for the hold.
    worker = make_worker(shutdown_grace=30.0)
    worker.activity("wg-1")(_noop)
    async with worker:
        await fake.wait_for(lambda: fake.calls_of("PollForTask"))
        began = time.monotonic()
    assert time.monotonic() - began < 5.0  # the stop, not the 90 s hold nor the 30 s grace
    assert len(fake.calls_of("PollForTask")) == 1  # an idle group holds one poll; none after


async def test_a_poll_not_yet_sent_when_the_stop_comes_is_never_sent(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    # A task ends and the worker starts another poll in the same turn of the loop as the stop:
    # that poll must not go out, and the stop must not wait out the grace for it.
    ended = asyncio.Event()

    class Recording(Worker):
        async def on_task_end(self, task: Task, outcome: Outcome | None) -> None:
            ended.set()

    worker = make_worker(Recording, shutdown_grace=30.0)
    worker.activity("wg-1")(_noop)
    task_id = fake.put("wg-1")
    fake.cancel(task_id)  # ends at its acknowledgement
    serving = asyncio.create_task(worker.serve())
    await ended.wait()
    polls = len(fake.calls_of("PollForTask"))
    async with asyncio.timeout(5):  # not the 30 s grace
        await worker.stop()
    await serving
    assert len(fake.calls_of("PollForTask")) == polls


async def test_terminate_from_the_heartbeat_stops_the_worker_gracefully(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(heartbeat_interval=0.05, taskrunner_id="runner-7")
    worker.activity("wg-a")(_noop)
    worker.activity("wg-b")(_noop)
    serving = asyncio.create_task(worker.serve())
    await fake.wait_for(lambda: len(fake.calls_of("ReportTaskRunnerHeartbeat")) >= 2)
    beats = {call.params["workerGroup"] for call in fake.calls_of("ReportTaskRunnerHeartbeat")}
    assert beats == {"wg-a", "wg-b"}  # one per worker group
    assert all(
        call.params["taskrunnerId"] == "runner-7"
        for call in fake.calls_of("ReportTaskRunnerHeartbeat")
    )
    fake.terminate = True
    await asyncio.wait_for(serving, 5)  # serve() returns on its own


async def test_a_failing_heartbeat_is_never_fatal(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    # Moved here from tests/worker/test_lifecycle.py (it ran over HTTP, on both transports).
    fake.fail("ReportTaskRunnerHeartbeat", "InternalServiceError", status=500, times=5)
    fake.fail("PollForTask", "InternalServiceError", status=500, times=3)
    worker = make_worker(heartbeat_interval=0.05)
    worker.activity("wg-1")(_noop)
    async with worker:
        await fake.wait_for(lambda: len(fake.calls_of("ReportTaskRunnerHeartbeat")) >= 7)
        task_id = fake.put("wg-1")
        await fake.wait_for(lambda: fake.statuses.get(task_id))


async def _noop(task: Any) -> None:
    pass
