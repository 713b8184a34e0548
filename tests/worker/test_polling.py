"""Several polls per worker group: up to the free slots are polling, never more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from pipeworker import DataPipeline, Task, Worker
from pipeworker.local import LocalService
from pipeworker.services.base import Connection, ConnectionSettings, ReceivedTask
from tests.helpers import activities, eventually, start_pipeline


class CountingPolls(DataPipeline):
    """The Data Pipeline service, counting polls in flight and the slots taken when one starts."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.in_flight = 0
        self.peak = 0
        self.running = 0  # handlers running, kept by the test's handler
        self.busiest = 0  # the most polls plus running handlers seen when a poll started

    def connect(self, settings: ConnectionSettings) -> AbstractAsyncContextManager[Connection]:
        return self._counting(super().connect(settings))

    @asynccontextmanager
    async def _counting(
        self, inner: AbstractAsyncContextManager[Connection]
    ) -> AsyncIterator[Connection]:
        async with inner as connection:
            poll = connection.poll

            async def counted(queue: str) -> ReceivedTask | None:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                self.busiest = max(self.busiest, self.in_flight + self.running)
                try:
                    return await poll(queue)
                finally:
                    self.in_flight -= 1

            connection.poll = counted  # type: ignore[method-assign]
            yield connection


async def test_one_worker_group_has_as_many_polls_in_flight_as_free_slots(
    make_service: Callable[..., Awaitable[LocalService]],
    make_worker: Callable[..., Worker],
    transport: str,
) -> None:
    held = await make_service(poll_hold=1.0)
    service = CountingPolls(transport=transport)
    worker = make_worker(service=service, endpoint_url=held.endpoint_url, max_concurrency=5)

    @worker.activity("wg-many-polls")
    async def handle(task: Task) -> None:
        pass

    async with worker:
        await eventually(lambda: service.in_flight == 5, within=0.9)
        await asyncio.sleep(0.2)
        assert service.in_flight == 5
    assert service.peak == 5


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
        await eventually(lambda: counting.in_flight == 4)
    assert counting.peak == 4
    assert counting.busiest <= 4
