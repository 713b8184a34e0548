"""The local service's Step Functions, driven by boto3's stepfunctions client as a user would:
long polls, tokens, the States Language subset, history, limits, faults and the AWS CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pipeworker.local import LocalConfig, LocalService, _sfn

from .conftest import ROLE, Sfn, machine, task_state


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


async def test_get_activity_task_holds_and_wakes_the_moment_a_task_is_scheduled() -> None:
    # The real hold (60 s): the poll must still be open when the task comes, and answer at once.
    async with LocalService(LocalConfig()) as service:
        sfn = Sfn(service)
        arn = await sfn.activity("wake")
        state_machine = await sfn.machine("wake", machine(T=task_state(arn)))
        poll = asyncio.ensure_future(sfn.get_activity_task(activityArn=arn, workerName="w"))
        await asyncio.sleep(0.5)
        assert not poll.done()
        started = time.monotonic()
        await sfn.start(state_machine, {"x": 1})
        task = await asyncio.wait_for(poll, 5)
        assert time.monotonic() - started < 2.0  # not the 60 s hold
        assert json.loads(task["input"]) == {"x": 1}


async def test_an_empty_poll_answers_after_its_hold_without_a_token(sfn: Sfn) -> None:
    arn = await sfn.activity("idle")
    started = time.monotonic()
    answer = await sfn.get_activity_task(activityArn=arn)
    assert time.monotonic() - started >= 0.45  # poll_hold=0.5 here
    assert "taskToken" not in answer


async def test_dead_tokens_answer_task_timed_out_and_strangers_invalid_token(sfn: Sfn) -> None:
    arn = await sfn.activity("tokens")
    state_machine = await sfn.machine(
        "tokens",
        machine(T=task_state(arn, HeartbeatSeconds=2)),  # 0.2 s here
    )

    async def token() -> str:
        answer = await sfn.get_activity_task(activityArn=arn, workerName="w")
        return str(answer["taskToken"])

    used, timed_out, stopped = [], [], []
    await sfn.start(state_machine)
    used.append(await token())
    await sfn.send_task_success(taskToken=used[0], output="{}")
    await sfn.start(state_machine)
    timed_out.append(await token())  # and never heartbeats
    stopped_execution = await sfn.start(state_machine)
    stopped.append(await token())
    await sfn.stop_execution(executionArn=stopped_execution)
    await asyncio.sleep(0.4)
    for dead in (used[0], timed_out[0], stopped[0]):
        for call in (
            sfn.send_task_heartbeat(taskToken=dead),
            sfn.send_task_success(taskToken=dead, output="{}"),
            sfn.send_task_failure(taskToken=dead, error="E"),
        ):
            with pytest.raises(ClientError) as info:
                await call
            assert code_of(info) == "TaskTimedOut"
    with pytest.raises(ClientError) as info:
        await sfn.send_task_heartbeat(taskToken="not-a-token")
    assert code_of(info) == "InvalidToken"


async def test_heartbeats_keep_a_task_alive_past_its_heartbeat_seconds(sfn: Sfn) -> None:
    arn = await sfn.activity("beating")
    state_machine = await sfn.machine("beating", machine(T=task_state(arn, HeartbeatSeconds=3)))
    execution = await sfn.start(state_machine)
    token = (await sfn.get_activity_task(activityArn=arn))["taskToken"]
    for _ in range(6):  # 0.6 s in all, twice the 0.3 s heartbeat timeout
        await asyncio.sleep(0.1)
        await sfn.send_task_heartbeat(taskToken=token)
    await sfn.send_task_success(taskToken=token, output='{"ok": true}')
    (described,) = await sfn.finished(execution)
    assert json.loads(described["output"]) == {"ok": True}


@pytest.mark.parametrize(
    ("state", "feature"),
    [
        ({"Type": "Map", "End": True}, "Map states"),
        ({"Type": "Parallel", "Branches": [], "End": True}, "Parallel states"),
        (
            {"Type": "Pass", "Parameters": {"a.$": "States.Format('{}', $.x)"}, "End": True},
            "intrinsic functions (States.Format)",
        ),
        (
            {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f"},
            "arn:aws:lambda",
        ),
        ({"Type": "Pass", "Assign": {"x": 1}, "End": True}, "variables (Assign)"),
        ({"Type": "Pass", "InputPath": "$..deep", "End": True}, "JSONPath recursive descent '..'"),
        ({"Type": "Pass", "OutputPath": "$.items[*]", "End": True}, "JSONPath wildcard '[*]'"),
    ],
)
async def test_anything_outside_the_subset_is_refused_naming_it(
    sfn: Sfn, state: dict[str, Any], feature: str
) -> None:
    state = {"End": True, **state} if state["Type"] == "Task" else state
    with pytest.raises(ClientError) as info:
        await sfn.machine("refused", machine(Only=state))
    assert code_of(info) == "InvalidDefinition"
    assert feature in info.value.response["Error"]["Message"]


async def test_broken_definitions_are_refused(sfn: Sfn) -> None:
    for definition in (
        "not json",
        json.dumps(machine(A={"Type": "Pass", "Next": "Nowhere"})),
        json.dumps(
            {"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "B": {"Type": "Succeed"}}}
        ),
        json.dumps(machine(A={"Type": "Pass"})),  # neither Next nor End
    ):
        with pytest.raises(ClientError) as info:
            await sfn.create_state_machine(name="broken", definition=definition, roleArn=ROLE)
        assert code_of(info) == "InvalidDefinition"


async def test_data_flow_choice_wait_and_fail_run_as_the_language_says(sfn: Sfn) -> None:
    definition = machine(
        Shape={
            "Type": "Pass",
            "InputPath": "$.order",
            "Parameters": {"id.$": "$.id", "total.$": "$.lines[1].price", "fixed": "yes"},
            "ResultPath": "$.shaped",
            "Next": "Route",
        },
        Route={
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.shaped.total", "NumericGreaterThan": 100},
                        {"Not": {"Variable": "$.shaped.id", "StringMatches": "test-*"}},
                    ],
                    "Next": "Big",
                },
                {"Variable": "$.missing", "IsPresent": False, "Next": "Small"},
            ],
            "Default": "Reject",
        },
        Big={"Type": "Wait", "SecondsPath": "$.delay", "OutputPath": "$.shaped", "Next": "Done"},
        Small={"Type": "Pass", "Result": {"size": "small"}, "End": True},
        Reject={"Type": "Fail", "Error": "Rejected", "Cause": "no rule matched"},
        Done={"Type": "Succeed"},
    )
    state_machine = await sfn.machine("flow", definition)
    big = {"order": {"id": "o-1", "lines": [{"price": 1}, {"price": 150}]}, "delay": 2}
    small = {"order": {"id": "test-1", "lines": [{"price": 1}, {"price": 150}]}, "delay": 0}
    started = time.monotonic()
    first, second = await sfn.finished(
        await sfn.start(state_machine, big), await sfn.start(state_machine, small)
    )
    assert time.monotonic() - started >= 0.2  # Wait 2 s, x0.1
    assert json.loads(first["output"]) == {"id": "o-1", "total": 150, "fixed": "yes"}
    assert json.loads(second["output"]) == {"size": "small"}
    history = await sfn.history(first["executionArn"])
    assert [e["type"] for e in history] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "WaitStateEntered",
        "WaitStateExited",
        "SucceedStateEntered",
        "SucceedStateExited",
        "ExecutionSucceeded",
    ]
    rejecting = await sfn.machine(
        "reject",
        {**definition, "StartAt": "Reject"}
        | {"States": {"Reject": definition["States"]["Reject"]}},
    )
    (failed,) = await sfn.finished(await sfn.start(rejecting))
    assert (failed["status"], failed["error"], failed["cause"]) == (
        "FAILED",
        "Rejected",
        "no rule matched",
    )


async def test_timeout_seconds_fails_the_task_with_states_timeout(sfn: Sfn) -> None:
    arn = await sfn.activity("unpolled")
    state_machine = await sfn.machine("timing", machine(T=task_state(arn, TimeoutSeconds=2)))
    execution = await sfn.start(state_machine)
    (described,) = await sfn.finished(execution)  # nobody polls: 0.2 s, then States.Timeout
    assert (described["status"], described["error"]) == ("FAILED", "States.Timeout")
    history = await sfn.history(execution)
    assert [e["type"] for e in history][-3:] == [
        "ActivityScheduled",
        "ActivityTimedOut",
        "ExecutionFailed",
    ]
    scheduled = history[-3]["activityScheduledEventDetails"]
    assert (scheduled["resource"], scheduled["timeoutInSeconds"]) == (arn, 2)


async def test_inputs_and_outputs_are_checked(sfn: Sfn) -> None:
    arn = await sfn.activity("limits")
    state_machine = await sfn.machine("limits", machine(T=task_state(arn)))
    for bad in (
        "{not json",
        json.dumps("é" * 140_000, ensure_ascii=False),
    ):  # the second: 280,002 bytes
        with pytest.raises(ClientError) as info:
            await sfn.start_execution(stateMachineArn=state_machine, input=bad)
        assert code_of(info) == "InvalidExecutionInput"
    await sfn.start(state_machine)
    token = (await sfn.get_activity_task(activityArn=arn))["taskToken"]
    with pytest.raises(ClientError) as info:
        await sfn.send_task_success(taskToken=token, output="{oops")
    assert code_of(info) == "InvalidOutput"
    with pytest.raises(ClientError) as info:
        await sfn.send_task_failure(taskToken=token, error="E" * 257)
    assert code_of(info) == "ValidationException"


async def test_resources_list_describe_and_delete(sfn: Sfn) -> None:
    arns = [await sfn.activity(f"a{n}") for n in range(3)]
    assert await sfn.activity("a0") == arns[0]  # CreateActivity is idempotent
    page = await sfn.list_activities(maxResults=2)
    assert [a["activityArn"] for a in page["activities"]] == arns[:2]
    rest = await sfn.list_activities(maxResults=2, nextToken=page["nextToken"])
    assert [a["activityArn"] for a in rest["activities"]] == arns[2:]
    assert (await sfn.describe_activity(activityArn=arns[1]))["name"] == "a1"
    await sfn.delete_activity(activityArn=arns[1])
    with pytest.raises(ClientError) as info:
        await sfn.describe_activity(activityArn=arns[1])
    assert code_of(info) == "ActivityDoesNotExist"
    with pytest.raises(ClientError) as info:
        await sfn.get_activity_task(activityArn="arn:aws:states:us-east-1:1:nope")
    assert code_of(info) == "InvalidArn"
    with pytest.raises(ClientError) as info:
        await sfn.create_activity(name="bad name")
    assert code_of(info) == "InvalidName"

    definition = machine(P={"Type": "Pass", "End": True})
    state_machine = await sfn.machine("listed", definition)
    described = await sfn.describe_state_machine(stateMachineArn=state_machine)
    assert (described["status"], json.loads(described["definition"])) == ("ACTIVE", definition)
    executions = [await sfn.start(state_machine, name=f"run-{n}") for n in range(2)]
    await sfn.finished(*executions)
    listed = await sfn.list_executions(stateMachineArn=state_machine, statusFilter="SUCCEEDED")
    assert [e["name"] for e in listed["executions"]] == ["run-1", "run-0"]  # newest first
    with pytest.raises(ClientError) as info:
        await sfn.start(state_machine, {"other": "input"}, name="run-0")
    assert code_of(info) == "ExecutionAlreadyExists"
    await sfn.delete_state_machine(stateMachineArn=state_machine)
    with pytest.raises(ClientError) as info:
        await sfn.describe_state_machine(stateMachineArn=state_machine)
    assert code_of(info) == "StateMachineDoesNotExist"


async def test_too_many_open_polls_answer_activity_worker_limit_exceeded(
    sfn: Sfn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sfn, "MAX_POLLERS", 2)
    arn = await sfn.activity("crowded")
    polls = [asyncio.ensure_future(sfn.get_activity_task(activityArn=arn)) for _ in range(2)]
    await asyncio.sleep(0.2)
    with pytest.raises(ClientError) as info:
        await sfn.get_activity_task(activityArn=arn)
    assert code_of(info) == "ActivityWorkerLimitExceeded"
    await asyncio.gather(*polls)


async def test_faults_apply_to_the_worker_calls_only(sfn: Sfn, service: LocalService) -> None:
    arn = await sfn.activity("faulty")
    service.configure_faults(error_rate=1.0)
    with pytest.raises(ClientError) as info:
        await sfn.get_activity_task(activityArn=arn)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    await sfn.list_activities()  # the setup calls are not the worker's: never faulted


async def test_rate_limits_are_the_accounts_buckets() -> None:
    # The buckets are the account's in us-east-1: 3,000 burst, then 500 per second (x1e-4).
    config = LocalConfig(poll_hold=0.5, rate_limits=True, rate_scale=1e-4)
    async with LocalService(config) as service:
        sfn = Sfn(service)
        limiter = service.dispatcher.limiter
        assert all(limiter.allow("SendTaskHeartbeat") for _ in range(2999))
        with pytest.raises(ClientError) as info:
            await sfn.send_task_heartbeat(taskToken="x")
        assert code_of(info) == "InvalidToken"  # the 3,000th call passed the bucket
        with pytest.raises(ClientError) as info:
            await sfn.send_task_heartbeat(taskToken="x")
        assert code_of(info) == "ThrottlingException"
        assert service.stats()["throttled"] == {"SendTaskHeartbeat": 1}


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
async def test_the_aws_cli_works_against_it(sfn: Sfn, service: LocalService) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    async def aws(*args: str) -> Any:
        process = await asyncio.create_subprocess_exec(
            "aws", "stepfunctions", *args, "--endpoint-url", service.endpoint_url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return json.loads(out) if out.strip() else None

    created = await aws("create-activity", "--name", "from-cli")
    listed = await aws("list-activities")
    assert created["activityArn"] in [a["activityArn"] for a in listed["activities"]]
    state_machine = await sfn.machine("cli", machine(P={"Type": "Pass", "Result": 7, "End": True}))
    execution = (await aws("start-execution", "--state-machine-arn", state_machine))["executionArn"]
    await sfn.finished(execution)
    described = await aws("describe-execution", "--execution-arn", execution)
    assert (described["status"], described["output"]) == ("SUCCEEDED", "7")


async def test_python_m_pipeworker_local_answers_stepfunctions() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipeworker.local", "--port", "0", "--poll-hold", "0.2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        url = line.rsplit(" ", 1)[-1].strip()
        client = boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1")
        arn = (await asyncio.to_thread(client.create_activity, name="standalone"))["activityArn"]
        answer = await asyncio.to_thread(client.get_activity_task, activityArn=arn)
        assert "taskToken" not in answer
    finally:
        process.terminate()
        await process.wait()
