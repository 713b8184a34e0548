"""Stopping from the worker's own code and around ``serve()``: a stop asked for from a hook
returns, a stop before ``serve()`` is remembered, a second ``async with`` does not detach the
first, and final statuses still being retried when a stop comes are bounded by its deadline.
Moved here from ``tests/reliability/test_stop.py`` (they ran over HTTP); the end-to-end stops
(signals, processes, a stop from a handler) stay there and in ``tests/worker/test_lifecycle.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import Task, Worker, _retry
from pipeworker.testing import FakeDataPipeline


async def test_final_statuses_being_retried_during_a_stop_have_a_deadline(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    _retry.set_testing(False)  # the real backoff: a status retried as in production
    worker = make_worker(shutdown_grace=0.2, shutdown_hard_deadline=0.3)
    started = asyncio.Event()
    finish = asyncio.Event()

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        started.set()
        await finish.wait()

    task_id = fake.put("wg-1")
    serving = asyncio.create_task(worker.serve())
    await started.wait()
    fake.fail(
        "SetTaskStatus", "InternalServiceError", status=500, times=10**6
    )  # the service is down
    finish.set()
    await fake.wait_for(lambda: fake.status_calls(task_id))
    with caplog.at_level(logging.ERROR, logger="pipeworker"):
        async with asyncio.timeout(5):  # grace + hard deadline, not the endless status retries
            await worker.stop()
            await serving
    undelivered = [r for r in caplog.records if "not delivered" in r.getMessage()]
    assert undelivered, caplog.text
    assert undelivered[0].levelno == logging.ERROR
    assert "FINISHED" in undelivered[0].getMessage()
    assert worker.left_behind == (f"task {task_id}: its FINISHED status was not delivered",)
    assert task_id not in fake.statuses


@pytest.mark.parametrize("hook", ["on_startup", "on_task_end", "on_shutdown"])
async def test_stop_called_from_a_hook_returns(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker], hook: str
) -> None:
    returned: list[str] = []

    class Stopping(Worker):
        async def on_startup(self) -> None:
            if hook == "on_startup":
                await self.stop()
                returned.append(hook)

        async def on_task_end(self, task: Task, outcome: Any) -> None:
            if hook == "on_task_end":
                await self.stop()
                returned.append(hook)

        async def on_shutdown(self) -> None:
            if hook == "on_shutdown":
                await self.stop()
                returned.append(hook)

    worker = make_worker(Stopping)

    @worker.activity("wg-1")
    async def handle(task: Task) -> None: ...

    task_id = fake.put("wg-1")
    serving = asyncio.create_task(worker.serve())
    if hook == "on_shutdown":
        await fake.wait_for(lambda: fake.statuses.get(task_id))
        await worker.stop()
    await asyncio.wait_for(serving, 5)
    assert returned == [hook]


async def test_stop_before_serve_is_remembered(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()

    @worker.activity("wg-1")
    async def handle(task: Task) -> None: ...

    await worker.stop()
    await asyncio.wait_for(worker.serve(), 5)
    assert fake.calls_of("PollForTask") == []


async def test_a_refused_second_async_with_does_not_detach_the_first(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()

    @worker.activity("wg-1")
    async def handle(task: Task) -> None: ...

    async with worker:
        with pytest.raises(RuntimeError, match="already running"):
            async with worker:
                pass
        await fake.wait_for(lambda: fake.calls_of("PollForTask"))
    # The first block's end stopped the worker: serve() has returned, nothing polls any more.
    assert worker._supervisor is None
    polls = len(fake.calls_of("PollForTask"))
    task_id = fake.put("wg-1")
    await asyncio.sleep(0.05)
    assert len(fake.calls_of("PollForTask")) == polls
    assert task_id not in fake.statuses
