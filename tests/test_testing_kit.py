"""pipeworker.testing: handlers run against hand-built tasks, and the local_service fixture."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from pipeworker import (
    BaseTask,
    CancelReason,
    Outcome,
    PreconditionNotMet,
    Ref,
    Task,
    TaskFailed,
    ValidationError,
    Worker,
)
from pipeworker.testing import LocalEndpoint, TaskHarness, local_service, run_handler

__all__ = ["local_service"]  # the fixture, imported as a user's conftest.py would


async def test_fields_objects_and_expressions_reach_the_handler() -> None:
    seen: dict[str, Any] = {}

    async def handler(task: Task) -> None:
        seen["table"] = task.field("table")
        seen["retries"] = task.field("maximumRetries")
        seen["inherited"] = task.field("region")
        seen["missing"] = task.field("nope", "fallback")
        seen["input"] = task.field("input")
        seen["when"] = await task.evaluate("#{@scheduledStartTime}")
        seen["type"] = task.type
        seen["group"] = task.worker_group

    result = await run_handler(
        handler,
        fields={"table": "users", "maximumRetries": 3, "input": Ref("Node"), "parent": Ref("Def")},
        objects={"Def": {"region": "eu-west-1"}, "Node": {"directoryPath": "s3://b/p"}},
        expressions={"#{@scheduledStartTime}": "2026-01-01T00:00:00"},
        type="ShellCommandActivity",
        worker_group="wg-7",
    )
    assert result.status == "FINISHED"
    assert seen == {
        "table": "users",
        "retries": "3",
        "inherited": "eu-west-1",
        "missing": "fallback",
        "input": Ref("Node"),
        "when": "2026-01-01T00:00:00",
        "type": "ShellCommandActivity",
        "group": "wg-7",
    }
    assert result.evaluated == ["#{@scheduledStartTime}"]


async def test_progress_reports_are_captured_in_order() -> None:
    async def handler(task: Task) -> None:
        for step in range(3):
            await task.report_progress(step=step)
            await asyncio.sleep(0.03)
        await task.report_progress(done="yes")

    result = await run_handler(handler)
    assert [report.get("step") for report in result.progress[:3]] == ["0", "1", "2"]
    assert result.fields == {"step": "2", "done": "yes"}


async def test_heartbeat_is_the_shared_verb_and_sends_fields_on_data_pipeline() -> None:
    # A handler written against BaseTask calls task.heartbeat(details) on any service; on
    # Data Pipeline the details are fields of the next progress report.
    async def handler(task: BaseTask) -> None:
        await task.heartbeat({"rows": 10})
        await asyncio.sleep(0.03)
        await task.heartbeat({"rows": 20, "table": "users"})
        await task.heartbeat()  # nothing to add: nothing queued

    result = await run_handler(handler)
    assert result.status == "FINISHED"
    assert result.fields == {"rows": "20", "table": "users"}


async def test_heartbeat_details_that_are_not_fields_fail_in_the_handler() -> None:
    async def handler(task: Task) -> None:
        await task.heartbeat("50% done")  # type: ignore[arg-type]

    result = await run_handler(handler)
    assert result.status == "FAILED"
    assert isinstance(result.error, ValidationError)
    assert "mapping" in str(result.error)
    assert result.fields == {}


async def test_a_progress_field_the_service_would_refuse_fails_in_the_handler() -> None:
    async def handler(task: Task) -> None:
        await task.report_progress(big="x" * 20000)

    result = await run_handler(handler)
    assert result.status == "FAILED"
    assert isinstance(result.error, ValidationError)


@pytest.mark.parametrize(
    ("raised", "status", "error_id"),
    [
        (ValueError("bad row"), "FAILED", "ValueError"),
        (TaskFailed("BadInput", "bad row"), "FAILED", "BadInput"),
        (PreconditionNotMet("not yet"), "FALSE", None),
    ],
)
async def test_outcome_is_what_the_worker_would_report(
    raised: Exception, status: str, error_id: str | None
) -> None:
    async def handler(task: Task) -> None:
        raise raised

    result = await run_handler(handler)
    assert result.status == status
    assert result.outcome is not None
    assert result.outcome.error_id == error_id
    assert result.error is raised


async def test_unknown_expression_fails_with_a_hint() -> None:
    async def handler(task: Task) -> None:
        await task.evaluate("#{myParam}")

    result = await run_handler(handler)
    assert result.status == "FAILED"
    assert "expressions={'#{myParam}'" in str(result.error)


async def test_cancel_an_async_handler_midway() -> None:
    cleaned = asyncio.Event()

    async def handler(task: Task) -> None:
        await task.report_progress(started="yes")
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.set()

    harness = TaskHarness()
    harness.start(handler)
    assert await harness.wait_for_progress() == {"started": "yes"}
    result = await harness.cancel()
    assert result.status is None  # cancelled by the service: nothing is reported
    assert isinstance(result.error, asyncio.CancelledError)
    assert cleaned.is_set()
    assert harness.task.cancelled


async def test_cancel_a_sync_handler_that_checks_cancelled() -> None:
    stopped_at: list[int] = []

    def handler(task: Task) -> None:
        assert threading.current_thread() is not threading.main_thread()
        for step in range(500):
            if task.cancelled:
                stopped_at.append(step)
                return
            time.sleep(0.01)

    harness = TaskHarness()
    harness.start(handler)
    await asyncio.sleep(0.05)
    result = await harness.cancel()
    assert result.status is None
    assert stopped_at
    assert stopped_at[0] < 100


async def test_sync_handler_runs_in_a_thread_and_reports() -> None:
    def handler(task: Task) -> None:
        task.logger.info("working on %s", task.field("table"))

    result = await run_handler(handler, fields={"table": "t"})
    assert result.status == "FINISHED"


async def test_a_harness_runs_one_handler_only() -> None:
    async def handler(task: Task) -> None:
        pass

    harness = TaskHarness()
    await harness.run(handler)
    with pytest.raises(RuntimeError, match="make a new one"):
        harness.start(handler)


async def test_local_service_fixture_runs_a_worker(local_service: LocalEndpoint) -> None:
    client = local_service.client
    created = await asyncio.to_thread(client.create_pipeline, name="p", uniqueId="u1")
    pipeline_id = created["pipelineId"]
    objects = [
        {
            "id": "Default",
            "name": "Default",
            "fields": [
                {"key": "scheduleType", "stringValue": "ondemand"},
                {"key": "workerGroup", "stringValue": "wg-fixture"},
            ],
        },
        {
            "id": "A",
            "name": "A",
            "fields": [{"key": "type", "stringValue": "ShellCommandActivity"}],
        },
    ]
    await asyncio.to_thread(
        client.put_pipeline_definition, pipelineId=pipeline_id, pipelineObjects=objects
    )
    await asyncio.to_thread(client.activate_pipeline, pipelineId=pipeline_id)

    worker = Worker(endpoint_url=local_service.endpoint_url, region=local_service.region)
    done = asyncio.Event()

    @worker.activity("wg-fixture")
    async def handle(task: Task) -> None:
        done.set()

    async with worker:
        await asyncio.wait_for(done.wait(), 10)
    assert local_service.call_soon(lambda: local_service.service.stats()["calls"]["SetTaskStatus"])


async def test_the_kit_runs_the_workers_own_task_scope_hooks_and_return_value_included() -> None:
    # One outcome path for the worker and the kit: the hooks run around the handler, what it
    # returns reaches the outcome, and the task is acknowledged before the handler starts.
    seen: list[str] = []

    class Hooked(Worker):
        async def on_task_start(self, task: Task) -> None:
            seen.append(f"start {task.id}")

        async def on_task_end(self, task: Task, outcome: Outcome | None) -> None:
            seen.append(f"end {outcome.status if outcome else None}")

    harness = TaskHarness(hooks=Hooked())

    async def handler(task: Task) -> dict[str, int]:
        assert harness.connection.acknowledged
        seen.append("handler")
        return {"rows": 3}

    result = await harness.run(handler)
    assert result.result == {"rows": 3}
    assert seen == [f"start {harness.task.id}", "handler", "end FINISHED"]


async def test_the_kit_reports_a_handler_cancelled_by_a_shutdown_as_the_worker_does() -> None:
    harness = TaskHarness()

    async def handler(task: Task) -> None:
        await asyncio.sleep(30)

    harness.start(handler)
    await asyncio.sleep(0.05)
    result = await harness.cancel(CancelReason.SHUTDOWN)
    assert result.status == "FAILED"
    assert result.outcome is not None
    assert result.outcome.error_id == "RunnerShutdown"
