"""A task's objects live only as long as the task: nothing the runner keeps holds them after."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from pipeworker import Outcome, Task, Worker
from pipeworker.services.base import ReceivedTask
from pipeworker.services.datapipeline import task_from_wire
from tests.helpers import eventually, obj, start_pipeline, statuses


async def test_a_finished_task_and_its_objects_are_released(
    dp: Any, make_worker: Callable[..., Worker]
) -> None:
    ended: list[str] = []

    class Counting(Worker):
        async def on_task_end(self, task: Task, outcome: Outcome | None) -> None:
            ended.append(task.id)

    worker = make_worker(Counting)

    @worker.activity("wg-memory")
    async def handle(task: Task) -> None:
        await task.report_progress(step="1")

    pipeline_id = await start_pipeline(
        dp,
        [
            obj("Default", scheduleType="ondemand", workerGroup="wg-memory"),
            obj("Work", type="ShellCommandActivity", command="true"),
        ],
    )
    async with worker:
        await eventually(lambda: len(ended) == 1)
        await eventually(lambda: _finished(statuses(dp, pipeline_id)))
        gc.collect()
        # Still serving (polls out, heartbeat running): nothing holds the finished task.
        # (Task and ReceivedTask have __slots__ without weak references: look for them.)
        alive = [
            o for o in gc.get_objects() if isinstance(o, Task | ReceivedTask) and o.id in ended
        ]
        assert alive == []


async def _finished(pending: Any) -> bool:
    return (await pending).get("Work") == "FINISHED"


def test_keys_and_short_values_are_shared_between_tasks() -> None:
    def wire(task_id: str) -> dict[str, Any]:
        fields = [
            {"key": "type", "stringValue": "ShellCommandActivity"},
            {"key": "command", "stringValue": "x" * 100},
            {"key": "parent", "refValue": "Default"},
        ]
        # Decoded separately, as two answers are: equal strings, distinct objects.
        copy = [{k: "".join(v) for k, v in field.items()} for field in fields]
        return {"taskId": task_id, "attemptId": "A", "objects": {"A": {"fields": copy}}}

    one, two = task_from_wire("wg", wire("t1")), task_from_wire("wg", wire("t2"))
    first, second = one.objects["A"], two.objects["A"]
    assert next(k for k in first if k == "type") is next(k for k in second if k == "type")
    assert first["type"] is second["type"]
    assert first["parent"].id is second["parent"].id  # type: ignore[union-attr]
    assert first["command"] == second["command"]  # long values are kept as sent
