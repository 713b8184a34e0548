"""A handler's mistakes end its own task only: async functions behind plain decorators, exception
objects that cannot be printed, observers and hooks that raise, oversized progress, threads that
never look at ``task.cancelled``.

Moved here from ``tests/reliability/test_handler_mistakes.py`` (they ran over HTTP); the mistakes
whose subject is the service (refused fields, the acknowledgement window) stay there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import Outcome, PreconditionNotMet, Task, TaskFailed, Worker
from pipeworker._events import Observer
from pipeworker.testing import FakeDataPipeline


def _plain_decorator(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(task: Task) -> Any:  # no functools.wraps: looks like a plain function
        return function(task)

    return wrapper


async def _until_landed(fake: FakeDataPipeline, worker: Worker, *task_ids: str) -> None:
    async with worker:
        await fake.wait_for(lambda: all(task_id in fake.statuses for task_id in task_ids))


async def test_async_handlers_registered_as_sync_are_awaited_never_finished_unrun(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    ran: list[str] = []
    worker = make_worker()

    async def handle(task: Task) -> None:
        await asyncio.sleep(0.01)
        ran.append(task.queue)

    @worker.activity("wg-A")
    @_plain_decorator
    async def decorated(task: Task) -> None:
        await handle(task)

    worker.activity("wg-B")(lambda task: handle(task))
    worker.activity("wg-C")(functools.wraps(handle)(lambda task: handle(task)))
    ids = [fake.put(group) for group in ("wg-A", "wg-B", "wg-C")]
    await _until_landed(fake, worker, *ids)
    assert [fake.statuses[task_id]["taskStatus"] for task_id in ids] == ["FINISHED"] * 3
    assert sorted(ran) == ["wg-A", "wg-B", "wg-C"]


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class NotAString(Exception):
    def __str__(self) -> Any:
        return 42


class Hostile:
    def __str__(self) -> str:
        raise ValueError("hostile")

    def __repr__(self) -> str:
        raise ValueError("hostile too")


ODD = {
    "Unprintable": (Unprintable(), "FAILED", "Unprintable"),
    "NotAString": (NotAString(), "FAILED", "NotAString"),
    "NumericId": (TaskFailed(404, "missing"), "FAILED", "404"),  # type: ignore[arg-type]
    "DictMessage": (TaskFailed("E", {"why": "x"}), "FAILED", "E"),  # type: ignore[arg-type]
    "HostilePrecondition": (PreconditionNotMet(Hostile()), "FALSE", None),
}


async def test_odd_exception_objects_end_their_task_with_a_best_effort_text(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()

    @worker.activity("wg-1")
    async def odd(task: Task) -> None:
        raise ODD[task.field("label")][0]

    ids = {name: fake.put("wg-1", fields={"label": name}) for name in ODD}
    await _until_landed(fake, worker, *ids.values())
    for name, (_, status, error_id) in ODD.items():
        sent = fake.statuses[ids[name]]
        assert sent["taskStatus"] == status, name
        if error_id is not None:
            assert sent["errorId"] == error_id, name
    assert "why" in fake.statuses[ids["DictMessage"]]["errorMessage"]


async def test_a_raising_observer_is_logged_once_and_switched_off(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Observer):
        calls = 0

        def task_started(self, task: Task) -> None:
            Broken.calls += 1
            raise RuntimeError("metrics backend down")

    class Hooked(Worker):
        async def on_task_end(self, task: Task, outcome: Outcome | None) -> None:
            raise SystemExit("hook exits")

    worker = make_worker(Hooked, observer=Broken())

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        await asyncio.sleep(0.01)

    ids = [fake.put("wg-1") for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="pipeworker"):
        await _until_landed(fake, worker, *ids)
    assert {fake.statuses[task_id]["taskStatus"] for task_id in ids} == {"FINISHED"}
    assert Broken.calls == 1
    switched_off = [r for r in caplog.records if "switched off" in r.getMessage()]
    assert len(switched_off) == 1
    assert switched_off[0].exc_info is not None  # with its trace
    assert "on_task_end() failed" in caplog.text


async def test_report_progress_checks_the_whole_request_size(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    errors: list[str] = []

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        await task.report_progress(a="x" * 9000)
        try:
            await task.report_progress(b="y" * 9000)  # each fits; together they do not
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    task_id = fake.put("wg-1")
    await _until_landed(fake, worker, task_id)
    assert fake.statuses[task_id]["taskStatus"] == "FINISHED"
    assert len(errors) == 1
    assert errors[0].startswith("ValidationError")
    assert "15,360" in errors[0]
    assert fake.progress[task_id][-1] == {"a": "x" * 9000}  # the first was sent, alone


async def test_a_cancelled_sync_handler_that_keeps_running_keeps_its_slot(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    class Lingering(Observer):
        def __init__(self) -> None:
            self.changes: list[bool] = []
            self.changed = asyncio.Event()

        def thread_lingering(self, lingering: bool) -> None:
            self.changes.append(lingering)
            self.changed.set()

    observer = Lingering()
    worker = make_worker(max_concurrency=1, progress_interval=0.05, observer=observer)
    registry = worker.metrics_registry
    started = threading.Event()
    finish = threading.Event()

    @worker.activity("wg-1")
    def oblivious(task: Task) -> None:
        started.set()
        finish.wait(30)  # never looks at task.cancelled

    task_id = fake.put("wg-1")
    lingering = "pipeworker_lingering_handler_threads"
    with caplog.at_level(logging.WARNING, logger="pipeworker"):
        async with worker:
            try:
                await asyncio.to_thread(started.wait, 10)
                fake.lose(task_id)  # the lease is lost: cancelled
                await asyncio.wait_for(observer.changed.wait(), 5)
                observer.changed.clear()
                assert registry.get_sample_value(lingering) == 1
                polls = len(fake.calls_of("PollForTask"))
                await asyncio.sleep(0.05)  # many loop turns: a free slot would poll at once
                assert len(fake.calls_of("PollForTask")) == polls  # the thread holds the slot
            finally:
                finish.set()
            await fake.wait_for(lambda: len(fake.calls_of("PollForTask")) > polls)
            assert registry.get_sample_value(lingering) == 0
    assert observer.changes == [True, False]
    assert "lease lost" in caplog.text
    assert task_id not in fake.statuses
