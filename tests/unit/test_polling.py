"""Several polls per worker group: up to the free slots are polling, never more.

Moved here from ``tests/worker/test_polling.py`` (they ran over HTTP, on both transports, with a
fake wrapped around the connection); the end-to-end versions of the same rules stay in
``tests/worker/test_faults.py`` (across worker groups) and ``tests/reliability/test_groups.py``
(an idle group never starves a busy one, with the real 90 s hold). The polls come back empty here
after a short hold: the subject is how many are in flight, not the hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import Task, Worker
from pipeworker.testing import FakeDataPipeline


class CountingPolls(FakeDataPipeline):
    """Counts polls in flight and the slots taken when one starts."""

    def __init__(self) -> None:
        super().__init__(hold=0.05)
        self.in_flight = 0
        self.peak = 0
        self.running = 0  # handlers running, kept by the test's handler
        self.busiest = 0  # the most polls plus running handlers seen when a poll started

    async def answer(self, operation: str, params: dict[str, Any]) -> Any:
        if operation != "PollForTask":
            return await super().answer(operation, params)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.busiest = max(self.busiest, self.in_flight + self.running)
        try:
            return await super().answer(operation, params)
        finally:
            self.in_flight -= 1


@pytest.fixture
def fake() -> CountingPolls:
    """The fake every worker of this module talks to (``make_worker`` uses it)."""
    return CountingPolls()


def _holding(counting: CountingPolls, release: asyncio.Event) -> Callable[[Task], Any]:
    async def handle(task: Task) -> None:
        counting.running += 1
        try:
            await release.wait()
        finally:
            counting.running -= 1

    return handle


async def test_an_idle_worker_group_holds_one_poll_and_a_busy_one_scales_up(
    fake: CountingPolls, make_worker: Callable[..., Worker]
) -> None:
    counting = fake
    worker = make_worker(max_concurrency=5)
    release = asyncio.Event()
    worker.activity("wg-1")(_holding(counting, release))
    async with worker:
        # Idle: one poll in flight, hold after hold, never more.
        await counting.wait_for(lambda: len(counting.calls_of("PollForTask")) >= 3)
        assert counting.peak == 1
        # Busy: each poll that brings a task allows one more, up to the free slots.
        for _ in range(4):
            counting.put("wg-1")
        await counting.wait_for(lambda: counting.running == 4)
        assert counting.busiest <= 5
        release.set()


async def test_polls_never_outnumber_the_free_slots(
    fake: CountingPolls, make_worker: Callable[..., Worker]
) -> None:
    counting = fake
    worker = make_worker(max_concurrency=4)
    release = asyncio.Event()
    worker.activity("wg-1")(_holding(counting, release))
    for _ in range(3):
        counting.put("wg-1")
    async with worker:
        await counting.wait_for(lambda: counting.running == 3)
        polls = len(counting.calls_of("PollForTask"))
        await counting.wait_for(lambda: len(counting.calls_of("PollForTask")) >= polls + 3)
        assert counting.in_flight == 1  # the free slot keeps polling, one poll at a time
        release.set()
        # The work is done: polls come back empty and fall back to one.
        await counting.wait_for(lambda: counting.running == 0)
        polls = len(counting.calls_of("PollForTask"))
        await counting.wait_for(lambda: len(counting.calls_of("PollForTask")) >= polls + 6)
        assert counting.in_flight == 1
    assert counting.busiest <= 4
