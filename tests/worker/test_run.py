"""Pipelines run to completion through decorated handlers, each outcome reaching the service."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import PreconditionNotMet, Ref, Task, TaskFailed, Worker
from pipeworker.local import LocalService
from tests.helpers import (
    activities,
    attempts,
    calls,
    eventually,
    obj,
    ref,
    start_pipeline,
    statuses,
)


async def test_dependson_chain_finishes_through_decorated_handlers(
    dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    seen: list[tuple[str | None, Any, str]] = []

    @worker.activity("wg-chain")
    async def handle(task: Task) -> None:
        seen.append((task.type, task.field("command"), task.field("owner")))
        await asyncio.sleep(0.05)

    pipeline_id = await start_pipeline(
        dp,
        [
            obj("Default", scheduleType="ondemand", workerGroup="wg-chain", owner="data-team"),
            obj("Extract", type="ShellCommandActivity", command="extract"),
            obj("Transform", type="ShellCommandActivity", command="t", dependsOn=ref("Extract")),
            obj("Load", type="ShellCommandActivity", command="load", dependsOn=ref("Transform")),
        ],
    )
    async with worker:
        await eventually(lambda: len(seen) == 3)
        await eventually(
            lambda: _all(statuses(dp, pipeline_id), "FINISHED", ["Extract", "Transform", "Load"])
        )
    # In dependency order, with fields resolved through the Default object.
    assert seen == [
        ("ShellCommandActivity", "extract", "data-team"),
        ("ShellCommandActivity", "t", "data-team"),
        ("ShellCommandActivity", "load", "data-team"),
    ]


async def _all(pending: Any, status: str, names: list[str]) -> bool:
    current = await pending
    return all(current.get(name) == status for name in names)


async def test_each_outcome_reaches_the_service(
    dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()

    @worker.activity("wg-outcomes")
    async def handle(task: Task) -> None:
        name = task.attempt_id.split("_")[0]
        if name == "@Fails":
            raise TaskFailed("SourceMissing", "s3://bucket/key is not there")
        if name == "@Crashes":
            _ = {}["missing"]  # an unexpected exception
        if name == "@Checks":
            raise PreconditionNotMet("no data yet")
        if name == "@Reserved":
            raise TaskFailed("Service_Oops", "the service reserves this prefix")

    pipeline_id = await start_pipeline(
        dp, activities("wg-outcomes", "Works", "Fails", "Crashes", "Checks", "Reserved")
    )
    async with worker:

        async def all_ended() -> bool:
            return len([a for a in await attempts(dp, pipeline_id) if "@actualEndTime" in a]) == 5

        await eventually(all_ended)
    by_name = {
        a["@instanceParent"]["ref"].split("_")[0]: a for a in await attempts(dp, pipeline_id)
    }
    assert by_name["@Works"]["@status"] == "FINISHED"
    assert by_name["@Fails"]["@status"] == "FAILED"
    assert by_name["@Fails"]["errorId"] == "SourceMissing"
    assert by_name["@Fails"]["errorMessage"] == "s3://bucket/key is not there"
    assert by_name["@Crashes"]["@status"] == "FAILED"
    assert by_name["@Crashes"]["errorId"] == "KeyError"
    assert by_name["@Crashes"]["errorMessage"] == "'missing'"
    assert by_name["@Crashes"]["errorStackTrace"].endswith("KeyError: 'missing'\n")
    assert "in handle" in by_name["@Crashes"]["errorStackTrace"]
    # The trace starts at the handler: no pipeworker frame takes the 1,024 characters it has.
    assert "pipeworker/_" not in by_name["@Crashes"]["errorStackTrace"]
    assert by_name["@Reserved"]["@status"] == "FAILED"
    assert by_name["@Reserved"]["errorId"] == "Task_Service_Oops"
    assert by_name["@Checks"]["@status"] == "FALSE"


async def test_sync_handlers_run_in_threads_while_progress_is_reported(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(progress_interval=0.05)
    threads: list[str] = []

    @worker.activity("wg-sync")
    def handle(task: Task) -> None:
        threads.append(threading.current_thread().name)
        # Blocks its thread, not the loop: progress reports keep flowing meanwhile.
        threading.Event().wait(0.25)
        task.report_progress(half="done")  # taken at once: no await needed in a thread
        task.report_progress(evaluated=task.evaluate_sync("#{@attemptNumber}"))
        threading.Event().wait(0.25)

    pipeline_id = await start_pipeline(dp, activities("wg-sync", "Blocking"))
    async with worker:
        await eventually(lambda: _all(statuses(dp, pipeline_id), "FINISHED", ["Blocking"]))
    assert threads[0].startswith("pipeworker-handler")
    (attempt,) = await attempts(dp, pipeline_id)
    assert attempt["half"] == "done"
    assert attempt["evaluated"] == "1"  # evaluate_sync() answered from the handler's thread
    assert calls(service, "ReportTaskProgress") >= 5  # ack + reports every ~0.05 s for 0.5 s


async def test_handlers_see_fields_expressions_progress_fields_and_a_logger(
    dp: Any, make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker()
    seen: dict[str, Any] = {}

    @worker.activity("wg-fields")
    async def handle(task: Task) -> None:
        seen["input"] = task.field("input")
        seen["path"] = task.objects[task.field("input").id]["directoryPath"]
        seen["missing"] = task.field("nope", "fallback")
        # Evaluated on the attempt, which inherits its instance's runtime fields.
        seen["evaluated"] = await task.evaluate("attempt #{@attemptNumber} of #{@status}")
        await task.report_progress(rowsCopied=42, target=Ref("Out"))
        task.logger.info("copied")
        await asyncio.sleep(0.3)  # at least one progress report carries the fields

    pipeline_id = await start_pipeline(
        dp,
        [
            obj("Default", scheduleType="ondemand", workerGroup="wg-fields"),
            obj("In", type="S3DataNode", directoryPath="s3://bucket/in"),
            obj("Copy", type="ShellCommandActivity", command="cp", input=ref("In")),
        ],
    )
    caplog.set_level(logging.INFO, logger="pipeworker")
    async with worker:
        await eventually(lambda: _all(statuses(dp, pipeline_id), "FINISHED", ["Copy"]))
    assert isinstance(seen["input"], Ref)
    assert seen["path"] == "s3://bucket/in"
    assert seen["missing"] == "fallback"
    assert seen["evaluated"] == "attempt 1 of RUNNING"
    (attempt,) = await attempts(dp, pipeline_id)
    assert attempt["rowsCopied"] == "42"
    assert attempt["target"] == {"ref": "Out"}
    (record,) = [r for r in caplog.records if r.getMessage() == "copied"]
    assert record.pipeline_id == pipeline_id  # type: ignore[attr-defined]
    assert record.worker_group == "wg-fields"  # type: ignore[attr-defined]
    assert record.attempt_id.startswith("@Copy_")  # type: ignore[attr-defined]
    assert record.task_id  # type: ignore[attr-defined]
    # The worker's own records carry the same ids.
    started = [
        r
        for r in caplog.records
        if r.getMessage().startswith("task ") and "started" in r.getMessage()
    ]
    assert started[0].pipeline_id == pipeline_id  # type: ignore[attr-defined]


async def test_handlers_are_chosen_by_activity_type_within_a_worker_group(
    dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()
    ran: list[str] = []

    @worker.activity("wg-types", type="ShellCommandActivity")
    async def shell(task: Task) -> None:
        ran.append("shell")

    @worker.activity("wg-types")
    async def anything(task: Task) -> None:
        ran.append(f"other:{task.type}")

    pipeline_id = await start_pipeline(
        dp,
        [
            obj("Default", scheduleType="ondemand", workerGroup="wg-types"),
            obj("A", type="ShellCommandActivity", command="a"),
            obj("B", type="CopyActivity", input=ref("In"), output=ref("Out")),
            obj("In", type="S3DataNode", directoryPath="s3://b/in"),
            obj("Out", type="S3DataNode", directoryPath="s3://b/out"),
        ],
    )
    async with worker:
        await eventually(lambda: _all(statuses(dp, pipeline_id), "FINISHED", ["A", "B"]))
    assert sorted(ran) == ["other:CopyActivity", "shell"]
