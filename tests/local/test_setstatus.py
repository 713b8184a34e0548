"""SetStatus: PAUSE/RESUME components; TRY_CANCEL, RERUN and MARK_FINISHED instances."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.helpers import fields_of, start_pipeline
from tests.local.helpers import chain_definition


async def status_of(dp: Any, pipeline_id: str, component: str) -> str:
    ids = (
        await dp.query_objects(
            pipelineId=pipeline_id,
            sphere="INSTANCE",
            query={
                "selectors": [
                    {
                        "fieldName": "@componentParent",
                        "operator": {"type": "REF_EQ", "values": [component]},
                    }
                ]
            },
        )
    )["ids"]
    described = await dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    return str(fields_of(described["pipelineObjects"][0])["@status"])


async def instance_id(dp: Any, pipeline_id: str, component: str) -> str:
    ids = (await dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE"))["ids"]
    return next(i for i in ids if i.startswith(f"@{component}_"))


async def test_pause_holds_a_component_and_resume_releases_it(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    await dp.set_status(pipelineId=pipeline_id, objectIds=["Extract"], status="PAUSE")
    assert await status_of(dp, pipeline_id, "Extract") == "PAUSED"
    assert "taskObject" not in await dp.poll_for_task(workerGroup="wg-1")
    await dp.set_status(pipelineId=pipeline_id, objectIds=["Extract"], status="RESUME")
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    assert task["attemptId"].startswith("@Extract_")


async def test_try_cancel_a_running_instance_answers_canceled_to_its_runner(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    extract = await instance_id(dp, pipeline_id, "Extract")
    await dp.set_status(pipelineId=pipeline_id, objectIds=[extract], status="TRY_CANCEL")
    assert (await dp.report_task_progress(taskId=task["taskId"]))["canceled"] is True
    assert await status_of(dp, pipeline_id, "Extract") == "CANCELED"
    assert await status_of(dp, pipeline_id, "Transform") == "CASCADE_FAILED"
    # A runner that finishes anyway is answered 200, but the cancel stands.
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    assert await status_of(dp, pipeline_id, "Extract") == "CANCELED"


async def test_try_cancel_a_waiting_instance_never_hands_it_out(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    extract = await instance_id(dp, pipeline_id, "Extract")
    await dp.set_status(pipelineId=pipeline_id, objectIds=[extract], status="TRY_CANCEL")
    assert "taskObject" not in await dp.poll_for_task(workerGroup="wg-1")


async def test_rerun_a_failed_instance_revives_its_cascade(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition(maximumRetries="0"))
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FAILED", errorMessage="x")
    assert await status_of(dp, pipeline_id, "Load") == "CASCADE_FAILED"
    extract = await instance_id(dp, pipeline_id, "Extract")
    await dp.set_status(pipelineId=pipeline_id, objectIds=[extract], status="RERUN")
    rerun = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    assert rerun["attemptId"] == f"{extract}_Attempt=2"
    assert await status_of(dp, pipeline_id, "Load") == "WAITING_ON_DEPENDENCIES"
    await dp.set_task_status(taskId=rerun["taskId"], taskStatus="FINISHED")
    assert (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]["attemptId"].startswith(
        "@Transform_"
    )


async def test_mark_finished_lets_dependents_run(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    extract = await instance_id(dp, pipeline_id, "Extract")
    await dp.set_status(pipelineId=pipeline_id, objectIds=[extract], status="MARK_FINISHED")
    assert (await dp.report_task_progress(taskId=task["taskId"]))["canceled"] is True
    assert await status_of(dp, pipeline_id, "Extract") == "FINISHED"
    nxt = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    assert nxt["attemptId"].startswith("@Transform_")


@pytest.mark.parametrize(
    ("object_id", "status"),
    [
        ("Extract", "TRY_CANCEL"),  # instance statuses need instances
        ("@Extract_x", "PAUSE"),  # component statuses need components
        ("Extract", "SCHEDULED"),  # not a status SetStatus takes
        ("Nope", "RERUN"),
    ],
)
async def test_set_status_rejects_the_wrong_kind_of_object(
    dp: Any, object_id: str, status: str
) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    with pytest.raises(ClientError) as caught:
        await dp.set_status(pipelineId=pipeline_id, objectIds=[object_id], status=status)
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
