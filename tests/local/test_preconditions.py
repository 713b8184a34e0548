"""Preconditions (issue 14, item 11): activities wait for them.

Runner-checked ones (ShellCommandPrecondition, Exists) are tasks; FALSE means "check again after
retryDelay" until preconditionTimeout. The S3 ones the service checks against the endpoint
``AWS_ENDPOINT_URL_S3`` names: here moto's threaded server on 127.0.0.1. ``FAST`` runs durations
x0.001, so "1 Minutes" is 60 ms.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from pipeworker.local import LocalService
from tests.helpers import client_config, eventually, fields_of, instances, obj, ref, start_pipeline


def _component(task: dict[str, Any]) -> str:
    attempt = fields_of(task["objects"][task["attemptId"]])
    instance = fields_of(task["objects"][attempt["@instanceParent"]["ref"]])
    return str(instance["@componentParent"]["ref"])


async def _next(dp: Any, group: str = "wg") -> dict[str, Any]:
    task: dict[str, Any] = (await dp.poll_for_task(workerGroup=group, hostname="h"))["taskObject"]
    return task


async def _nothing(dp: Any, group: str = "wg") -> bool:
    return "taskObject" not in await dp.poll_for_task(workerGroup=group, hostname="h")


def _guarded(precondition: dict[str, Any], on: str = "activity") -> list[dict[str, Any]]:
    objects = [
        obj("Default", scheduleType="ondemand", workerGroup="wg", retryDelay="1 Minutes"),
        precondition,
        obj("In", type="S3DataNode", directoryPath="s3://in/"),
        obj("Load", type="ShellCommandActivity", command="load", input=ref("In")),
    ]
    target = objects[3] if on == "activity" else objects[2]
    target["fields"].append({"key": "precondition", "refValue": precondition["id"]})
    return objects


async def test_a_shell_precondition_is_a_task_the_activity_waits_for(dp: Any) -> None:
    check = obj("Ready", type="ShellCommandPrecondition", command="test -e #{@scheduledStartTime}")
    pipeline_id = await start_pipeline(dp, _guarded(check))
    task = await _next(dp)
    assert _component(task) == "Ready"
    attempt = fields_of(task["objects"][task["attemptId"]])
    command = fields_of(task["objects"][attempt["@instanceParent"]["ref"]])["command"]
    assert command.startswith("test -e 20")
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FALSE")
    # Not met: the activity still waits; the check comes again after retryDelay (60 ms).
    assert (await instances(dp, pipeline_id))["Load"]["@status"] == "WAITING_ON_DEPENDENCIES"
    again = await _next(dp)
    assert _component(again) == "Ready"
    await dp.set_task_status(taskId=again["taskId"], taskStatus="FINISHED")
    load = await _next(dp)
    assert _component(load) == "Load"


async def test_an_exists_precondition_on_an_input_guards_the_activity(dp: Any) -> None:
    pipeline_id = await start_pipeline(dp, _guarded(obj("There", type="Exists"), on="input"))
    task = await _next(dp)
    assert _component(task) == "There"
    assert (await instances(dp, pipeline_id))["In"]["@status"] == "WAITING_ON_DEPENDENCIES"
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    assert _component(await _next(dp)) == "Load"


async def test_precondition_timeout_fails_what_waits(dp: Any) -> None:
    check = obj(
        "Ready", type="ShellCommandPrecondition", command="false", preconditionTimeout="2 Minutes"
    )
    pipeline_id = await start_pipeline(dp, _guarded(check))

    async def gave_up() -> bool:
        answer = await dp.poll_for_task(workerGroup="wg", hostname="h")
        if "taskObject" in answer:
            task = answer["taskObject"]
            assert _component(task) == "Ready", "the activity never runs"
            await dp.set_task_status(taskId=task["taskId"], taskStatus="FALSE")
        return (await instances(dp, pipeline_id))["Ready"]["@status"] == "FAILED"

    await eventually(gave_up, within=10)
    found = await instances(dp, pipeline_id)
    assert found["Load"]["@status"] == "CASCADE_FAILED"
    assert "preconditionTimeout" in found["Ready"]["errorMessage"]


# --- checked by the service against S3 ---------------------------------------------------------


@pytest.fixture
def s3(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    client = boto3.client(
        "s3", endpoint_url=moto_url, region_name="us-east-1", config=client_config()
    )
    bucket = f"b{id(client)}"
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket  # type: ignore[attr-defined]
    yield client
    client.close()


@pytest.mark.parametrize(
    ("kind", "field", "key"),
    [("S3KeyExists", "s3Key", "in/_SUCCESS"), ("S3PrefixNotEmpty", "s3Prefix", "in/")],
)
async def test_s3_preconditions_are_checked_against_the_endpoint(
    dp: Any, s3: Any, kind: str, field: str, key: str
) -> None:
    check = obj("Ready", type=kind, **{field: f"s3://{s3.bucket}/{key}"})
    pipeline_id = await start_pipeline(dp, _guarded(check))
    assert await _nothing(dp), "nothing to run while the key is missing"
    assert (await instances(dp, pipeline_id))["Load"]["@status"] == "WAITING_ON_DEPENDENCIES"
    s3.put_object(Bucket=s3.bucket, Key="in/_SUCCESS", Body=b"")
    # Re-checked every retryDelay (60 ms): a poll or two later (a busy machine slows the check).
    found: list[dict[str, Any]] = []

    async def polled() -> bool:
        answer = await dp.poll_for_task(workerGroup="wg", hostname="h")
        found.extend([answer["taskObject"]] if "taskObject" in answer else [])
        return bool(found)

    await eventually(polled, within=10)
    (task,) = found
    assert _component(task) == "Load"
    assert (await instances(dp, pipeline_id))["Ready"]["@status"] == "FINISHED"


async def test_an_s3_precondition_times_out(dp: Any, s3: Any) -> None:
    check = obj(
        "Ready",
        type="S3KeyExists",
        s3Key=f"s3://{s3.bucket}/never",
        preconditionTimeout="2 Minutes",
    )
    pipeline_id = await start_pipeline(dp, _guarded(check))

    async def failed() -> bool:
        return (await instances(dp, pipeline_id))["Ready"]["@status"] == "FAILED"

    await eventually(failed, within=10)
    assert (await instances(dp, pipeline_id))["Load"]["@status"] == "CASCADE_FAILED"


async def test_without_an_s3_endpoint_the_precondition_is_taken_as_met(
    dp: Any, monkeypatch: pytest.MonkeyPatch, service: LocalService
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    check = obj("Ready", type="S3KeyExists", s3Key="s3://somewhere/key")
    pipeline_id = await start_pipeline(dp, _guarded(check))
    assert _component(await _next(dp)) == "Load"
    ready = (await instances(dp, pipeline_id))["Ready"]
    assert ready["@status"] == "FINISHED"
    assert "AWS_ENDPOINT_URL_S3" in ready["@localNote"]
