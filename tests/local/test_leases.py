"""Leases: unacknowledged or silent tasks become new attempts; the old taskId is gone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.helpers import fields_of, obj, start_pipeline


def one_activity(**fields: str) -> list[dict[str, Any]]:
    return [
        obj("Default", scheduleType="ondemand", workerGroup="wg-lease"),
        obj("Work", type="ShellCommandActivity", command="true", **fields),
    ]


async def attempt_fields(dp: Any, pipeline_id: str, attempt_id: str) -> dict[str, Any]:
    answer = await dp.describe_objects(pipelineId=pipeline_id, objectIds=[attempt_id])
    return fields_of(answer["pipelineObjects"][0])


async def test_unacknowledged_task_is_reassigned_as_a_new_attempt(
    make_service: Any, make_client: Any
) -> None:
    dp = await make_client(await make_service(ack_timeout=0.2))
    pipeline_id = await start_pipeline(dp, one_activity())
    first = (await dp.poll_for_task(workerGroup="wg-lease"))["taskObject"]
    assert first["attemptId"].endswith("_Attempt=1")
    # Never acknowledged: after the window a later poll gets the same instance again.
    second = (await dp.poll_for_task(workerGroup="wg-lease"))["taskObject"]
    assert second["attemptId"].endswith("_Attempt=2")
    assert second["taskId"] != first["taskId"]
    with pytest.raises(ClientError) as caught:
        await dp.report_task_progress(taskId=first["taskId"])
    assert caught.value.response["Error"]["Code"] == "TaskNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    old = await attempt_fields(dp, pipeline_id, first["attemptId"])
    assert old["@status"] == "TIMEDOUT"
    assert "acknowledged" in old["errorMessage"]


async def test_acknowledged_task_whose_progress_stops_is_reassigned(
    make_service: Any, make_client: Any
) -> None:
    # reportProgressTimeout "1 minutes" x 0.02 = 1.2 s: reports 0.4 s apart leave 0.8 s of
    # margin for a busy machine, and four of them outlast the window.
    dp = await make_client(await make_service(time_scale=0.02, poll_hold=3.0))
    pipeline_id = await start_pipeline(dp, one_activity(reportProgressTimeout="1 minutes"))
    first = (await dp.poll_for_task(workerGroup="wg-lease"))["taskObject"]
    await dp.report_task_progress(taskId=first["taskId"])
    # Reports within the window keep the lease...
    for _ in range(4):
        await asyncio.sleep(0.4)
        assert (await dp.report_task_progress(taskId=first["taskId"]))["canceled"] is False
    # ...silence past it loses the lease to the next poll.
    second = (await dp.poll_for_task(workerGroup="wg-lease"))["taskObject"]
    assert second["attemptId"].endswith("_Attempt=2")
    with pytest.raises(ClientError) as caught:
        await dp.set_task_status(taskId=first["taskId"], taskStatus="FINISHED")
    assert caught.value.response["Error"]["Code"] == "TaskNotFoundException"
    old = await attempt_fields(dp, pipeline_id, first["attemptId"])
    assert old["@status"] == "TIMEDOUT"
    assert "reportProgressTimeout" in old["errorMessage"]


async def test_attempt_timeout_fails_the_attempt_and_retries(
    make_service: Any, make_client: Any
) -> None:
    # attemptTimeout 0.24 s, retryDelay 0.48 s.
    dp = await make_client(await make_service(time_scale=0.004, poll_hold=1.0))
    pipeline_id = await start_pipeline(
        dp, one_activity(attemptTimeout="1 minutes", retryDelay="2 minutes", maximumRetries="1")
    )
    first = (await dp.poll_for_task(workerGroup="wg-lease"))["taskObject"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    codes = []
    for _ in range(3):
        await asyncio.sleep(0.1)
        try:
            await dp.report_task_progress(taskId=first["taskId"])
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
            break
    assert codes == ["TaskNotFoundException"], "the attempt outlived its attemptTimeout"
    assert loop.time() - started >= 0.2
    second = (await dp.poll_for_task(workerGroup="wg-lease"))["taskObject"]
    assert second["attemptId"].endswith("_Attempt=2")
    old = await attempt_fields(dp, pipeline_id, first["attemptId"])
    assert old["@status"] == "TIMEDOUT"
    assert "attemptTimeout" in old["errorMessage"]


async def test_default_progress_window_applies_without_report_progress_timeout(
    make_service: Any, make_client: Any
) -> None:
    dp = await make_client(await make_service(default_report_progress_timeout=0.15))
    await start_pipeline(dp, one_activity())
    first = (await dp.poll_for_task(workerGroup="wg-lease"))["taskObject"]
    await dp.report_task_progress(taskId=first["taskId"])
    second = (await dp.poll_for_task(workerGroup="wg-lease"))["taskObject"]
    assert second["attemptId"].endswith("_Attempt=2")
