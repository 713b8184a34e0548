"""The SWF and Step Functions fakes: the same scope and supervisor, through each service's wire
translation and error table. The end-to-end versions over HTTP are in ``tests/swf`` and
``tests/sfn``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from pipeworker import (
    SWF,
    ActivityTask,
    CancelReason,
    ConfigurationError,
    StepFunctions,
    StepFunctionsTask,
    Worker,
)
from pipeworker.testing import FakeStepFunctions, FakeSWF


def _swf_worker(fake: FakeSWF, **settings: Any) -> Worker:
    # A short grace: SWF's polls are drained (not aborted) at a stop, until the grace ends.
    defaults: dict[str, Any] = {"rate_limits": None, "shutdown_grace": 0.1}
    return Worker(service=SWF(domain="orders", transport=fake.transport), **defaults, **settings)


async def test_swf_results_and_heartbeat_details_reach_the_service() -> None:
    fake = FakeSWF()
    worker = _swf_worker(fake, progress_interval=0.05)

    @worker.activity("orders-tasks", type="double")
    async def double(task: ActivityTask) -> Any:
        await task.heartbeat("half way")
        await fake.wait_for(lambda: fake.heartbeats[task.id])
        return {"n": json.loads(task.input or "null")["n"] * 2}

    token = fake.put("orders-tasks", input='{"n": 21}', type=("double", "1"))
    async with worker:
        ending = await fake.wait_for(lambda: fake.outcomes.get(token))
    assert ending.operation == "RespondActivityTaskCompleted"
    assert json.loads(ending.params["result"]) == {"n": 42}
    assert fake.heartbeats[token][0] == "half way"


async def test_swf_cancel_requested_cancels_the_handler_and_answers_canceled() -> None:
    fake = FakeSWF()
    worker = _swf_worker(fake, progress_interval=0.05)
    reasons: list[CancelReason | None] = []

    @worker.activity("orders-tasks")
    async def slow(task: ActivityTask) -> None:
        fake.cancel(task.id)
        try:
            await asyncio.sleep(30)
        finally:
            reasons.append(task.cancel_reason)

    token = fake.put("orders-tasks")
    async with worker:
        ending = await fake.wait_for(lambda: fake.outcomes.get(token))
    assert ending.operation == "RespondActivityTaskCanceled"
    assert reasons == [CancelReason.SERVICE]


async def test_swf_a_lost_lease_cancels_the_handler_and_nothing_more_is_sent() -> None:
    fake = FakeSWF()
    worker = _swf_worker(fake, progress_interval=0.05)
    ended = asyncio.Event()

    @worker.activity("orders-tasks")
    async def slow(task: ActivityTask) -> None:
        fake.lose(task.id)  # the heartbeat timeout ran out, as the service sees it
        try:
            await asyncio.sleep(30)
        finally:
            ended.set()

    token = fake.put("orders-tasks")
    async with worker:
        await ended.wait()
    assert [call.operation for call in fake.calls_about(token)] == ["RecordActivityTaskHeartbeat"]
    assert token not in fake.outcomes


async def test_swf_a_types_heartbeat_timeout_sets_the_cadence() -> None:
    fake = FakeSWF()
    worker = _swf_worker(fake)  # progress_interval: 60 s

    @worker.activity("orders-tasks")
    async def slow(task: ActivityTask) -> None:
        await fake.wait_for(lambda: len(fake.heartbeats[task.id]) >= 1)

    token = fake.put("orders-tasks", heartbeat_timeout="1")
    async with worker:
        await fake.wait_for(lambda: fake.outcomes.get(token))
    (heartbeat,) = [c for c in fake.calls_about(token) if c.operation.startswith("Record")]
    started = fake.calls_of("DescribeActivityType")[0].at
    assert heartbeat.at - started < 1.0  # inside the 1 s timeout


async def test_step_functions_output_and_a_lost_task_through_the_fake() -> None:
    fake = FakeStepFunctions()
    worker = Worker(
        service=StepFunctions(transport=fake.transport),
        rate_limits=None,
        shutdown_grace=0.1,
        progress_interval=0.05,
    )

    @worker.activity("charge")
    async def charge(task: StepFunctionsTask) -> Any:
        if task.input["amount"] < 0:
            fake.lose(task.id)  # the execution was stopped: the next heartbeat says so
            await asyncio.sleep(30)
        return {"charged": task.input["amount"]}

    paid = fake.put("charge", {"amount": 5})
    stopped = fake.put("charge", {"amount": -1})
    async with worker:
        ending = await fake.wait_for(lambda: fake.outcomes.get(paid))
        await fake.wait_for(lambda: fake.calls_about(stopped))
    assert ending.operation == "SendTaskSuccess"
    assert json.loads(ending.params["output"]) == {"charged": 5}
    assert stopped not in fake.outcomes  # nothing sent after TaskTimedOut
    assert [call.operation for call in fake.calls_about(stopped)] == ["SendTaskHeartbeat"]


async def test_step_functions_an_unknown_activity_is_refused_unless_created() -> None:
    fake = FakeStepFunctions()
    worker = Worker(service=StepFunctions(transport=fake.transport), rate_limits=None)
    worker.activity("refund")(_noop)
    with pytest.raises(ConfigurationError, match="activity 'refund' does not exist"):
        await worker.serve()
    created = Worker(
        service=StepFunctions(transport=fake.transport, create_activities=True),
        rate_limits=None,
        shutdown_grace=0.1,  # Step Functions' polls are drained at a stop until the grace ends
    )
    created.activity("refund")(_noop)
    async with created:
        pass
    assert "refund" in fake.activities
    assert [call.operation for call in fake.calls_of("CreateActivity")] == ["CreateActivity"]


async def _noop(task: Any) -> None:
    pass
