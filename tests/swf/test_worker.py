"""An SWF worker against the local service: results, failures, cancellation, lost leases,
heartbeats and long polls, through the same Worker and supervisor as Data Pipeline."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pytest
from aiobotocore.session import get_session

from pipeworker import SWF, ConfigurationError, Task, TaskFailed, ValidationError, Worker
from pipeworker.local import LocalConfig, LocalService
from pipeworker.services.base import TRUNCATION_MARKER
from pipeworker.services.swf import ActivityTask, ActivityType, WorkflowExecution
from pipeworker.task import CancelReason

from .conftest import DOMAIN, TASK_LIST, eventually, settled, task_of

Register = Callable[..., Awaitable[None]]
MakeWorker = Callable[..., Worker]


def calls(service: LocalService, operation: str) -> int:
    return int(service.stats()["calls"].get(operation, 0))


async def test_results_failures_and_what_the_handler_sees(
    service: LocalService, register: Register, make_worker: MakeWorker
) -> None:
    await register("charge")
    await register("refund")
    seen: list[Any] = []
    worker = make_worker()

    @worker.activity(TASK_LIST, type="charge")
    async def charge(task: ActivityTask) -> Any:
        seen.append(
            (task.token, task.activity_id, task.activity_type, task.workflow_execution, task.input)
        )
        if task.input == "text":
            return "charged"
        return {"charged": int(task.input or 0)}

    @worker.activity(TASK_LIST, type="refund")
    async def refund(task: ActivityTask) -> None:
        raise TaskFailed("CardDeclined", "the card was declined")

    async with worker:
        service.schedule_activity_task(DOMAIN, ("charge", "1"), input="text", activity_id="a1")
        service.schedule_activity_task(DOMAIN, ("charge", "1"), input="42", activity_id="a2")
        service.schedule_activity_task(DOMAIN, ("refund", "1"), activity_id="a3")
        await eventually(settled(service, "a1", "a2", "a3"))

    assert task_of(service, "a1")["result"] == "charged"  # a str is sent as it is
    assert task_of(service, "a2")["result"] == '{"charged":42}'  # anything else as JSON
    failed = task_of(service, "a3")
    assert failed["status"] == "FAILED"
    assert failed["reason"] == "CardDeclined: the card was declined"
    token, activity_id, kind, execution, text = sorted(seen, key=lambda s: s[1])[0]
    assert token
    assert activity_id == "a1"
    assert text == "text"
    assert kind == ActivityType("charge", "1")
    assert execution == WorkflowExecution("local-workflow", "local-run")
    assert task_of(service, "a1")["identity"] == f"{os.getpid()}@{worker.config.hostname}"
    assert calls(service, "ReportTaskRunnerHeartbeat") == 0  # SWF has no runner heartbeat


async def test_long_results_and_failures_are_truncated_with_a_marker(
    service: LocalService, register: Register, make_worker: MakeWorker
) -> None:
    await register("big")
    worker = make_worker()

    @worker.activity(TASK_LIST)
    async def big(task: ActivityTask) -> str:
        if task.input == "fail":
            raise ValueError("x" * 1000)
        if task.input == "object":
            return object()  # type: ignore[return-value]
        return "r" * 40_000

    async with worker:
        for name in ("ok", "fail", "object"):
            service.schedule_activity_task(DOMAIN, ("big", "1"), input=name, activity_id=name)
        await eventually(settled(service, "ok", "fail", "object"))

    result = task_of(service, "ok")["result"]
    assert len(result) == 32_768
    assert result.endswith(TRUNCATION_MARKER)
    failed = task_of(service, "fail")
    assert len(failed["reason"]) == 256
    assert failed["reason"].startswith("ValueError: xxx")
    assert failed["reason"].endswith(TRUNCATION_MARKER)
    assert "Traceback" in failed["details"]
    assert "raise ValueError" in failed["details"]
    unserialisable = task_of(service, "object")
    assert unserialisable["status"] == "FAILED"
    assert unserialisable["reason"].startswith("ResultNotSerializable: object")


async def test_cancel_requested_cancels_the_handler_and_answers_canceled(
    service: LocalService, register: Register, make_worker: MakeWorker
) -> None:
    await register("slow")
    started = asyncio.Event()
    cancelled: list[str | None] = []
    worker = make_worker()

    @worker.activity(TASK_LIST)
    async def slow(task: ActivityTask) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(task.cancel_reason)
            raise
        return "never"

    async with worker:
        service.schedule_activity_task(DOMAIN, ("slow", "1"), activity_id="c1")
        await asyncio.wait_for(started.wait(), 5)
        service.request_cancel_activity_task(DOMAIN, "c1")
        await eventually(settled(service, "c1"))

    assert task_of(service, "c1")["status"] == "CANCELED"
    assert cancelled == ["canceled by the service"]
    assert calls(service, "RespondActivityTaskCanceled") == 1
    assert calls(service, "RespondActivityTaskCompleted") == 0
    assert calls(service, "RespondActivityTaskFailed") == 0


async def test_heartbeat_timeout_loses_the_lease_and_cancels_the_handler(
    service: LocalService, register: Register, make_worker: MakeWorker
) -> None:
    # The type says no timeout, so the worker beats every 1 s; this task expires after 0.3 s.
    await register("stuck")
    started = asyncio.Event()
    cancelled: list[str | None] = []
    worker = make_worker(progress_interval=1.0)

    @worker.activity(TASK_LIST)
    async def stuck(task: ActivityTask) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            cancelled.append(task.cancel_reason)
            cancelled.append(str(exc.args[0]))  # the cancellation's message says why
            raise

    async with worker:
        service.schedule_activity_task(
            DOMAIN, ("stuck", "1"), activity_id="t1", heartbeat_timeout=0.3
        )
        await asyncio.wait_for(started.wait(), 5)
        await eventually(lambda: bool(cancelled))

    assert task_of(service, "t1")["status"] == "TIMED_OUT"
    assert cancelled[0] is CancelReason.LEASE_LOST
    assert cancelled[1].startswith("lease lost")
    assert "UnknownResourceFault" in cancelled[1]
    for answer in ("Completed", "Failed", "Canceled"):  # nothing more was sent
        assert calls(service, f"RespondActivityTask{answer}") == 0


async def test_heartbeats_follow_the_types_timeout_and_send_only_the_latest_details(
    service: LocalService, register: Register, make_worker: MakeWorker
) -> None:
    # progress_interval is 30 s, but the type's 2 s heartbeat timeout sets the cadence (a beat
    # every 2/3 s: a busy machine's loop may stall for a second without losing the task).
    await register("long", heartbeat="2")
    worker = make_worker(progress_interval=30.0)

    @worker.activity(TASK_LIST)
    async def long(task: ActivityTask) -> str:
        for step in range(5):
            await task.heartbeat(f"step {step}")  # coalesced: only the last one is sent
        await asyncio.sleep(4.3)
        await task.heartbeat({"done": 5})
        return "ok"

    async with worker:
        service.schedule_activity_task(DOMAIN, ("long", "1"), activity_id="h1")
        await eventually(settled(service, "h1"))

    record = task_of(service, "h1")
    assert record["status"] == "COMPLETED"  # 4.3 s of work outlived a 2 s timeout
    assert record["lastHeartbeatDetails"] == '{"done":5}'  # pending details go before the result
    assert 3 <= record["heartbeats"] <= 9


async def test_sync_handlers_heartbeat_without_await_and_see_cancellation(
    service: LocalService, register: Register, make_worker: MakeWorker
) -> None:
    await register("blocking")
    saw_cancel = threading.Event()
    worker = make_worker()

    @worker.activity(TASK_LIST)
    def blocking(task: ActivityTask) -> str:
        assert threading.current_thread() is not threading.main_thread()
        task.heartbeat("working")
        if task.input == "quick":
            return "done in a thread"
        deadline = time.monotonic() + 5
        while not task.cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
        if task.cancelled:
            saw_cancel.set()
        return "ignored"

    async with worker:
        service.schedule_activity_task(DOMAIN, ("blocking", "1"), activity_id="s1", input="quick")
        service.schedule_activity_task(DOMAIN, ("blocking", "1"), activity_id="s2")
        await eventually(settled(service, "s1"))
        await eventually(lambda: task_of(service, "s2")["heartbeats"] > 0)
        service.request_cancel_activity_task(DOMAIN, "s2")
        await eventually(settled(service, "s2"))
        await asyncio.to_thread(saw_cancel.wait, 5)

    assert task_of(service, "s1")["result"] == "done in a thread"
    assert task_of(service, "s2")["status"] == "CANCELED"
    assert saw_cancel.is_set()


async def test_a_long_poll_wakes_up_when_a_task_is_scheduled(
    transport: Literal["lean", "aiobotocore"],
) -> None:
    async with (
        LocalService(LocalConfig(poll_hold=20.0)) as slow,
        get_session().create_client(
            "swf", region_name="us-east-1", endpoint_url=slow.endpoint_url
        ) as client,
    ):
        await client.register_domain(name=DOMAIN, workflowExecutionRetentionPeriodInDays="1")
        await client.register_activity_type(domain=DOMAIN, name="wake", version="1")
        worker = Worker(
            service=SWF(domain=DOMAIN, transport=transport),
            endpoint_url=slow.endpoint_url,
            shutdown_grace=0.5,
        )

        @worker.activity(TASK_LIST)
        async def wake(task: ActivityTask) -> str:
            return "awake"

        async with worker:
            await eventually(lambda: calls(slow, "PollForActivityTask") >= 1)
            await asyncio.sleep(0.2)  # the poll is now held
            began = time.monotonic()
            slow.schedule_activity_task(
                DOMAIN, ("wake", "1"), task_list=TASK_LIST, activity_id="w1"
            )
            await eventually(settled(slow, "w1"))
            elapsed = time.monotonic() - began
            stopping = asyncio.ensure_future(worker.stop())
            await asyncio.sleep(0)
            slow.swf.close()  # answer the polls still held, so the stop does not wait 20 s
            await stopping

        assert task_of(slow, "w1")["result"] == "awake"
        assert elapsed < 10.0  # woken by the task (typically ms), not by the 20 s hold ending


async def test_a_task_still_running_after_the_grace_period_is_failed_for_a_retry(
    service: LocalService, register: Register, make_worker: MakeWorker
) -> None:
    await register("endless")
    started = asyncio.Event()
    worker = make_worker(shutdown_grace=0.2)

    @worker.activity(TASK_LIST)
    async def endless(task: ActivityTask) -> None:
        started.set()
        await asyncio.sleep(30)

    async with worker:
        service.schedule_activity_task(DOMAIN, ("endless", "1"), activity_id="e1")
        await asyncio.wait_for(started.wait(), 5)

    record = task_of(service, "e1")
    assert record["status"] == "FAILED"
    assert record["reason"].startswith("RunnerShutdown: ")


async def test_throttled_calls_back_off_and_land(
    service: LocalService, register: Register, make_worker: MakeWorker
) -> None:
    await register("busy")
    service.configure_faults(throttle_rate=0.3, seed=7)
    worker = make_worker()

    @worker.activity(TASK_LIST)
    async def busy(task: ActivityTask) -> str:
        return task.activity_id

    ids = [f"b{i}" for i in range(10)]
    async with worker:
        for activity_id in ids:
            service.schedule_activity_task(DOMAIN, ("busy", "1"), activity_id=activity_id)
        await eventually(settled(service, *ids))

    assert [task_of(service, a)["result"] for a in ids] == ids
    assert service.stats()["faults"].get("throttle", 0) > 0


async def test_heartbeat_details_and_progress_fields_are_checked_in_the_handler(
    service: LocalService, register: Register, make_worker: MakeWorker
) -> None:
    await register("checked")
    errors: list[str] = []
    worker = make_worker()

    @worker.activity(TASK_LIST)
    async def checked(task: ActivityTask) -> None:
        with pytest.raises(ValidationError, match="2048") as too_long:
            await task.heartbeat("x" * 2049)
        errors.append(str(too_long.value))
        # Data Pipeline's API is not an SWF task's: details go with task.heartbeat().
        for data_pipeline_only in ("report_progress", "field", "evaluate", "pipeline_id"):
            if hasattr(task, data_pipeline_only):
                errors.append(f"an SWF task has {data_pipeline_only}")
        errors.append("checked")

    async with worker:
        service.schedule_activity_task(DOMAIN, ("checked", "1"), activity_id="v1")
        await eventually(settled(service, "v1"))

    assert task_of(service, "v1")["status"] == "COMPLETED"
    assert errors[1:] == ["checked"]


async def test_a_stop_lets_swf_polls_return_until_the_grace_ends_then_aborts_them(
    transport: Literal["lean", "aiobotocore"],
) -> None:
    # SWF's real 60 s hold. A poll in flight when the stop comes may still return a task within
    # the grace (a task delivered to an aborted SWF poll would wait for its timeout); once the
    # grace ends, the polls left are aborted rather than waited for.
    async with LocalService(LocalConfig(time_scale=0.001)) as held:
        async with get_session().create_client(
            "swf", region_name="us-east-1", endpoint_url=held.endpoint_url
        ) as swf:
            await swf.register_domain(name=DOMAIN, workflowExecutionRetentionPeriodInDays="1")
            await swf.register_activity_type(
                domain=DOMAIN, name="late", version="1", defaultTaskList={"name": TASK_LIST}
            )
        worker = Worker(
            service=SWF(domain=DOMAIN, transport=transport),
            endpoint_url=held.endpoint_url,
            region="us-east-1",
            shutdown_grace=2.0,
            max_concurrency=1,
        )
        ran: list[str] = []

        @worker.activity(TASK_LIST)
        async def late(task: ActivityTask) -> str:
            ran.append(task.activity_id)
            return "done"

        async with worker:
            await eventually(lambda: held.stats()["calls"].get("PollForActivityTask", 0) == 1)
            began = time.monotonic()
            stopping = asyncio.create_task(worker.stop())
            await asyncio.sleep(0.2)
            held.schedule_activity_task(DOMAIN, ("late", "1"), activity_id="l1")
            await asyncio.wait_for(stopping, 10)
            took = time.monotonic() - began
        assert ran == ["l1"]  # the poll in flight returned it within the grace, and it ran
        assert task_of(held, "l1")["status"] == "COMPLETED"
        assert took < 10.0  # the grace at most (2 s) and the status, never the 60 s hold

        idle = Worker(
            service=SWF(domain=DOMAIN, transport=transport),
            endpoint_url=held.endpoint_url,
            region="us-east-1",
            shutdown_grace=1.0,
        )
        idle.activity(TASK_LIST)(late)
        async with idle:
            polls = held.stats()["calls"].get("PollForActivityTask", 0)
            await eventually(
                lambda: held.stats()["calls"].get("PollForActivityTask", 0) == polls + 1
            )
            began = time.monotonic()
            await asyncio.wait_for(idle.stop(), 10)
            took = time.monotonic() - began
        assert 1.0 <= took < 10.0  # the grace (1 s) and the abort, never the 60 s hold


def test_a_data_pipeline_handler_is_refused_by_an_swf_worker_at_registration() -> None:
    worker = Worker(service=SWF(domain=DOMAIN), region="us-east-1")
    with pytest.raises(
        ConfigurationError, match="annotated to take Task, but swf handlers get ActivityTask"
    ):

        @worker.activity(TASK_LIST)
        async def export(task: Task) -> None:
            task.field("table")

    @worker.activity(TASK_LIST)
    async def fine(task: ActivityTask) -> None: ...

    assert not issubclass(ActivityTask, Task)  # no service's task inherits another's API
