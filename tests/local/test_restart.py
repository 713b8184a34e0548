"""LocalService.stop() then start(): the same state is served again and its timers run again.

Before the fix, stop() cancelled the lease, retry-delay and SWF heartbeat timers and start()
never re-armed them: an instance waiting out its retry delay, or a task whose runner vanished,
stayed where it was for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from pipeworker import Task, Worker
from pipeworker.local import LocalConfig, LocalService
from tests.helpers import client_config, eventually, obj, start_pipeline, statuses


def retried_activity(group: str, **fields: str) -> list[dict[str, Any]]:
    return [
        obj("Default", scheduleType="ondemand", workerGroup=group, **fields),
        obj("Work", type="ShellCommandActivity", command="run"),
    ]


async def test_a_retry_pending_at_stop_still_runs_to_finished_after_start(
    make_client: Any,
) -> None:
    # retryDelay "10 minutes" x 0.001 = 0.6 s: long enough to stop the service inside it.
    service = LocalService(LocalConfig(poll_hold=1.0, time_scale=0.001))
    await service.start()
    try:
        dp = await make_client(service)
        pipeline_id = await start_pipeline(
            dp, retried_activity("wg-restart", maximumRetries="1", retryDelay="10 minutes")
        )
        first = (await dp.poll_for_task(workerGroup="wg-restart"))["taskObject"]
        await dp.set_task_status(
            taskId=first["taskId"], taskStatus="FAILED", errorId="Boom", errorMessage="once"
        )
        instance = next(iter(service.state.pipelines[pipeline_id].current_run))
        # The retry is pending when the service stops (stop() pauses it before any await).
        assert instance.retry_handle is not None
        await service.stop()
        await service.start()

        ran: list[str] = []
        worker = Worker(endpoint_url=service.endpoint_url, region="us-east-1")

        @worker.activity("wg-restart")
        async def work(task: Task) -> None:
            ran.append(task.attempt_id)

        async with worker:

            async def finished() -> bool:
                return (await statuses(dp, pipeline_id)) == {"Work": "FINISHED"}

            await eventually(finished, within=20)
        assert len(ran) == 1
        assert ran[0].endswith("_Attempt=2")
    finally:
        await service.stop()


async def test_a_lease_running_at_stop_still_expires_and_reassigns_after_start(
    make_client: Any,
) -> None:
    service = LocalService(LocalConfig(poll_hold=10.0, ack_timeout=1.0, time_scale=0.001))
    await service.start()
    try:
        dp = await make_client(service)
        await start_pipeline(dp, retried_activity("wg-lease"))
        first = (await dp.poll_for_task(workerGroup="wg-lease"))["taskObject"]
        await service.stop()
        await service.start()
        # Never acknowledged: once the window ends the waiting poll gets the task again.
        loop = asyncio.get_running_loop()
        started = loop.time()
        second = (await dp.poll_for_task(workerGroup="wg-lease"))["taskObject"]
        assert loop.time() - started < 9.0, "the lease never expired"
        assert second["attemptId"].endswith("_Attempt=2")
        with pytest.raises(ClientError) as caught:
            await dp.report_task_progress(taskId=first["taskId"])
        assert caught.value.response["Error"]["Code"] == "TaskNotFoundException"
    finally:
        await service.stop()


async def test_time_stands_still_while_the_service_is_stopped(make_client: Any) -> None:
    # A runner cannot report to a stopped service, so the downtime does not eat its lease.
    service = LocalService(LocalConfig(poll_hold=0.3, ack_timeout=1.0, time_scale=0.001))
    await service.start()
    try:
        dp = await make_client(service)
        await start_pipeline(dp, retried_activity("wg-pause"))
        first = (await dp.poll_for_task(workerGroup="wg-pause"))["taskObject"]
        await service.stop()
        await asyncio.sleep(1.3)  # longer than the whole acknowledgement window
        await service.start()
        answer = await dp.report_task_progress(taskId=first["taskId"])
        assert answer["canceled"] is False
    finally:
        await service.stop()


async def test_an_swf_heartbeat_timeout_still_fires_after_a_restart() -> None:
    service = LocalService(LocalConfig(poll_hold=0.3))
    await service.start()
    try:
        async with get_session().create_client(
            "swf",
            region_name="us-east-1",
            endpoint_url=service.endpoint_url,
            config=client_config(),
        ) as swf:
            await swf.register_domain(name="d", workflowExecutionRetentionPeriodInDays="1")
            await swf.register_activity_type(
                domain="d",
                name="charge",
                version="1",
                defaultTaskList={"name": "tl"},
                defaultTaskHeartbeatTimeout="1",
            )
            service.schedule_activity_task("d", ("charge", "1"), activity_id="a1")
            task = await swf.poll_for_activity_task(domain="d", taskList={"name": "tl"})
            assert task["activityId"] == "a1"
            await service.stop()
            await service.start()

            def timed_out() -> bool:
                return service.swf_task_history("d")[0]["status"] == "TIMED_OUT"

            await eventually(timed_out, within=15)
    finally:
        await service.stop()
