"""Task outcomes: retries after retryDelay, final failure, cascade, FALSE, idempotent status."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.helpers import fields_of, obj, ref, start_pipeline
from tests.local.helpers import chain_definition


async def instance_fields(dp: Any, pipeline_id: str) -> dict[str, dict[str, Any]]:
    ids = (await dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE"))["ids"]
    described = await dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    return {
        fields_of(o)["@componentParent"]["ref"]: fields_of(o) for o in described["pipelineObjects"]
    }


async def test_failed_attempt_is_retried_after_retry_delay_then_fails_and_cascades(
    dp: Any,
) -> None:
    # retryDelay "2 minutes" x 0.001 = 0.12 s; one retry allowed.
    pipeline_id = await start_pipeline(
        dp, chain_definition(maximumRetries="1", retryDelay="2 minutes")
    )
    loop = asyncio.get_running_loop()
    first = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    # Taken before the call: the delay runs from when the service takes the status, whenever
    # a busy machine lets its answer arrive.
    failed_at = loop.time()
    await dp.set_task_status(
        taskId=first["taskId"], taskStatus="FAILED", errorId="E1", errorMessage="boom 1"
    )
    retry = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    assert loop.time() - failed_at >= 0.12
    assert retry["attemptId"] == first["attemptId"].replace("Attempt=1", "Attempt=2")
    await dp.set_task_status(
        taskId=retry["taskId"],
        taskStatus="FAILED",
        errorId="E2",
        errorMessage="boom 2",
        errorStackTrace="at line 2",
    )
    instances = await instance_fields(dp, pipeline_id)
    assert instances["Extract"]["@status"] == "FAILED"
    assert instances["Extract"]["errorId"] == "E2"
    assert instances["Extract"]["errorMessage"] == "boom 2"
    assert instances["Extract"]["errorStackTrace"] == "at line 2"
    assert instances["Extract"]["@attemptCount"] == "2"
    assert instances["Transform"]["@status"] == "CASCADE_FAILED"
    assert instances["Load"]["@status"] == "CASCADE_FAILED"
    assert "taskObject" not in await dp.poll_for_task(workerGroup="wg-1")
    description = await dp.describe_pipelines(pipelineIds=[pipeline_id])
    assert fields_of(description["pipelineDescriptionList"][0])["@healthStatus"] == "ERROR"


async def test_false_status_counts_as_a_failed_try(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition(maximumRetries="0"))
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FALSE")
    attempt = await dp.describe_objects(pipelineId=pipeline_id, objectIds=[task["attemptId"]])
    assert fields_of(attempt["pipelineObjects"][0])["@status"] == "FALSE"
    assert (await instance_fields(dp, pipeline_id))["Extract"]["@status"] == "FAILED"


async def test_repeated_set_task_status_succeeds_and_keeps_the_status(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    # A runner whose connection dropped after the call took effect sends it again.
    again = await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as caught:
        await dp.set_task_status(taskId=task["taskId"], taskStatus="FAILED")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    assert (await instance_fields(dp, pipeline_id))["Extract"]["@status"] == "FINISHED"
    with pytest.raises(ClientError) as caught:
        await dp.report_task_progress(taskId=task["taskId"])
    assert caught.value.response["Error"]["Code"] == "TaskNotFoundException"


async def test_error_id_reserved_for_the_service_is_rejected(dp: Any) -> None:
    await start_pipeline(dp, chain_definition())
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    with pytest.raises(ClientError) as caught:
        await dp.set_task_status(taskId=task["taskId"], taskStatus="FAILED", errorId="Service_X")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "Service_" in caught.value.response["Error"]["Message"]
    # The status was not taken: the task can still finish.
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")


async def test_unknown_task_id_is_task_not_found(dp: Any) -> None:
    for call in (
        dp.report_task_progress(taskId="nope"),
        dp.set_task_status(taskId="nope", taskStatus="FINISHED"),
    ):
        with pytest.raises(ClientError) as caught:
            await call
        assert caught.value.response["Error"]["Code"] == "TaskNotFoundException"


async def test_parallel_branches_and_a_join(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg-1"),
        obj("A", type="ShellCommandActivity"),
        obj("B", type="ShellCommandActivity"),
        obj("Join", type="ShellCommandActivity", dependsOn=[ref("A"), ref("B")]),
    ]
    pipeline_id = await start_pipeline(dp, objects)
    a = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    b = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    assert {a["attemptId"][:2], b["attemptId"][:2]} == {"@A", "@B"}
    await dp.set_task_status(taskId=a["taskId"], taskStatus="FINISHED")
    assert (await instance_fields(dp, pipeline_id))["Join"]["@status"] == (
        "WAITING_ON_DEPENDENCIES"
    )
    await dp.set_task_status(taskId=b["taskId"], taskStatus="FINISHED")
    join = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    assert join["attemptId"].startswith("@Join_")


async def test_worker_groups_are_matched_exactly(dp: Any) -> None:
    await start_pipeline(dp, chain_definition("Group-A"))
    assert "taskObject" not in await dp.poll_for_task(workerGroup="group-a")
    assert "taskObject" in await dp.poll_for_task(workerGroup="Group-A")
