"""A pipeline runs end to end when a runner drives the task-runner API by hand."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from pipeworker.local import LocalService
from tests.helpers import calls, eventually, fields_of, obj, ref, start_pipeline
from tests.local.helpers import chain_definition


async def statuses(dp: Any, pipeline_id: str) -> dict[str, str]:
    ids = (await dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE"))["ids"]
    described = await dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    return {
        fields_of(o)["@componentParent"]["ref"]: fields_of(o)["@status"]
        for o in described["pipelineObjects"]
    }


async def test_chain_runs_in_dependency_order_to_finished(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    order = []
    for _ in range(3):
        task = (await dp.poll_for_task(workerGroup="wg-1", hostname="h1"))["taskObject"]
        assert task["pipelineId"] == pipeline_id
        attempt = task["objects"][task["attemptId"]]
        instance_id = fields_of(attempt)["@instanceParent"]["ref"]
        instance = fields_of(task["objects"][instance_id])
        order.append(instance_id.split("_")[0])
        assert instance["@status"] == "RUNNING"
        assert instance["workerGroup"] == "wg-1"  # inherited from Default
        progress = await dp.report_task_progress(taskId=task["taskId"])
        assert progress["canceled"] is False
        await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    assert order == ["@Extract", "@Transform", "@Load"]
    assert await statuses(dp, pipeline_id) == {
        "Extract": "FINISHED",
        "Transform": "FINISHED",
        "Load": "FINISHED",
    }
    described = await dp.describe_pipelines(pipelineIds=[pipeline_id])
    state = fields_of(described["pipelineDescriptionList"][0])
    assert state["@pipelineState"] == "FINISHED"
    assert state["@healthStatus"] == "HEALTHY"


async def test_dependent_waits_until_its_dependency_finishes(dp: Any) -> None:
    await start_pipeline(dp, chain_definition())
    first = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    # Transform depends on Extract, which is running: nothing else is runnable.
    assert "taskObject" not in await dp.poll_for_task(workerGroup="wg-1")
    await dp.set_task_status(taskId=first["taskId"], taskStatus="FINISHED")
    second = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    assert second["attemptId"].startswith("@Transform_")


async def test_task_carries_resolved_fields_and_referenced_objects(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg-1", myShared="from-default"),
        # A parent with no type is a template: it is inherited from, never run.
        obj("Base", stage="base", retryDelay="2 minutes"),
        obj(
            "Copy",
            type="ShellCommandActivity",
            parent=ref("Base"),
            input=ref("In"),
            command="cp #{input.directoryPath} /tmp/#{myBucket}",
        ),
        obj("In", type="S3DataNode", directoryPath="s3://#{myBucket}/in"),
    ]
    pipeline_id = await start_pipeline(
        dp,
        objects,
        parameterObjects=[
            {"id": "myBucket", "attributes": [{"key": "default", "stringValue": "dflt"}]}
        ],
        parameterValues=[{"id": "myBucket", "stringValue": "bucket-1"}],
    )
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    objects_by_id = task["objects"]
    attempt = fields_of(objects_by_id[task["attemptId"]])
    instance = fields_of(objects_by_id[attempt["@instanceParent"]["ref"]])
    assert instance["retryDelay"] == "2 minutes"  # through parent
    assert instance["stage"] == "base"
    assert instance["myShared"] == "from-default"
    assert instance["command"] == "cp s3://bucket-1/in /tmp/bucket-1"
    data_node = fields_of(objects_by_id[instance["input"]["ref"]])
    assert data_node["directoryPath"] == "s3://bucket-1/in"
    assert instance["input"]["ref"].startswith("@In_")
    evaluated = await dp.evaluate_expression(
        pipelineId=pipeline_id,
        objectId=attempt["@instanceParent"]["ref"],
        expression="#{input.directoryPath}/#{stage}",
    )
    assert evaluated["evaluatedExpression"] == "s3://bucket-1/in/base"


async def test_poll_wakes_as_a_task_becomes_runnable_not_when_its_hold_ends(
    make_service: Any, make_client: Any
) -> None:
    # A long hold: the poll must be woken by the event, not by its hold running out.
    service: LocalService = await make_service(poll_hold=5.0)
    dp = await make_client(service)
    await start_pipeline(dp, chain_definition())
    first = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    waiting = asyncio.create_task(dp.poll_for_task(workerGroup="wg-1"))
    await eventually(lambda: calls(service, "PollForTask") == 2)  # the second poll is held
    assert not waiting.done()
    loop = asyncio.get_running_loop()
    finished_at = loop.time()
    await dp.set_task_status(taskId=first["taskId"], taskStatus="FINISHED")
    second = await waiting
    woke_after = loop.time() - finished_at
    assert second["taskObject"]["attemptId"].startswith("@Transform_")
    # Typically a few ms; the margin holds on a busy machine and is a fifth of the 5 s hold.
    assert woke_after < 1.0, f"poll answered {woke_after * 1000:.1f} ms after the task was ready"


async def test_boto3_drives_a_pipeline(boto3_client: Any) -> None:
    # boto3 is synchronous: its calls run in a thread while the service answers on this loop.
    def run() -> list[str]:
        client = boto3_client
        pipeline_id = client.create_pipeline(name="b", uniqueId="boto3-run")["pipelineId"]
        put = client.put_pipeline_definition(
            pipelineId=pipeline_id, pipelineObjects=chain_definition("wg-boto3")
        )
        assert put["errored"] is False
        client.activate_pipeline(pipelineId=pipeline_id)
        done = []
        while True:
            answer = client.poll_for_task(workerGroup="wg-boto3", hostname="boto3-host")
            if "taskObject" not in answer:
                break
            task = answer["taskObject"]
            client.report_task_progress(
                taskId=task["taskId"], fields=[{"key": "rows", "stringValue": "42"}]
            )
            client.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
            done.append(task["attemptId"].split("_")[0])
        attempt = client.describe_objects(
            pipelineId=pipeline_id,
            objectIds=[f"{task['attemptId']}"],
        )["pipelineObjects"][0]
        recorded = fields_of(attempt)
        assert recorded["rows"] == "42"
        assert recorded["hostname"] == "boto3-host"
        assert recorded["@status"] == "FINISHED"
        return done

    assert await asyncio.to_thread(run) == ["@Extract", "@Transform", "@Load"]


async def test_heartbeat_answers_terminate_once_the_runner_is_marked(
    dp: Any, service: LocalService
) -> None:
    beat = await dp.report_task_runner_heartbeat(taskrunnerId="runner-1", workerGroup="wg-1")
    assert beat["terminate"] is False
    service.terminate_runner("runner-1")
    assert (await dp.report_task_runner_heartbeat(taskrunnerId="runner-1"))["terminate"] is True
    assert (await dp.report_task_runner_heartbeat(taskrunnerId="runner-2"))["terminate"] is False
    assert service.state.runners["runner-1"].worker_group == "wg-1"


async def test_a_task_skips_a_poll_whose_client_hung_up(
    make_service: Any, make_client: Any
) -> None:
    service: LocalService = await make_service(poll_hold=5.0)
    dp = await make_client(service)
    await start_pipeline(dp, chain_definition())
    first = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    async with aiohttp.ClientSession() as http:
        params = {"Action": "PollForTask", "workerGroup": "wg-1"}
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await http.get(service.endpoint_url + "/", params=params)
    await asyncio.sleep(0.05)
    await dp.set_task_status(taskId=first["taskId"], taskStatus="FINISHED")
    # The abandoned poll did not swallow Transform: the next poll gets its first attempt.
    second = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    assert second["attemptId"].startswith("@Transform_")
    assert second["attemptId"].endswith("_Attempt=1")
