"""The local service's SWF subset on the wire: errors shaped as SWF's, validation, local calls."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from pipeworker.local import LocalService

from .conftest import DOMAIN, TASK_LIST

Register = Callable[..., Awaitable[None]]


async def test_dead_tokens_and_unknown_domains_are_unknown_resource_faults(swf: Any) -> None:
    with pytest.raises(ClientError) as caught:
        await swf.record_activity_task_heartbeat(taskToken="no-such-token")
    assert caught.value.response["Error"]["Code"] == "UnknownResourceFault"
    with pytest.raises(ClientError) as caught:
        await swf.poll_for_activity_task(domain="nowhere", taskList={"name": TASK_LIST})
    assert caught.value.response["Error"]["Code"] == "UnknownResourceFault"


async def test_limits_are_enforced_as_validation_errors(swf: Any, register: Register) -> None:
    with pytest.raises(ClientError) as caught:
        await swf.record_activity_task_heartbeat(taskToken="t", details="x" * 2049)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "2048" in caught.value.response["Error"]["Message"]


async def test_a_poll_gets_the_task_then_an_empty_answer(
    swf: Any, service: LocalService, register: Register
) -> None:
    await register("charge", heartbeat="5")
    service.schedule_activity_task(DOMAIN, ("charge", "1"), input="in", activity_id="p1")
    task = await swf.poll_for_activity_task(
        domain=DOMAIN, taskList={"name": TASK_LIST}, identity="me"
    )
    assert task["activityId"] == "p1"
    assert task["input"] == "in"
    assert task["activityType"] == {"name": "charge", "version": "1"}
    assert (await swf.record_activity_task_heartbeat(taskToken=task["taskToken"]))[
        "cancelRequested"
    ] is False
    await swf.respond_activity_task_completed(taskToken=task["taskToken"], result="r")
    empty = await swf.poll_for_activity_task(domain=DOMAIN, taskList={"name": TASK_LIST})
    assert "taskToken" not in empty
    with pytest.raises(ClientError):  # the token is closed now
        await swf.respond_activity_task_failed(taskToken=task["taskToken"], reason="late")
    described = await swf.describe_activity_type(
        domain=DOMAIN, activityType={"name": "charge", "version": "1"}
    )
    assert described["configuration"]["defaultTaskHeartbeatTimeout"] == "5"


async def test_local_calls_schedule_cancel_and_describe_over_http(
    service: LocalService, register: Register
) -> None:
    await register("charge")

    async def control(operation: str, body: dict[str, Any]) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                service.endpoint_url,
                data=json.dumps(body),
                headers={
                    "X-Amz-Target": f"PipeworkerLocal.{operation}",
                    "Content-Type": "application/x-amz-json-1.0",
                },
            ) as response,
        ):
            return response.status, await response.json(content_type=None)

    status, scheduled = await control(
        "ScheduleActivityTask",
        {"domain": DOMAIN, "activityType": {"name": "charge", "version": "1"}, "input": "x"},
    )
    assert status == 200
    activity_id = scheduled["activityId"]
    # Not polled yet: a cancellation closes it at once.
    assert await control(
        "RequestCancelActivityTask", {"domain": DOMAIN, "activityId": activity_id}
    ) == (200, {"status": "CANCELED"})
    status, described = await control("DescribeActivityTasks", {"domain": DOMAIN})
    assert [t["status"] for t in described["activityTasks"]] == ["CANCELED"]
    status, missing = await control(
        "ScheduleActivityTask", {"domain": DOMAIN, "activityType": {"name": "nope", "version": "1"}}
    )
    assert status == 400
    assert missing["__type"].endswith("#UnknownResourceFault")
