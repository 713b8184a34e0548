"""Retries: 500s, throttles, dropped connections and unreadable answers are retried, and the task
is neither lost nor run or finished twice. The end-to-end versions over HTTP are in
``tests/worker/test_faults.py`` and ``tests/reliability/test_hostile_responses.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import Task, Worker
from pipeworker.testing import FakeDataPipeline


def _once(ran: list[str]) -> Callable[[Task], Any]:
    async def handle(task: Task) -> None:
        ran.append(task.id)

    return handle


FAULTS: dict[str, Callable[[FakeDataPipeline, str], None]] = {
    "500": lambda fake, op: fake.fail(op, "InternalServiceError", status=500, times=2),
    "503-no-code": lambda fake, op: fake.fail(op, "", status=503, times=2),
    "throttle": lambda fake, op: fake.fail(op, "ThrottlingException", status=400, times=2),
    "429": lambda fake, op: fake.fail(op, "TooManyRequests", status=429, times=2),
    "dropped": lambda fake, op: fake.drop(op, times=2),
    "not-json": lambda fake, op: fake.garble(op, b"<html>502 Bad Gateway</html>", times=2),
    # A member of the wrong type (SetTaskStatus's answer has none to read: a list then).
    "wrong-shape": lambda fake, op: fake.garble(
        op, [{}] if op == "SetTaskStatus" else {"canceled": "no", "taskObject": 7}, times=2
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("operation", ["PollForTask", "ReportTaskProgress", "SetTaskStatus"])
async def test_a_failed_call_is_retried_and_the_task_runs_and_lands_once(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker], fault: str, operation: str
) -> None:
    worker = make_worker()
    ran: list[str] = []
    worker.activity("wg-1")(_once(ran))
    FAULTS[fault](fake, operation)
    task_id = fake.put("wg-1")
    async with worker:
        await fake.wait_for(lambda: fake.statuses.get(task_id))
    assert ran == [task_id]
    assert fake.statuses[task_id]["taskStatus"] == "FINISHED"
    sent = fake.status_calls(task_id)
    assert len(sent) == (3 if operation == "SetTaskStatus" else 1)  # two faults, one landing


async def test_a_progress_report_that_keeps_failing_keeps_the_fields_for_the_next(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker]
) -> None:
    # PROGRESS gives up after 4 attempts; the next report is the retry, with the same fields.
    worker = make_worker(progress_interval=0.05)
    reported = asyncio.Event()

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        fake.fail("ReportTaskProgress", "InternalServiceError", status=500, times=4)
        await task.report_progress(step="2")
        await fake.wait_for(lambda: any(fake.progress[task.id]))
        reported.set()

    task_id = fake.put("wg-1")
    async with worker:
        await reported.wait()
        await fake.wait_for(lambda: fake.statuses.get(task_id))
    assert fake.progress[task_id] == [{}, {"step": "2"}]  # the ack, then the fields, once
    assert fake.statuses[task_id]["taskStatus"] == "FINISHED"


async def test_fields_the_service_refuses_are_dropped_and_the_lease_renewed_without_them(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(progress_interval=0.05)

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        fake.fail("ReportTaskProgress", "InvalidRequestException", message="bad field")
        await task.report_progress(odd="value")
        await fake.wait_for(lambda: len(fake.progress[task.id]) >= 2)

    task_id = fake.put("wg-1")
    with caplog.at_level(logging.ERROR, "pipeworker"):
        async with worker:
            await fake.wait_for(lambda: fake.statuses.get(task_id))
    reports = [call.params for call in fake.calls_of("ReportTaskProgress")]
    assert reports[1]["fields"] == [{"key": "odd", "stringValue": "value"}]  # refused
    assert reports[2] == {"taskId": task_id}  # the lease renewed, the fields dropped
    assert "refused the progress fields odd" in caplog.text
    assert fake.statuses[task_id]["taskStatus"] == "FINISHED"


async def test_a_task_handed_out_again_while_it_runs_is_not_run_twice(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    # The service repeats a hand-out whose acknowledgement it lost: the running scope keeps it.
    # Moved here from tests/reliability/test_handler_mistakes.py (a fake over HTTP there).
    worker = make_worker()
    ran: list[str] = []
    again = asyncio.Event()

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        ran.append(task.id)
        fake.put("wg-1", task_id=task.id)
        await fake.wait_for(lambda: len(fake.calls_of("PollForTask")) >= 3)  # taken again
        again.set()

    task_id = fake.put("wg-1")
    with caplog.at_level(logging.WARNING, "pipeworker"):
        async with worker:
            await again.wait()
            await fake.wait_for(lambda: fake.statuses.get(task_id))
    assert ran == [task_id]
    assert len(fake.status_calls(task_id)) == 1
    assert f"task {task_id} was handed out again while it runs here: ignored" in caplog.text


async def test_an_unreadable_task_gets_no_status_and_the_next_one_runs(
    fake: FakeDataPipeline, make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    # A task whose objects cannot be read is left to the service (its acknowledgement window
    # hands it out again): a FAILED would vouch for an id read from a corrupt document.
    worker = make_worker()
    ran: list[str] = []
    worker.activity("wg-1")(_once(ran))
    fake.garble("PollForTask", {"taskObject": {"taskId": "broken", "objects": ["not", "a map"]}})
    task_id = fake.put("wg-1")
    with caplog.at_level(logging.ERROR, "pipeworker"):
        async with worker:
            await fake.wait_for(lambda: fake.statuses.get(task_id))
    assert ran == [task_id]
    assert not [call for call in fake.calls if call.params.get("taskId") == "broken"]
    assert "handed out task broken in a shape this runner cannot read" in caplog.text
