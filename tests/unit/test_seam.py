"""The public transport seam: a transport object in place of AWS, for every service.

The environment has no credentials (``conftest.py``): these workers could not have started if
anything had reached for them or for a botocore client.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from pipeworker import (
    SWF,
    ActivityTask,
    ConfigurationError,
    DataPipeline,
    StepFunctions,
    StepFunctionsTask,
    Task,
    Worker,
)
from pipeworker.testing import FakeDataPipeline, MockTransport, ServiceErrorAnswer


async def _serve_until(worker: Worker, done: asyncio.Event) -> None:
    async with worker:
        async with asyncio.timeout(5):
            await done.wait()


async def test_data_pipeline_runs_a_task_with_no_credentials_and_no_network() -> None:
    # A hand-written handler: one task, then empty answers.
    done = asyncio.Event()
    sent: list[tuple[str, dict[str, Any]]] = []
    handed_out = False

    def aws(operation: str, params: dict[str, Any]) -> Any:
        nonlocal handed_out
        sent.append((operation, params))
        if operation == "PollForTask" and not handed_out:
            handed_out = True
            attempt = {"id": "@a", "name": "@a", "fields": [{"key": "table", "stringValue": "t1"}]}
            return {"taskObject": {"taskId": "T1", "attemptId": "@a", "objects": {"@a": attempt}}}
        if operation == "ReportTaskProgress":
            return {"canceled": False}
        if operation == "ReportTaskRunnerHeartbeat":
            return {"terminate": False}
        if operation == "SetTaskStatus":
            done.set()
        return None  # an empty answer; an empty poll answer is "no task"

    worker = Worker(service=DataPipeline(transport=MockTransport(aws)), rate_limits=None)
    tables: list[Any] = []

    @worker.activity("wg-1")
    async def handle(task: Task) -> None:
        tables.append(task.field("table"))

    await _serve_until(worker, done)
    assert tables == ["t1"]
    assert ("SetTaskStatus", {"taskId": "T1", "taskStatus": "FINISHED"}) in sent
    poll = next(params for operation, params in sent if operation == "PollForTask")
    assert poll["workerGroup"] == "wg-1"


async def test_swf_sends_the_result_and_reads_the_heartbeat_timeout_through_the_seam() -> None:
    done = asyncio.Event()
    completed: list[dict[str, Any]] = []
    polls = 0

    async def aws(operation: str, params: dict[str, Any]) -> Any:
        nonlocal polls
        if operation == "PollForActivityTask":
            polls += 1
            if polls > 1:
                await asyncio.sleep(60)  # a held long poll, aborted by the stop's grace end
                return {"taskToken": ""}
            return {
                "taskToken": "tok-1",
                "activityId": "a-1",
                "startedEventId": 7,
                "input": '{"n": 2}',
                "activityType": {"name": "double", "version": "1"},
                "workflowExecution": {"workflowId": "wf-1", "runId": "r-1"},
            }
        if operation == "DescribeActivityType":
            return {"configuration": {"defaultTaskHeartbeatTimeout": "NONE"}}
        if operation == "RespondActivityTaskCompleted":
            completed.append(params)
            done.set()
        return {}

    worker = Worker(
        service=SWF(domain="orders", transport=MockTransport(aws)),
        rate_limits=None,
        shutdown_grace=0.1,
    )

    @worker.activity("orders-tasks", type="double")
    async def double(task: ActivityTask) -> Any:
        return {"n": json.loads(task.input or "null")["n"] * 2}

    await _serve_until(worker, done)
    assert completed == [{"taskToken": "tok-1", "result": '{"n":4}'}]


async def test_step_functions_resolves_its_activity_and_reports_failure_through_the_seam() -> None:
    done = asyncio.Event()
    failures: list[dict[str, Any]] = []
    arn = "arn:aws:states:us-east-1:123456789012:activity:charge"
    handed_out = False

    async def aws(operation: str, params: dict[str, Any]) -> Any:
        nonlocal handed_out
        if operation == "ListActivities":
            return {"activities": [{"name": "charge", "activityArn": arn}]}
        if operation == "GetActivityTask":
            assert params["activityArn"] == arn
            if handed_out:
                await asyncio.sleep(60)
                return {}
            handed_out = True
            return {"taskToken": "tok-9", "input": '{"amount": -1}'}
        if operation == "SendTaskFailure":
            failures.append(params)
            done.set()
        return {}

    worker = Worker(
        service=StepFunctions(transport=MockTransport(aws)), rate_limits=None, shutdown_grace=0.1
    )

    @worker.activity("charge")
    async def charge(task: StepFunctionsTask) -> None:
        raise ValueError(f"negative amount {task.input['amount']}")

    await _serve_until(worker, done)
    assert failures[0]["taskToken"] == "tok-9"
    assert failures[0]["error"] == "ValueError"
    assert "negative amount -1" in failures[0]["cause"]


async def test_an_error_answer_goes_through_the_services_error_table(
    fake: FakeDataPipeline, caplog: pytest.LogCaptureFixture
) -> None:
    # TaskNotFoundException on a poll is a rejection (a poll holds no lease), not a lost lease:
    # the queue pauses and the worker says so; the service's own table decided.
    fake.fail("PollForTask", "TaskNotFoundException", message="no such group")
    worker = Worker(service=DataPipeline(transport=fake.transport), rate_limits=None)
    worker.activity("wg-1")(_noop)
    with caplog.at_level(logging.ERROR, "pipeworker"):
        async with worker:
            await fake.wait_for(lambda: len(fake.calls_of("PollForTask")) >= 2)
    assert "poll of 'wg-1' failed: PollForTask: TaskNotFoundException: no such group" in caplog.text


async def test_a_200_answer_carrying_an_error_type_is_an_error(fake: FakeDataPipeline) -> None:
    # As the lean transport reads it: a status must never be taken as landed on its word.
    fake.garble("SetTaskStatus", {"__type": "InternalServiceError", "message": "oops"})
    worker = Worker(service=DataPipeline(transport=fake.transport), rate_limits=None)
    worker.activity("wg-1")(_noop)
    task_id = fake.put("wg-1")
    async with worker:
        await fake.wait_for(lambda: fake.statuses.get(task_id))
    assert len(fake.status_calls(task_id)) == 2  # the 200-with-error was retried


async def _noop(task: Task) -> None:
    pass


def test_transport_takes_a_name_or_an_object_with_an_async_send() -> None:
    transport = MockTransport(lambda operation, params: {})
    assert DataPipeline(transport=transport).transport is transport
    assert SWF(domain="d").with_transport(transport).transport is transport
    assert StepFunctions(transport=transport).transport is transport

    class SyncSend:
        def send(self, operation: str, params: Any) -> Any:
            return {}

    for wrong in ("http", SyncSend(), None):
        with pytest.raises(ConfigurationError, match="MockTransport"):
            DataPipeline(transport=wrong)  # type: ignore[arg-type]


async def test_the_handler_sees_json_and_a_connection_error_is_a_dropped_connection() -> None:
    seen: list[Any] = []

    def aws(operation: str, params: dict[str, Any]) -> Any:
        seen.append(params)
        if operation == "Drop":
            raise ConnectionError("reset")
        return "[1, 2]" if operation == "List" else {"at": params["at"]}

    transport = MockTransport(aws)
    assert await transport.send("Echo", {"at": (1, 2)}) == {"at": [1, 2]}
    assert seen == [{"at": [1, 2]}]  # what the wire carries: a list, not a tuple

    import aiohttp

    from pipeworker.services.base import MalformedAnswer

    with pytest.raises(aiohttp.ClientConnectionError, match="reset"):
        await transport.send("Drop", {})
    with pytest.raises(MalformedAnswer, match="JSON list"):
        await transport.send("List", {})
    assert [request.operation for request in transport.requests] == ["Echo", "Drop", "List"]
    error = ServiceErrorAnswer("ThrottlingException", "slow down", status=400)
    assert (error.code, error.message, error.status) == ("ThrottlingException", "slow down", 400)
