"""Leases: progress keeps them at the worker's or the task's cadence; the service takes them back.

A real worker against the in-memory Data Pipeline; the end-to-end versions over HTTP are in
``tests/worker/test_cancel.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import CancelReason, Outcome, Task, Worker
from pipeworker.testing import Call, FakeDataPipeline


def _reports(fake: FakeDataPipeline, task_id: str) -> list[Call]:
    return [
        call for call in fake.calls_of("ReportTaskProgress") if call.params["taskId"] == task_id
    ]


def _about(fake: FakeDataPipeline, task_id: str) -> list[Call]:
    return [call for call in fake.calls if call.params.get("taskId") == task_id]


def _gaps(calls: list[Call]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(calls)]


class Recording(Worker):
    """Records every task's end and its outcome."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.ended: dict[str, Outcome | None] = {}
        self.ended_event = asyncio.Event()

    async def on_task_end(self, task: Task, outcome: Outcome | None) -> None:
        self.ended[task.id] = outcome
        self.ended_event.set()


async def test_progress_is_reported_at_the_workers_cadence_with_the_pending_fields(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(progress_interval=0.1)

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        await task.report_progress(rows=10)
        await fake.wait_for(lambda: len(_reports(fake, task.id)) >= 3)  # ack and two reports

    task_id = fake.put("wg-1")
    async with worker:
        await fake.wait_for(lambda: fake.statuses.get(task_id))
    reports = _reports(fake, task_id)
    assert reports[0].params == {"taskId": task_id}  # the acknowledgement carries no fields
    assert reports[1].params["fields"] == [{"key": "rows", "stringValue": "10"}]
    assert "fields" not in reports[2].params  # sent once
    # Never faster than the interval's jitter allows (a timer does not fire early).
    assert min(_gaps(reports[1:3])) >= 0.1 * 0.9


async def test_a_tasks_shorter_lease_sets_a_cadence_of_three_reports_per_lease(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    # The worker reports every 60 s; the pipeline's reportProgressTimeout is 1 s.
    worker = make_worker(progress_interval=60.0)

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        await fake.wait_for(lambda: len(_reports(fake, task.id)) >= 2)

    task_id = fake.put("wg-1", lease="1 Seconds")
    async with worker:
        await fake.wait_for(lambda: fake.statuses.get(task_id))
    ack, report = _reports(fake, task_id)[:2]
    assert 1 / 3 * 0.9 <= report.at - ack.at < 1.0  # about a third of the lease: inside it


async def test_a_zero_lease_reports_at_the_floor_and_says_the_lease_may_lapse(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker()

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        await fake.wait_for(lambda: len(_reports(fake, task.id)) >= 4)

    # Moved here from tests/reliability/test_handler_mistakes.py (a fake over HTTP there).
    task_id = fake.put("wg-1", lease="0 Seconds")
    with caplog.at_level(logging.WARNING, "pipeworker"):
        async with worker:
            await fake.wait_for(lambda: fake.statuses.get(task_id))
    assert min(_gaps(_reports(fake, task_id)[1:])) >= 0.05 * 0.9  # never spins
    assert "has a 0s lease: progress is reported every 0.05s (the floor)" in caplog.text


async def test_the_service_cancelling_cancels_the_handler_and_no_status_is_sent(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(Recording, progress_interval=0.05)
    started = asyncio.Event()
    seen: dict[str, Any] = {}

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            seen.update(reason=exc.args[0], cancelled=task.cancelled, why=task.cancel_reason)
            raise

    task_id = fake.put("wg-1")
    async with worker:
        await started.wait()
        fake.cancel(task_id)
        await worker.ended_event.wait()
    assert seen == {
        "reason": "canceled by the service",
        "cancelled": True,
        "why": CancelReason.SERVICE,
    }
    assert worker.ended == {task_id: None}
    assert fake.status_calls(task_id) == []


async def test_a_task_cancelled_before_it_started_never_runs(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(Recording)
    ran: list[str] = []

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        ran.append(task.id)

    task_id = fake.put("wg-1")
    fake.cancel(task_id)  # the acknowledgement answers canceled: true
    async with worker:
        await worker.ended_event.wait()
    assert ran == []
    assert [call.operation for call in _about(fake, task_id)] == ["ReportTaskProgress"]


async def test_a_lost_lease_cancels_the_handler_and_nothing_more_is_sent(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(Recording, progress_interval=0.05)
    started = asyncio.Event()
    reasons: list[str] = []

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        await task.report_progress(step="1")  # pending fields are dropped with the lease
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            reasons.append(str(exc.args[0]))
            raise

    task_id = fake.put("wg-1")
    async with worker:
        await started.wait()
        fake.lose(task_id)
        await worker.ended_event.wait()
        about = _about(fake, task_id)
    assert reasons == [
        f"lease lost (ReportTaskProgress: TaskNotFoundException: task {task_id} is not this "
        "runner's)"
    ]
    assert worker.ended == {task_id: None}
    assert about[-1].operation == "ReportTaskProgress"  # the one that found the lease lost
    assert _about(fake, task_id) == about  # nothing after it until the worker stopped
    assert fake.status_calls(task_id) == []


async def test_a_lease_lost_before_the_status_lands_is_not_retried(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(Recording)

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        fake.lose(task.id)

    task_id = fake.put("wg-1")
    with caplog.at_level(logging.WARNING, "pipeworker"):
        async with worker:
            await worker.ended_event.wait()
    assert len(fake.status_calls(task_id)) == 1
    assert f"task {task_id}: lease lost before its FINISHED status landed" in caplog.text


async def test_a_sync_handler_learns_of_its_cancellation_through_the_task(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    # Moved here from tests/worker/test_cancel.py (it ran over HTTP, on both transports).
    worker = make_worker(Recording, progress_interval=0.05)
    started = threading.Event()
    seen: list[CancelReason | None] = []

    @worker.activity("wg-1")
    def handle(task: Task) -> None:
        started.set()
        while not task.cancelled:  # a long job checking between steps
            threading.Event().wait(0.01)
        seen.append(task.cancel_reason)

    task_id = fake.put("wg-1")
    async with worker:
        await asyncio.to_thread(started.wait, 5)
        fake.cancel(task_id)
        await worker.ended_event.wait()
    assert seen == [CancelReason.SERVICE]
    assert worker.ended == {task_id: None}
    assert fake.status_calls(task_id) == []
