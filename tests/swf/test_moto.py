"""End to end against moto's SWF: a decider written here schedules activities, the pipeworker
worker runs them, and the workflow history shows what the handlers returned and raised."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from pipeworker import SWF, TaskFailed, Worker
from pipeworker.services.swf import ActivityTask

from .conftest import eventually

DOMAIN = "moto-orders"
DECIDER_LIST = "deciders"
ACTIVITY_LIST = "orders-activities"


@pytest.fixture
async def moto_swf(moto_url: str) -> AsyncIterator[Any]:
    # moto slows down as state accumulates: every test starts from a reset server.
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    (await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)).close()
    config = Config(retries={"total_max_attempts": 1}, read_timeout=10)
    async with get_session().create_client(
        "swf", region_name="us-east-1", endpoint_url=moto_url, config=config
    ) as client:
        yield client


async def _history(client: Any, execution: dict[str, str]) -> list[dict[str, Any]]:
    answer = await client.get_workflow_execution_history(domain=DOMAIN, execution=execution)
    events: list[dict[str, Any]] = answer["events"]
    return events


async def _schedule(
    client: Any, workflow_id: str, activities: dict[str, str | None]
) -> dict[str, str]:
    """Register the domain and types, start a workflow, and decide once: schedule *activities*
    (activity type -> input) as a decider would. Returns the execution."""
    await client.register_domain(name=DOMAIN, workflowExecutionRetentionPeriodInDays="1")
    await client.register_workflow_type(
        domain=DOMAIN,
        name=workflow_id,
        version="1",
        defaultTaskList={"name": DECIDER_LIST},
        defaultExecutionStartToCloseTimeout="600",
        defaultTaskStartToCloseTimeout="60",
        defaultChildPolicy="TERMINATE",
    )
    for name in activities:
        await client.register_activity_type(
            domain=DOMAIN,
            name=name,
            version="1",
            defaultTaskList={"name": ACTIVITY_LIST},
            defaultTaskHeartbeatTimeout="60",
            defaultTaskStartToCloseTimeout="300",
            defaultTaskScheduleToStartTimeout="300",
            defaultTaskScheduleToCloseTimeout="600",
        )
    started = await client.start_workflow_execution(
        domain=DOMAIN,
        workflowId=f"{workflow_id}-1",
        workflowType={"name": workflow_id, "version": "1"},
    )
    decision = await client.poll_for_decision_task(
        domain=DOMAIN, taskList={"name": DECIDER_LIST}, identity="test-decider"
    )
    assert decision["taskToken"]
    await client.respond_decision_task_completed(
        taskToken=decision["taskToken"],
        decisions=[
            {
                "decisionType": "ScheduleActivityTask",
                "scheduleActivityTaskDecisionAttributes": {
                    "activityType": {"name": name, "version": "1"},
                    "activityId": f"{name}-1",
                    **({"input": data} if data is not None else {}),
                },
            }
            for name, data in activities.items()
        ],
    )
    return {"workflowId": f"{workflow_id}-1", "runId": started["runId"]}


def _worker(moto_url: str, transport: Literal["lean", "aiobotocore"], **service: Any) -> Worker:
    return Worker(
        service=SWF(domain=DOMAIN, transport=transport, **service),
        endpoint_url=moto_url,
        region="us-east-1",
        progress_interval=0.5,
        shutdown_grace=1.0,
    )


@pytest.mark.parametrize("transport", ["lean", "aiobotocore"])
async def test_activities_complete_and_fail_in_the_workflow_history(
    moto_swf: Any, moto_url: str, transport: Literal["lean", "aiobotocore"]
) -> None:
    client = moto_swf
    amount = json.dumps({"amount": 42})
    execution = await _schedule(client, "order", {"charge": amount, "ship": amount})
    worker = _worker(moto_url, transport, identity="pipeworker-test")

    @worker.activity(ACTIVITY_LIST, type="charge")
    async def charge(task: ActivityTask) -> dict[str, Any]:
        await task.heartbeat("charging")
        return {"charged": json.loads(task.input or "{}")["amount"], "by": task.activity_id}

    @worker.activity(ACTIVITY_LIST, type="ship")
    def ship(task: ActivityTask) -> None:
        raise TaskFailed("NoAddress", "the order has no shipping address")

    def closed(events: list[dict[str, Any]]) -> bool:
        kinds = {event["eventType"] for event in events}
        return {"ActivityTaskCompleted", "ActivityTaskFailed"} <= kinds

    events: list[dict[str, Any]] = []

    async def check() -> bool:
        events[:] = await _history(client, execution)
        return closed(events)

    async with worker:
        await eventually(check, within=20)
        # moto answers an empty poll after about 1 s; the stop waits for polls in flight.

    by_type: dict[str, dict[str, Any]] = {}
    for event in events:
        by_type.setdefault(event["eventType"], event)
    completed = by_type["ActivityTaskCompleted"]["activityTaskCompletedEventAttributes"]
    assert json.loads(completed["result"]) == {"charged": 42, "by": "charge-1"}
    failed = by_type["ActivityTaskFailed"]["activityTaskFailedEventAttributes"]
    assert failed["reason"] == "NoAddress: the order has no shipping address"
    started_event = by_type["ActivityTaskStarted"]["activityTaskStartedEventAttributes"]
    assert started_event["identity"] == "pipeworker-test"


@pytest.mark.parametrize("transport", ["lean", "aiobotocore"])
async def test_a_lone_surrogate_in_a_result_lands_in_the_history(
    moto_swf: Any, moto_url: str, transport: Literal["lean", "aiobotocore"]
) -> None:
    # The lean transport used to fail to encode it (UnicodeEncodeError): the status never went.
    client = moto_swf
    execution = await _schedule(client, "note", {"note": None})
    worker = _worker(moto_url, transport)

    @worker.activity(ACTIVITY_LIST, type="note")
    async def note(task: ActivityTask) -> str:
        return "half an emoji: \ud83d"

    completed: list[dict[str, Any]] = []

    async def check() -> bool:
        completed[:] = [
            event["activityTaskCompletedEventAttributes"]
            for event in await _history(client, execution)
            if event["eventType"] == "ActivityTaskCompleted"
        ]
        return bool(completed)

    async with worker:
        await eventually(check, within=20)
    assert completed[0]["result"] == "half an emoji: \ud83d"
