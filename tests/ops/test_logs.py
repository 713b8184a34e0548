"""Logs for log pipelines: every line about a task carries its four ids; no secret is written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeworker import Task, TaskFailed, Worker, _logging
from pipeworker.local import LocalService
from tests.helpers import activities, eventually, start_pipeline, statuses

SECRET = "sEcReT/fOr+tHe/LoG/tEsT/0123456789abcdef"
IDS = ("task_id", "attempt_id", "pipeline_id", "worker_group")


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    _logging.configure("debug", "json", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_every_line_about_a_task_carries_its_ids(
    service: LocalService,
    dp: Any,
    make_worker: Callable[..., Worker],
    json_logs: io.StringIO,
) -> None:
    worker = make_worker(http_port=0, loop_stall_threshold=0.2)

    @worker.activity("wg-logs")
    async def handle(task: Task) -> None:
        task.logger.info("working on %s", task.field("command"))
        if task.attempt_id.startswith("@Fail"):
            raise TaskFailed("Chosen", "the handler chose to fail")
        if task.attempt_id.startswith("@Crash"):
            raise RuntimeError("unexpected")
        if task.attempt_id.startswith("@Block"):
            import time

            time.sleep(0.6)  # noqa: ASYNC251 (a stall line is about this task too)

    pipeline_id = await start_pipeline(dp, activities("wg-logs", "Ok", "Fail", "Crash", "Block"))
    async with worker:

        async def done() -> bool:
            found = await statuses(dp, pipeline_id)
            return len(found) == 4 and set(found.values()) <= {"FINISHED", "FAILED"}

        await eventually(done)

    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert lines, "nothing was logged"
    task_ids = {line["task_id"] for line in lines if "task_id" in line}
    assert len(task_ids) == 4
    about_tasks = [
        line
        for line in lines
        if any(key in line for key in IDS) or any(tid in line["message"] for tid in task_ids)
    ]
    kinds = {line["message"].split(" ", 2)[-1][:12] for line in about_tasks}
    assert len(about_tasks) >= 12, kinds  # started, working on, status, failures, stall lines
    for line in about_tasks:
        if line["logger"].startswith("pipeworker.") or line["logger"] == "pipeworker":
            missing = [key for key in IDS if not line.get(key)]
            assert not missing, (missing, line)
            assert line["pipeline_id"] == pipeline_id
            assert line["worker_group"] == "wg-logs"
    assert any(line["logger"] == "pipeworker.loop" for line in about_tasks)
    assert SECRET not in json_logs.getvalue()
