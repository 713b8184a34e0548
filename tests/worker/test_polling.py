"""Several polls per worker group: up to the free slots are polling, never more."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pipeworker import Task, Worker
from pipeworker.local import LocalService
from tests.helpers import CountingPolls, activities, calls, eventually, start_pipeline


async def test_an_idle_worker_group_holds_one_poll_and_a_busy_one_scales_up(
    dp: Any, service: LocalService, make_worker: Callable[..., Worker], transport: str
) -> None:
    counting = CountingPolls(transport=transport)
    worker = make_worker(service=counting, max_concurrency=5)
    release = asyncio.Event()

    @worker.activity("wg-scaling")
    async def handle(task: Task) -> None:
        counting.running += 1
        try:
            await release.wait()
        finally:
            counting.running -= 1

    async with worker:
        # Idle: one poll in flight, poll hold after poll hold, never more.
        polls = calls(service, "PollForTask")
        await eventually(lambda: calls(service, "PollForTask") >= polls + 3)
        assert counting.peak == 1
        # Busy: each poll that brings a task allows one more, up to the free slots.
        await start_pipeline(dp, activities("wg-scaling", "A", "B", "C", "D"))
        await eventually(lambda: counting.running == 4)
        assert counting.busiest <= 5
        release.set()


async def test_polls_never_outnumber_the_free_slots(
    dp: Any, service: LocalService, make_worker: Callable[..., Worker], transport: str
) -> None:
    counting = CountingPolls(transport=transport)
    worker = make_worker(service=counting, max_concurrency=4)
    release = asyncio.Event()

    @worker.activity("wg-busy")
    async def handle(task: Task) -> None:
        counting.running += 1
        try:
            await release.wait()
        finally:
            counting.running -= 1

    await start_pipeline(dp, activities("wg-busy", "A", "B", "C"))
    async with worker:
        await eventually(lambda: counting.running == 3)
        await asyncio.sleep(0.4)  # longer than a poll hold: the free slot keeps polling
        assert counting.in_flight == 1
        release.set()
        # The work is done: polls come back empty and fall back to one.
        await eventually(lambda: counting.running == 0)
        polls = calls(service, "PollForTask")
        await eventually(lambda: calls(service, "PollForTask") >= polls + 6)
        assert counting.in_flight == 1
    assert counting.busiest <= 4
