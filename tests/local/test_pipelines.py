"""Pipeline calls: create (idempotent), list, describe, definitions, validation, tags, delete."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.helpers import fields_of, obj, ref, start_pipeline
from tests.local.helpers import chain_definition


async def test_create_pipeline_is_idempotent_by_unique_id(dp: Any) -> None:
    first = await dp.create_pipeline(name="p", uniqueId="u1", description="d")
    again = await dp.create_pipeline(name="p", uniqueId="u1")
    other = await dp.create_pipeline(name="p", uniqueId="u2")
    assert first["pipelineId"] == again["pipelineId"] != other["pipelineId"]
    assert first["pipelineId"].startswith("df-")
    with pytest.raises(ClientError) as caught:
        await dp.create_pipeline(name="different", uniqueId="u1")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    listed = await dp.list_pipelines()
    assert [p["id"] for p in listed["pipelineIdList"]] == [
        first["pipelineId"],
        other["pipelineId"],
    ]
    assert listed["hasMoreResults"] is False


async def test_list_pipelines_pages_with_a_marker(dp: Any) -> None:
    for index in range(105):
        await dp.create_pipeline(name=f"p{index}", uniqueId=f"u{index}")
    page = await dp.list_pipelines()
    assert len(page["pipelineIdList"]) == 100
    assert page["hasMoreResults"] is True
    rest = await dp.list_pipelines(marker=page["marker"])
    assert len(rest["pipelineIdList"]) == 5
    assert rest["hasMoreResults"] is False


async def test_describe_pipelines_reports_state_and_tags(dp: Any) -> None:
    created = await dp.create_pipeline(
        name="named", uniqueId="u", description="about", tags=[{"key": "team", "value": "a"}]
    )
    pipeline_id = created["pipelineId"]
    await dp.add_tags(pipelineId=pipeline_id, tags=[{"key": "env", "value": "dev"}])
    await dp.remove_tags(pipelineId=pipeline_id, tagKeys=["team"])
    described = (await dp.describe_pipelines(pipelineIds=[pipeline_id]))["pipelineDescriptionList"][
        0
    ]
    assert described["name"] == "named"
    assert described["description"] == "about"
    assert described["tags"] == [{"key": "env", "value": "dev"}]
    fields = fields_of(described)
    assert fields["@pipelineState"] == "PENDING"
    assert fields["uniqueId"] == "u"
    too_many = [{"key": f"k{i}", "value": "v"} for i in range(10)]
    with pytest.raises(ClientError) as caught:
        await dp.add_tags(pipelineId=pipeline_id, tags=too_many)
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"


async def test_definition_errors_and_warnings_are_reported_and_block_activation(
    dp: Any,
) -> None:
    pipeline_id = (await dp.create_pipeline(name="p", uniqueId="u"))["pipelineId"]
    objects = [
        obj("Default", scheduleType="ondemand"),
        obj("NoGroup", type="ShellCommandActivity"),
        obj("Dangling", type="ShellCommandActivity", workerGroup="g", input=ref("Missing")),
        obj("A", type="ShellCommandActivity", workerGroup="g", dependsOn=ref("B")),
        obj("B", type="ShellCommandActivity", workerGroup="g", dependsOn=ref("A")),
        obj("Typeless"),
        obj("Retry", type="ShellCommandActivity", workerGroup="g", maximumRetries="9"),
        obj("Param", type="ShellCommandActivity", workerGroup="g", command="#{myMissing}"),
        obj("Quick", type="ShellCommandActivity", workerGroup="g", retryDelay="1 minutes"),
        obj("Unused", type="S3DataNode"),
        obj("Huge", type="S3DataNode", **{f"f{i}": "x" * 400 for i in range(40)}),
        obj("Wide", type="S3DataNode", **{f"f{i}": "x" for i in range(51)}),
    ]
    answer = await dp.put_pipeline_definition(pipelineId=pipeline_id, pipelineObjects=objects)
    assert answer["errored"] is True
    errors = {e["id"]: " ".join(e["errors"]) for e in answer["validationErrors"]}
    assert "runsOn" in errors["NoGroup"]
    assert "Missing" in errors["Dangling"]
    assert "cycle" in errors["A"] or "cycle" in errors["B"]
    assert "type" in errors["Typeless"]
    assert "maximumRetries" in errors["Retry"]
    assert "myMissing" in errors["Param"]
    assert "15360" in errors["Huge"]
    assert "limit is 50" in errors["Wide"]
    warnings = {w["id"]: " ".join(w["warnings"]) for w in answer["validationWarnings"]}
    assert "2 minutes" in warnings["Quick"]
    assert "references it" in warnings["Unused"]
    with pytest.raises(ClientError) as caught:
        await dp.activate_pipeline(pipelineId=pipeline_id)
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    # The errored definition is stored: it can be read back and fixed.
    stored = await dp.get_pipeline_definition(pipelineId=pipeline_id)
    assert [o["id"] for o in stored["pipelineObjects"]] == [o["id"] for o in objects]


async def test_validate_pipeline_definition_stores_nothing(dp: Any) -> None:
    pipeline_id = (await dp.create_pipeline(name="p", uniqueId="u"))["pipelineId"]
    answer = await dp.validate_pipeline_definition(
        pipelineId=pipeline_id, pipelineObjects=chain_definition()
    )
    assert answer == {**answer, "errored": False, "validationErrors": []}
    with pytest.raises(ClientError) as caught:
        await dp.get_pipeline_definition(pipelineId=pipeline_id)
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    with pytest.raises(ClientError):
        await dp.activate_pipeline(pipelineId=pipeline_id)


async def test_get_definition_latest_and_active(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition("g1"))
    await dp.put_pipeline_definition(pipelineId=pipeline_id, pipelineObjects=chain_definition("g2"))
    latest = await dp.get_pipeline_definition(pipelineId=pipeline_id)
    active = await dp.get_pipeline_definition(pipelineId=pipeline_id, version="active")
    assert fields_of(latest["pipelineObjects"][0])["workerGroup"] == "g2"
    assert fields_of(active["pipelineObjects"][0])["workerGroup"] == "g1"


async def test_each_activation_runs_each_activity_once(dp: Any) -> None:
    # On demand: every activation is one run (scheduled pipelines: tests/local/test_schedules.py).
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="g"),
        obj("Only", type="ShellCommandActivity"),
    ]
    pipeline_id = await start_pipeline(dp, objects)
    first = (await dp.poll_for_task(workerGroup="g"))["taskObject"]
    # Activating a running pipeline again does not start a second run.
    await dp.activate_pipeline(pipelineId=pipeline_id)
    assert "taskObject" not in await dp.poll_for_task(workerGroup="g")
    await dp.set_task_status(taskId=first["taskId"], taskStatus="FINISHED")
    # Once the run is over, a new activation is a new run with a later scheduled time.
    await dp.activate_pipeline(pipelineId=pipeline_id)
    second = (await dp.poll_for_task(workerGroup="g"))["taskObject"]
    assert second["attemptId"] != first["attemptId"]
    assert second["attemptId"].endswith("_Attempt=1")


async def test_activation_with_start_timestamp_and_parameter_values(dp: Any) -> None:
    pipeline_id = (await dp.create_pipeline(name="p", uniqueId="u"))["pipelineId"]
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="g"),
        obj(
            "Run",
            type="ShellCommandActivity",
            command="run #{myWhat} #{format(@scheduledStartTime,'YYYY-MM-dd')}",
        ),
    ]
    await dp.put_pipeline_definition(
        pipelineId=pipeline_id,
        pipelineObjects=objects,
        parameterObjects=[{"id": "myWhat", "attributes": [{"key": "type", "stringValue": "S"}]}],
        parameterValues=[{"id": "myWhat", "stringValue": "put"}],
    )
    await dp.activate_pipeline(
        pipelineId=pipeline_id,
        parameterValues=[{"id": "myWhat", "stringValue": "activate"}],
        startTimestamp="2026-11-22T00:00:00Z",
    )
    task = (await dp.poll_for_task(workerGroup="g"))["taskObject"]
    assert task["attemptId"] == "@Run_2026-11-22T00:00:00_Attempt=1"
    instance = fields_of(task["objects"]["@Run_2026-11-22T00:00:00"])
    assert instance["command"] == "run activate 2026-11-22"


async def test_expression_error_at_activation_fails_the_instance(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="g"),
        obj("Bad", type="ShellCommandActivity", command="#{noSuchFunction(1)}"),
        obj("After", type="ShellCommandActivity", dependsOn=ref("Bad")),
    ]
    pipeline_id = await start_pipeline(dp, objects)
    ids = (await dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE"))["ids"]
    described = await dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    by_component = {
        fields_of(o)["@componentParent"]["ref"]: fields_of(o) for o in described["pipelineObjects"]
    }
    assert by_component["Bad"]["@status"] == "FAILED"
    assert "command" in by_component["Bad"]["errorMessage"]
    assert by_component["After"]["@status"] == "CASCADE_FAILED"


async def test_deactivate_cancels_running_and_holds_waiting_until_reactivated(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    await dp.deactivate_pipeline(pipelineId=pipeline_id)
    assert (await dp.report_task_progress(taskId=task["taskId"]))["canceled"] is True
    state = fields_of(
        (await dp.describe_pipelines(pipelineIds=[pipeline_id]))["pipelineDescriptionList"][0]
    )
    assert state["@pipelineState"] == "INACTIVE"
    # Extract was cancelled, so Transform and Load cascade.
    assert "taskObject" not in await dp.poll_for_task(workerGroup="wg-1")


async def test_deactivate_without_cancel_keeps_running_and_resumes_on_activate(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    await dp.deactivate_pipeline(pipelineId=pipeline_id, cancelActive=False)
    assert (await dp.report_task_progress(taskId=task["taskId"]))["canceled"] is False
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    # Inactive: Transform is held back...
    assert "taskObject" not in await dp.poll_for_task(workerGroup="wg-1")
    await dp.activate_pipeline(pipelineId=pipeline_id)
    # ...and released by reactivation, in the same run.
    resumed = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    assert resumed["attemptId"].startswith("@Transform_")


async def test_deleted_pipeline_answers_deleted_and_its_tasks_are_gone(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    task = (await dp.poll_for_task(workerGroup="wg-1"))["taskObject"]
    await dp.delete_pipeline(pipelineId=pipeline_id)
    for call in (
        dp.report_task_progress(taskId=task["taskId"]),
        dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED"),
        dp.describe_pipelines(pipelineIds=[pipeline_id]),
        dp.evaluate_expression(pipelineId=pipeline_id, objectId="Extract", expression="x"),
    ):
        with pytest.raises(ClientError) as caught:
            await call
        assert caught.value.response["Error"]["Code"] == "PipelineDeletedException"
    with pytest.raises(ClientError) as caught:
        await dp.delete_pipeline(pipelineId=pipeline_id)
    assert caught.value.response["Error"]["Code"] == "PipelineNotFoundException"
    assert (await dp.list_pipelines())["pipelineIdList"] == []


async def test_unknown_pipeline_is_not_found(dp: Any) -> None:
    calls = [
        dp.describe_pipelines(pipelineIds=["df-NOPE"]),
        dp.put_pipeline_definition(pipelineId="df-NOPE", pipelineObjects=chain_definition()),
        dp.activate_pipeline(pipelineId="df-NOPE"),
        dp.deactivate_pipeline(pipelineId="df-NOPE"),
        dp.get_pipeline_definition(pipelineId="df-NOPE"),
        dp.query_objects(pipelineId="df-NOPE", sphere="INSTANCE"),
        dp.describe_objects(pipelineId="df-NOPE", objectIds=["x"]),
        dp.set_status(pipelineId="df-NOPE", objectIds=["x"], status="PAUSE"),
        dp.add_tags(pipelineId="df-NOPE", tags=[{"key": "k", "value": "v"}]),
        dp.remove_tags(pipelineId="df-NOPE", tagKeys=["k"]),
        dp.evaluate_expression(pipelineId="df-NOPE", objectId="x", expression="x"),
        dp.delete_pipeline(pipelineId="df-NOPE"),
    ]
    for call in calls:
        with pytest.raises(ClientError) as caught:
            await call
        assert caught.value.response["Error"]["Code"] == "PipelineNotFoundException"


async def test_evaluate_expression_errors_are_invalid_requests(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition())
    evaluated = await dp.evaluate_expression(
        pipelineId=pipeline_id, objectId="Extract", expression="#{1 + 2} #{command}"
    )
    assert evaluated["evaluatedExpression"] == "3 echo extract"
    for object_id, expression in (
        ("Extract", "#{unsupportedFunction(1)}"),
        ("Extract", "#{"),
        ("NoSuchObject", "x"),
    ):
        with pytest.raises(ClientError) as caught:
            await dp.evaluate_expression(
                pipelineId=pipeline_id, objectId=object_id, expression=expression
            )
        error = caught.value.response
        assert error["Error"]["Code"] == "InvalidRequestException", expression
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
