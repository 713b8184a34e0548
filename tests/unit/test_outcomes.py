"""Outcomes: what a handler's return or exception sends as the task's status, and that one task's
end never ends the worker. The end-to-end versions over HTTP are in ``tests/worker/test_run.py``
and ``tests/reliability/test_handler_mistakes.py``; the outcome texts themselves are pinned in
``tests/worker/test_outcomes.py``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import Outcome, PreconditionNotMet, Task, TaskFailed, Worker
from pipeworker.testing import FakeDataPipeline


class Hooked(Worker):
    """Records the hooks around each task, with the outcome on_task_end gets."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.events: list[tuple[str, str, Any]] = []

    async def on_task_start(self, task: Task) -> None:
        self.events.append(("start", task.id, None))

    async def on_task_end(self, task: Task, outcome: Outcome | None) -> None:
        self.events.append(("end", task.id, outcome))


async def _run(fake: FakeDataPipeline, worker: Worker, *task_ids: str) -> list[dict[str, Any]]:
    async with worker:
        await fake.wait_for(lambda: all(task_id in fake.statuses for task_id in task_ids))
    return [fake.statuses[task_id] for task_id in task_ids]


async def test_returning_is_finished_and_the_hooks_see_the_outcome(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(Hooked)

    @worker.activity("wg-1")
    async def handle(task: Task) -> str:
        return "done"

    task_id = fake.put("wg-1")
    [status] = await _run(fake, worker, task_id)
    assert status == {"taskId": task_id, "taskStatus": "FINISHED"}
    assert worker.events == [("start", task_id, None), ("end", task_id, Outcome.finished("done"))]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            TaskFailed("SourceMissing", "no file s3://b/k"),
            {
                "taskStatus": "FAILED",
                "errorId": "SourceMissing",
                "errorMessage": "no file s3://b/k",
            },
        ),
        (
            TaskFailed("Service_Thing", "reserved"),
            {"taskStatus": "FAILED", "errorId": "Task_Service_Thing", "errorMessage": "reserved"},
        ),
        (PreconditionNotMet("not yet"), {"taskStatus": "FALSE"}),
    ],
    ids=["task-failed", "reserved-prefix", "precondition"],
)
async def test_the_handlers_own_outcomes(
    fake: FakeDataPipeline,
    make_worker: Callable[..., Worker],
    error: Exception,
    expected: dict[str, str],
) -> None:
    worker = make_worker()

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        raise error

    task_id = fake.put("wg-1")
    [status] = await _run(fake, worker, task_id)
    assert status == {"taskId": task_id, **expected}


class Custom(BaseException):
    pass


def _raise(error: type[BaseException]) -> None:
    if error is SystemExit:
        sys.exit(3)
    raise error("from the handler")


@pytest.mark.parametrize(
    "error", [ValueError, SystemExit, KeyboardInterrupt, GeneratorExit, Custom]
)
@pytest.mark.parametrize("style", ["async", "sync"])
async def test_anything_a_handler_raises_fails_its_task_only(
    fake: FakeDataPipeline,
    make_worker: Callable[..., Worker],
    error: type[BaseException],
    style: str,
) -> None:
    # Moved here from tests/reliability/test_handler_mistakes.py (it ran over HTTP).
    worker = make_worker()
    release = asyncio.Event()

    if style == "async":

        @worker.activity("wg-1", type="Bad")
        async def bad(task: Task) -> None:
            _raise(error)

    else:

        @worker.activity("wg-1", type="Bad")
        def bad_sync(task: Task) -> None:
            _raise(error)

    @worker.activity("wg-1", type="Good")
    async def good(task: Task) -> None:
        await release.wait()  # running while the bad one blows up

    running = fake.put("wg-1", type="Good")
    failed = fake.put("wg-1", type="Bad")
    async with worker:
        status = await fake.wait_for(lambda: fake.statuses.get(failed))
        assert running not in fake.statuses
        release.set()
        await fake.wait_for(lambda: fake.statuses.get(running))
    assert status["taskStatus"] == "FAILED"
    assert status["errorId"] == error.__name__
    assert status.get("errorMessage", "") == ("3" if error is SystemExit else "from the handler")
    assert "_raise" in status["errorStackTrace"]  # the trace reaches into the handler's calls
    assert fake.statuses[running]["taskStatus"] == "FINISHED"  # the worker went on


async def test_a_sync_handler_runs_in_a_thread_and_its_return_is_finished(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    threads: list[str] = []

    @worker.activity("wg-1")
    def handle(task: Task) -> None:
        threads.append(threading.current_thread().name)
        task.report_progress(rows=3)  # from the thread, without await

    task_id = fake.put("wg-1")
    [status] = await _run(fake, worker, task_id)
    assert status["taskStatus"] == "FINISHED"
    assert threads[0] != threading.main_thread().name
    # The fields were pending when the handler ended: sent before the status.
    assert fake.progress[task_id][-1] == {"rows": "3"}


async def test_an_async_function_behind_a_plain_callable_is_run_not_reported_unrun(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    ran: list[str] = []

    async def really(task: Task) -> None:
        await asyncio.sleep(0)
        ran.append(task.id)

    worker.activity("wg-1")(lambda task: really(task))
    task_id = fake.put("wg-1")
    [status] = await _run(fake, worker, task_id)
    assert (status["taskStatus"], ran) == ("FINISHED", [task_id])


async def test_a_task_of_a_type_no_handler_takes_fails_as_no_handler(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()

    @worker.activity("wg-1", type="ShellCommandActivity")
    async def handle(task: Task) -> None:
        pass

    task_id = fake.put("wg-1", type="CopyActivity")
    [status] = await _run(fake, worker, task_id)
    assert (status["taskStatus"], status["errorId"]) == ("FAILED", "NoHandler")
    assert "'CopyActivity'" in status["errorMessage"]
    assert fake.progress[task_id] == []  # never acknowledged: it never ran
