"""Injected failures are retried; polls never exceed free slots nor starve progress reports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiobotocore.session import get_session

from pipeworker import DataPipeline, Ref, Task, Worker
from pipeworker.local import LocalService
from pipeworker.services.base import Connection, ConnectionSettings, Outcome, ReceivedTask
from tests.helpers import activities, attempts, calls, eventually, start_pipeline


async def test_500s_and_throttles_are_retried_until_every_task_lands(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(progress_interval=0.05)
    ran: list[str] = []

    @worker.activity("wg-faults")
    async def handle(task: Task) -> None:
        ran.append(task.attempt_id)
        await asyncio.sleep(0.1)

    names = [f"A{n}" for n in range(6)]
    pipeline_id = await start_pipeline(dp, activities("wg-faults", *names))
    service.configure_faults(error_rate=0.25, throttle_rate=0.25, seed=7)
    async with worker:

        async def all_finished() -> bool:
            found = await attempts(dp, pipeline_id)
            return len(found) == 6 and all(a["@status"] == "FINISHED" for a in found)

        await eventually(all_finished)
    faults = service.stats()["faults"]
    assert faults.get("error", 0) > 0
    assert faults.get("throttle", 0) > 0
    assert len(ran) == 6  # every task ran exactly once: no status was lost, none was re-run


class Counting(DataPipeline):
    """Data Pipeline, counting polls in flight and tasks running at each moment."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = 0
        self.most_busy = 0

    def enter(self) -> None:
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)

    @asynccontextmanager
    async def connect(self, settings: ConnectionSettings) -> AsyncIterator[Connection]:
        async with super().connect(settings) as inner:
            yield _CountingConnection(inner, self)


class _CountingConnection(Connection):
    def __init__(self, inner: Connection, counter: Counting) -> None:
        self.inner = inner
        self.counter = counter

    async def poll(self, queue: str) -> ReceivedTask | None:
        self.counter.enter()
        task = await self.inner.poll(queue)
        if task is None:
            self.counter.busy -= 1  # a task keeps the slot until its status is sent
        return task

    async def acknowledge(self, task: ReceivedTask) -> bool:
        return await self.inner.acknowledge(task)

    async def report_progress(
        self, task: ReceivedTask, fields: Mapping[str, str | Ref] | None = None
    ) -> bool:
        return await self.inner.report_progress(task, fields)

    async def finish(self, task: ReceivedTask, outcome: Outcome) -> None:
        await self.inner.finish(task, outcome)
        self.counter.busy -= 1

    async def heartbeat(self, queue: str) -> bool:
        return await self.inner.heartbeat(queue)


async def test_polls_in_flight_never_exceed_free_slots_across_worker_groups(
    dp: Any, make_worker: Callable[..., Worker]
) -> None:
    counting = Counting()
    worker = make_worker(service=counting, max_concurrency=3)
    groups = [f"wg-slots-{n}" for n in range(3)]
    for group in groups:
        worker.activity(group)(_short)
    pipelines = [await start_pipeline(dp, activities(group, "X", "Y")) for group in groups]
    async with worker:

        async def all_ended() -> bool:
            found = [a for p in pipelines for a in await attempts(dp, p)]
            return len(found) == 6 and all(a["@status"] == "FINISHED" for a in found)

        await eventually(all_ended, within=20)
    assert counting.most_busy == 3


async def _short(task: Task) -> None:
    await asyncio.sleep(0.02)


async def test_long_polls_on_many_worker_groups_never_starve_progress_reports(
    make_service: Callable[..., Awaitable[LocalService]], make_worker: Callable[..., Worker]
) -> None:
    # 12 worker groups each hold a poll open for 5 s (more than aiobotocore's default pool of
    # 10) while one task reports progress every 50 ms: every report must get through.
    held = await make_service(poll_hold=5.0)
    worker = make_worker(endpoint_url=held.endpoint_url, max_concurrency=16, progress_interval=0.05)
    started = asyncio.Event()

    @worker.activity("wg-pool-0")
    async def work(task: Task) -> None:
        started.set()
        await asyncio.sleep(1.0)

    for n in range(1, 12):
        worker.activity(f"wg-pool-{n}")(_short)
    client = get_session().create_client(
        "datapipeline", region_name="us-east-1", endpoint_url=held.endpoint_url
    )
    async with client as dp, worker:
        await eventually(lambda: calls(held, "PollForTask") >= 12)
        pipeline_id = await start_pipeline(dp, activities("wg-pool-0", "Busy"))
        await asyncio.wait_for(started.wait(), 5)
        reports = calls(held, "ReportTaskProgress")
        await asyncio.sleep(0.5)
        during = calls(held, "ReportTaskProgress") - reports
        await eventually(lambda: _finished(dp, pipeline_id))
        stopping = asyncio.create_task(worker.stop())
        held.scheduler.close()  # answer the held polls now instead of after 5 s
        await stopping
    assert during >= 6  # about 10 expected at a 50 ms cadence (jittered)


async def _finished(dp: Any, pipeline_id: str) -> bool:
    found = await attempts(dp, pipeline_id)
    return bool(found) and found[0]["@status"] == "FINISHED"


async def test_dropped_connections_are_retried_and_no_status_is_lost(
    make_service: Callable[..., Awaitable[LocalService]], make_worker: Callable[..., Worker]
) -> None:
    # A poll dropped after the service handed out its task strands that task until the
    # acknowledgement deadline, so this service reassigns after 0.5 s.
    flaky = await make_service(ack_timeout=0.5)
    worker = make_worker(endpoint_url=flaky.endpoint_url, progress_interval=0.05)
    worker.activity("wg-drops")(_short)
    client = get_session().create_client(
        "datapipeline", region_name="us-east-1", endpoint_url=flaky.endpoint_url
    )
    async with client as dp:
        pipeline_id = await start_pipeline(dp, activities("wg-drops", *(f"D{n}" for n in range(6))))
        flaky.configure_faults(drop_rate=0.2, seed=3)
        async with worker:

            async def all_finished() -> bool:
                found = await attempts(dp, pipeline_id)
                finished = {
                    a["@instanceParent"]["ref"] for a in found if a["@status"] == "FINISHED"
                }
                return len(finished) == 6

            await eventually(all_finished, within=20)
    faults = flaky.stats()["faults"]
    assert faults.get("drop_before", 0) + faults.get("drop_after", 0) > 0


def _settings(endpoint_url: str) -> ConnectionSettings:
    # Three worker groups and 40 slots: the pools are sized from both.
    return ConnectionSettings(
        region="us-east-1",
        endpoint_url=endpoint_url,
        taskrunner_id="r",
        hostname="h",
        queues=["a", "b", "c"],
        max_concurrency=40,
    )


async def test_polls_and_reports_use_separate_clients_with_their_own_profiles(
    service: LocalService,
) -> None:
    settings = _settings(service.endpoint_url)
    async with DataPipeline(transport="aiobotocore").connect(settings) as connection:
        senders = connection._senders  # type: ignore[attr-defined]
        poll = senders["PollForTask"].client.meta.config
        report = senders["SetTaskStatus"].client.meta.config
        assert senders["ReportTaskProgress"].client is senders["SetTaskStatus"].client
        assert senders["PollForTask"].client is not senders["SetTaskStatus"].client
    assert poll.read_timeout > 90  # above the service's 90 s hold
    assert poll.retries["total_max_attempts"] == 1  # the one retry layer is pipeworker's
    assert report.retries["total_max_attempts"] == 1
    assert poll.max_pool_connections == 41  # one poll per slot, plus one
    assert report.max_pool_connections == 40


async def test_the_lean_transport_has_separate_poll_and_report_pools(
    service: LocalService,
) -> None:
    settings = _settings(service.endpoint_url)
    async with DataPipeline().connect(settings) as connection:
        senders = connection._senders  # type: ignore[attr-defined]
        assert senders["PollForTask"].args == ("poll", "PollForTask")
        for operation in ("ReportTaskProgress", "SetTaskStatus", "ReportTaskRunnerHeartbeat"):
            assert senders[operation].args == ("report", operation)
        sessions = senders["PollForTask"].func.__self__._sessions
        poll, report = sessions["poll"], sessions["report"]
        assert poll.connector is not report.connector
        assert poll.timeout.sock_read > 90  # above the service's 90 s hold
        assert report.timeout.sock_read == 30
        assert poll.connector.limit == 41  # one poll per slot, plus one
        assert report.connector.limit == 40
        # EvaluateExpression still goes through aiobotocore.
        assert senders["EvaluateExpression"].client.meta.config.retries["total_max_attempts"] == 1
