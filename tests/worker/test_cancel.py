"""A task the service takes back is cancelled in its handler, and nothing more is sent for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiobotocore.session import get_session

from pipeworker import Task, Worker
from pipeworker.local import LocalService
from tests.helpers import activities, calls, eventually, start_pipeline, statuses


async def test_cancel_through_setstatus_cancels_the_handler_and_sends_no_status(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(progress_interval=0.1)
    started = asyncio.Event()
    seen: dict[str, Any] = {}

    @worker.activity("wg-cancel")
    async def handle(task: Task) -> None:
        seen["instance"] = task.field("@instanceParent").id
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            seen["reason"] = exc.args[0] if exc.args else None
            seen["cancelled"] = task.cancelled
            raise

    pipeline_id = await start_pipeline(dp, activities("wg-cancel", "Long"))
    async with worker:
        await asyncio.wait_for(started.wait(), 5)
        await dp.set_status(
            pipelineId=pipeline_id, objectIds=[seen["instance"]], status="TRY_CANCEL"
        )
        await eventually(lambda: "reason" in seen)
    assert seen["reason"] == "canceled by the service"
    assert seen["cancelled"] is True
    assert calls(service, "SetTaskStatus") == 0
    assert (await statuses(dp, pipeline_id))["Long"] == "CANCELED"


async def test_lost_lease_cancels_the_handler_and_sends_nothing_more(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    started = asyncio.Event()
    reasons: list[str] = []
    ended: list[Any] = []

    class Recording(Worker):
        async def on_task_end(self, task: Task, outcome: Any) -> None:
            ended.append(outcome)

    worker = make_worker(Recording, progress_interval=0.1)

    @worker.activity("wg-lease")
    async def handle(task: Task) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            reasons.append(str(exc.args[0]))
            raise

    pipeline_id = await start_pipeline(dp, activities("wg-lease", "Doomed"))
    async with worker:
        await asyncio.wait_for(started.wait(), 5)
        await dp.delete_pipeline(pipelineId=pipeline_id)
        await eventually(lambda: bool(ended))
    assert reasons[0].startswith("lease lost")
    assert "PipelineDeletedException" in reasons[0]
    assert ended == [None]
    assert calls(service, "SetTaskStatus") == 0
    assert service.stats()["errors"].get("PipelineDeletedException") == 1  # one report, no more


# A sync handler learns of its cancellation through the task: tests/unit/test_leases.py.


async def test_a_pipelines_shorter_report_progress_timeout_is_kept(
    make_service: Callable[..., Any], make_worker: Callable[..., Worker]
) -> None:
    # The worker reports every 2 s, but the activity's lease is 1 s: the task must keep it.
    real_time = await make_service(time_scale=1.0)
    worker = make_worker(endpoint_url=real_time.endpoint_url, progress_interval=2.0)

    @worker.activity("wg-short-lease")
    async def handle(task: Task) -> None:
        await asyncio.sleep(1.5)

    client = get_session().create_client(
        "datapipeline", region_name="us-east-1", endpoint_url=real_time.endpoint_url
    )
    async with client as dp, worker:
        pipeline_id = await start_pipeline(
            dp, activities("wg-short-lease", "Held", reportProgressTimeout="1 seconds")
        )
        await eventually(lambda: _status_is(dp, pipeline_id, "Held", "FINISHED"))
    assert calls(real_time, "ReportTaskProgress") >= 4  # ack, then every ~1/3 s


async def _status_is(dp: Any, pipeline_id: str, name: str, status: str) -> bool:
    return (await statuses(dp, pipeline_id)).get(name) == status
