"""Definitions as people write them (issue 14, items 1-9), each behaving as on AWS.

Each test writes a small definition in the shape the public samples use and checks what a user
would notice: put accepts or refuses it, the runner gets evaluated fields only, on the right worker
group, and ``list-runs`` shows what the AWS CLI's documentation shows.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from pipeworker.local import LocalService
from tests.helpers import eventually, fields_of, instances, obj, ref, start_pipeline


async def _put(dp: Any, objects: list[dict[str, Any]], **put: Any) -> tuple[str, dict[str, Any]]:
    created = await dp.create_pipeline(name="p", uniqueId=f"u-{id(objects)}-{len(put)}")
    answer = await dp.put_pipeline_definition(
        pipelineId=created["pipelineId"], pipelineObjects=objects, **put
    )
    return created["pipelineId"], answer


def _errors(answer: dict[str, Any]) -> list[str]:
    return [m for error in answer["validationErrors"] for m in error["errors"]]


def _param(pid: str, **attributes: str) -> dict[str, Any]:
    return {"id": pid, "attributes": [{"key": k, "stringValue": v} for k, v in attributes.items()]}


async def _task(dp: Any, group: str) -> dict[str, Any]:
    answer = await dp.poll_for_task(workerGroup=group, hostname="h")
    assert "taskObject" in answer, f"no task on {group!r}"
    task: dict[str, Any] = answer["taskObject"]
    return task


def _strings(task: dict[str, Any]) -> list[str]:
    return [field.get("stringValue", "") for o in task["objects"].values() for field in o["fields"]]


def _activity(task: dict[str, Any]) -> dict[str, Any]:
    attempt = fields_of(task["objects"][task["attemptId"]])
    return fields_of(task["objects"][attempt["@instanceParent"]["ref"]])


# --- 1. masked parameters --------------------------------------------------------------------


async def test_masked_parameter_reaches_the_runner_substituted(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg"),
        obj("Db", type="RdsDatabase", username="admin", **{"*password": "#{*myRdsPassword}"}),
        obj(
            "Copy",
            type="SqlActivity",
            database=ref("Db"),
            script="select 1 -- #{*myRdsPassword}",
        ),
    ]
    pipeline_id = await start_pipeline(
        dp,
        objects,
        parameterObjects=[_param("*myRdsPassword", type="String")],
        parameterValues=[{"id": "*myRdsPassword", "stringValue": "s3cret"}],
    )
    task = await _task(dp, "wg")
    assert _activity(task)["script"] == "select 1 -- s3cret"
    assert fields_of(task["objects"]["Db"])["*password"] == "s3cret"
    assert not any("#{" in text for text in _strings(task)), pipeline_id


async def test_a_parameter_id_without_my_is_still_refused(dp: Any) -> None:
    _, answer = await _put(
        dp,
        [obj("Default", scheduleType="ondemand", workerGroup="wg")],
        parameterObjects=[_param("*password", type="String")],
    )
    assert answer["errored"]
    assert any("must start with 'my'" in m for m in _errors(answer))


# --- 2. user-defined fields ------------------------------------------------------------------


async def test_user_defined_fields_are_fields_not_parameters(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg", myComment="the default"),
        obj("Hello", type="ShellCommandActivity", myGreeting="hi", command="echo #{myGreeting}"),
    ]
    await start_pipeline(dp, objects)
    task = await _task(dp, "wg")
    assert _activity(task)["command"] == "echo hi"
    assert _activity(task)["myComment"] == "the default"


async def test_an_unknown_my_name_is_refused_with_what_to_do(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg"),
        obj("Hello", type="ShellCommandActivity", command="echo #{myNothing}"),
    ]
    _, answer = await _put(dp, objects)
    assert answer["errored"]
    assert any("neither a parameter nor a field" in m for m in _errors(answer))


# --- 3. optional parameters ------------------------------------------------------------------


async def test_optional_parameter_without_value(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg"),
        obj("Box", type="Ec2Resource", subnetId="#{mySubnet}", terminateAfter="1 Hour"),
        obj("Hello", type="ShellCommandActivity", command="echo [#{mySubnet}]", runsOn=ref("Box")),
    ]
    pipeline_id = await start_pipeline(
        dp, objects, parameterObjects=[_param("mySubnet", type="String", optional="true")]
    )
    task = await _task(dp, f"{pipeline_id}/Box")
    assert _activity(task)["command"] == "echo []"
    box = next(o for oid, o in task["objects"].items() if oid.startswith("@Box_"))
    assert "subnetId" not in fields_of(box), "a field that was only the parameter is left out"
    assert not any("#{" in text for text in _strings(task))


async def test_a_required_parameter_without_value_is_refused(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg"),
        obj("Hello", type="ShellCommandActivity", command="echo #{myText}"),
    ]
    _, answer = await _put(dp, objects, parameterObjects=[_param("myText", type="String")])
    assert answer["errored"]
    assert any("'myText', which has no value" in m for m in _errors(answer))


# --- 4 and 5. runsOn wins; each pipeline's resources have their own group ---------------------


async def test_runs_on_wins_over_worker_group_and_groups_are_per_pipeline(dp: Any) -> None:
    def definition(command: str) -> list[dict[str, Any]]:
        return [
            obj("Default", scheduleType="ondemand", workerGroup="wg-default"),
            obj("EC2ResourceObj", type="Ec2Resource", terminateAfter="1 Hour"),
            obj(
                "Work",
                type="ShellCommandActivity",
                command=command,
                workerGroup="wg-own",
                runsOn=ref("EC2ResourceObj"),
            ),
        ]

    first = await start_pipeline(dp, definition("first"))
    second = await start_pipeline(dp, definition("second"))
    assert (await dp.poll_for_task(workerGroup="wg-own", hostname="h")).get("taskObject") is None
    assert (await dp.poll_for_task(workerGroup="EC2ResourceObj", hostname="h")).get(
        "taskObject"
    ) is None
    task = await _task(dp, f"{second}/EC2ResourceObj")
    assert task["pipelineId"] == second
    assert _activity(task)["command"] == "second"
    task = await _task(dp, f"{first}/EC2ResourceObj")
    assert _activity(task)["command"] == "first"
    resource = next(o for oid, o in task["objects"].items() if oid.startswith("@EC2ResourceObj"))
    assert "workerGroup" not in fields_of(resource), "resources do not inherit workerGroup"


# --- 6. list-runs right after activation ------------------------------------------------------

# The AWS CLI's list-runs example (awscli/examples/datapipeline/list-runs.rst) shows, right after
# activation of its get-pipeline-definition example: the resource CREATING, the input data node
# FINISHED, the output data node WAITING_ON_DEPENDENCIES, the activity WAITING_FOR_RUNNER, and every
# one of them with a start time.
CLI_EXAMPLE = [
    obj("EC2ResourceObj", type="Ec2Resource", terminateAfter="20 Minutes", instanceType="t1.micro"),
    obj(
        "Default",
        failureAndRerunMode="CASCADE",
        resourceRole="DataPipelineDefaultResourceRole",
        role="DataPipelineDefaultRole",
        schedule=ref("DefaultSchedule"),
        scheduleType="cron",
    ),
    obj("S3OutputLocation", type="S3DataNode", directoryPath="#{myS3OutputLoc}/out"),
    obj("S3InputLocation", type="S3DataNode", directoryPath="#{myS3InputLoc}"),
    obj(
        "DefaultSchedule",
        "Every 15 minutes",
        type="Schedule",
        startAt="FIRST_ACTIVATION_DATE_TIME",
        period="15 minutes",
        occurrences="4",
    ),
    obj(
        "ShellCommandActivityObj",
        type="ShellCommandActivity",
        command="#{myShellCmd}",
        input=ref("S3InputLocation"),
        output=ref("S3OutputLocation"),
        stage="true",
        runsOn=ref("EC2ResourceObj"),
    ),
]
CLI_VALUES = [
    {"id": "myS3OutputLoc", "stringValue": "s3://amzn-s3-demo-bucket/"},
    {"id": "myS3InputLoc", "stringValue": "s3://us-east-1.elasticmapreduce.samples/data"},
    {"id": "myShellCmd", "stringValue": "grep -rc GET ${INPUT1_STAGING_DIR}/*"},
]


def _list_runs_query() -> dict[str, Any]:
    # What `aws datapipeline list-runs` sends without options: started in the last 4 days.
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC) + timedelta(seconds=2)
    fmt = "%Y-%m-%dT%H:%M:%S"
    low, high = (now - timedelta(days=4)).strftime(fmt), now.strftime(fmt)
    between = {"type": "BETWEEN", "values": [low, high]}
    return {"selectors": [{"fieldName": "@actualStartTime", "operator": between}]}


async def _list_runs(dp: Any, pipeline_id: str) -> dict[str, str]:
    ids = (
        await dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE", query=_list_runs_query())
    )["ids"]
    if not ids:
        return {}
    described = await dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    return {
        fields_of(o)["@componentParent"]["ref"]: fields_of(o)["@status"]
        for o in described["pipelineObjects"]
    }


async def test_list_runs_matches_the_cli_documentation(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, CLI_EXAMPLE, parameterValues=CLI_VALUES)
    assert await _list_runs(dp, pipeline_id) == {
        "EC2ResourceObj": "CREATING",
        "S3InputLocation": "FINISHED",
        "S3OutputLocation": "WAITING_ON_DEPENDENCIES",
        "ShellCommandActivityObj": "WAITING_FOR_RUNNER",
    }
    task = await _task(dp, f"{pipeline_id}/EC2ResourceObj")
    assert (await _list_runs(dp, pipeline_id))["EC2ResourceObj"] == "RUNNING"
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    assert await _list_runs(dp, pipeline_id) == {
        "EC2ResourceObj": "FINISHED",
        "S3InputLocation": "FINISHED",
        "S3OutputLocation": "FINISHED",
        "ShellCommandActivityObj": "FINISHED",
    }


async def test_an_output_waits_for_its_producer_and_fails_with_it(dp: Any) -> None:
    objects = [*CLI_EXAMPLE[:-1], {**CLI_EXAMPLE[-1]}]
    objects[-1]["fields"] = [*objects[-1]["fields"], {"key": "maximumRetries", "stringValue": "0"}]
    pipeline_id = await start_pipeline(dp, objects, parameterValues=CLI_VALUES)
    task = await _task(dp, f"{pipeline_id}/EC2ResourceObj")
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FAILED", errorMessage="x")
    runs = await _list_runs(dp, pipeline_id)
    assert runs["ShellCommandActivityObj"] == "FAILED"
    assert runs["S3OutputLocation"] == "CASCADE_FAILED"


# --- 7. field formats -------------------------------------------------------------------------


async def test_placeholders_are_refused_as_aws_refuses_them(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="timeseries", workerGroup="wg", schedule=ref("S")),
        obj(
            "S",
            type="Schedule",
            startDateTime="yyyy-mm-ddT00:00:00",
            period="period",
        ),
        obj("Hello", type="ShellCommandActivity", command="echo", retryDelay="#{myDelay}"),
    ]
    _, answer = await _put(
        dp,
        objects,
        parameterObjects=[_param("myDelay", type="String")],
        parameterValues=[{"id": "myDelay", "stringValue": "soon"}],
    )
    messages = _errors(answer)
    assert answer["errored"]
    assert any("startDateTime 'yyyy-mm-ddT00:00:00'" in m for m in messages), messages
    assert any("period 'period'" in m for m in messages), messages
    assert any("retryDelay 'soon'" in m for m in messages), "checked after substitution"


async def test_a_schedule_needs_a_start(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="cron", workerGroup="wg", schedule=ref("S")),
        obj("S", type="Schedule", period="1 day"),
        obj("Hello", type="ShellCommandActivity", command="echo"),
    ]
    _, answer = await _put(dp, objects)
    assert any("needs 'startDateTime' or 'startAt'" in m for m in _errors(answer))


# --- 8. only evaluated fields in task objects ---------------------------------------------------


async def test_components_in_a_task_are_evaluated(dp: Any) -> None:
    objects = [
        obj(
            "Default",
            scheduleType="ondemand",
            workerGroup="wg",
            pipelineLogUri="#{myS3LogsPath}/HelloWorld",
            schedule=ref("DefaultSchedule"),
        ),
        obj(
            "DefaultSchedule",
            type="Schedule",
            period="1 Day",
            startAt="FIRST_ACTIVATION_DATE_TIME",
            occurrences="1",
        ),
        obj("Fmt", type="CSV", column="day #{format(@scheduledStartTime, 'YYYY')}"),
        obj("In", type="S3DataNode", directoryPath="#{myS3LogsPath}/in", dataFormat=ref("Fmt")),
        obj("Hello", type="ShellCommandActivity", command="echo", input=ref("In")),
    ]
    await start_pipeline(
        dp,
        objects,
        parameterObjects=[_param("myS3LogsPath", type="AWS::S3::ObjectKey")],
        parameterValues=[{"id": "myS3LogsPath", "stringValue": "s3://logs"}],
    )
    task = await _task(dp, "wg")
    assert not any("#{" in text for text in _strings(task)), _strings(task)
    assert fields_of(task["objects"]["DefaultSchedule"])["pipelineLogUri"] == "s3://logs/HelloWorld"
    assert fields_of(task["objects"]["Fmt"])["column"].startswith("day 20")


# --- 9. what is instantiated, and actions -------------------------------------------------------


async def test_alarms_databases_and_formats_are_not_instances(dp: Any, service: Any) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg", onFail=ref("FailAlarm")),
        obj("Db", type="RdsDatabase", username="u", **{"*password": "p"}),
        obj("Fmt", type="TSV"),
        obj("Conf", type="EmrConfiguration", classification="core-site"),
        obj("Out", type="SqlDataNode", database=ref("Db"), table="t", dataFormat=ref("Fmt")),
        obj("FailAlarm", type="SnsAlarm", topicArn="arn:aws:sns:::t", subject="failed"),
        obj(
            "OkAlarm",
            type="SnsAlarm",
            topicArn="arn:aws:sns:::t",
            subject="done",
            message="#{node.@scheduledStartTime} #{node.name}",
        ),
        obj("Load", type="CopyActivity", output=ref("Out"), onSuccess=ref("OkAlarm")),
    ]
    pipeline_id = await start_pipeline(dp, objects)
    found = await instances(dp, pipeline_id)
    assert sorted(found) == ["Load", "Out"]
    assert service.fired_actions(pipeline_id) == []
    task = await _task(dp, "wg")
    assert "FailAlarm" not in task["objects"]
    assert "OkAlarm" not in task["objects"]
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    fired = service.fired_actions(pipeline_id)
    assert [(a["actionId"], a["event"]) for a in fired] == [("OkAlarm", "onSuccess")]
    instance = found["Load"]
    assert fired[0]["fields"]["message"] == f"{instance['@scheduledStartTime']} Load"
    assert fired[0]["objectId"].startswith("@Load_")


async def test_fired_actions_are_readable_on_the_wire(dp: Any, service: LocalService) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg", maximumRetries="0"),
        obj("Alarm", type="SnsAlarm", topicArn="arn", subject="#{node.errorMessage}"),
        obj("Fails", type="ShellCommandActivity", command="false", onFail=ref("Alarm")),
    ]
    pipeline_id = await start_pipeline(dp, objects)
    task = await _task(dp, "wg")
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FAILED", errorMessage="exit 1")
    body = json.dumps({"pipelineId": pipeline_id}).encode()
    headers = {
        "X-Amz-Target": "PipeworkerLocal.DescribeFiredActions",
        "Content-Type": "application/x-amz-json-1.1",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(service.endpoint_url, data=body, headers=headers) as response,
    ):
        answer = await response.json(content_type=None)
    assert response.status == 200, answer
    [action] = answer["actions"]
    assert action["event"] == "onFail"
    assert action["fields"]["subject"] == "exit 1"


async def test_a_late_object_fires_its_late_action_and_terminate_cancels_it(
    dp: Any, service: LocalService
) -> None:
    # FAST runs durations x0.001: "10 Minutes" late is 0.6 s.
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg"),
        obj("Late", type="SnsAlarm", topicArn="arn", subject="late"),
        obj("Stop", type="Terminate"),
        obj(
            "Slow",
            type="ShellCommandActivity",
            command="sleep",
            lateAfterTimeout="10 Minutes",
            onLateAction=[ref("Late"), ref("Stop")],
        ),
    ]
    pipeline_id = await start_pipeline(dp, objects)
    await eventually(lambda: bool(service.fired_actions(pipeline_id)))
    assert [a["actionId"] for a in service.fired_actions(pipeline_id)] == ["Late", "Stop"]
    assert (await instances(dp, pipeline_id))["Slow"]["@status"] == "CANCELED"


async def test_a_node_both_input_and_output_of_one_activity_does_not_block_it(dp: Any) -> None:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg"),
        obj("In", type="S3DataNode", directoryPath="s3://b/in"),
        obj("Copy", type="CopyActivity", input=ref("In"), output=ref("In")),
    ]
    pipeline_id = await start_pipeline(dp, objects)
    task = await _task(dp, "wg")
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    found = await instances(dp, pipeline_id)
    assert {name: fields["@status"] for name, fields in found.items()} == {
        "In": "FINISHED",
        "Copy": "FINISHED",
    }
