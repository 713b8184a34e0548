"""A lone surrogate ("\\ud800", as a bad decode or a sliced emoji leaves it) in a result, reason
or details still lands, on both transports, as botocore sends it (JSON-escaped); Data Pipeline,
whose model refuses lone surrogates, gets U+FFFD in their place on both.

The lean transport used to encode its JSON with ``ensure_ascii=False``, so such a string raised
UnicodeEncodeError and the status was never sent: the task stayed STARTED until its timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pipeworker import DataPipeline, TaskFailed, Worker
from pipeworker.local import LocalService
from pipeworker.services.swf import ActivityTask
from tests.helpers import activities, attempts, client_config, start_pipeline

from .conftest import DOMAIN, TASK_LIST, eventually, settled, task_of

LONE = "\ud800"
Register = Callable[..., Awaitable[None]]
MakeWorker = Callable[..., Worker]


async def test_swf_result_reason_and_details_with_a_lone_surrogate_land(
    service: LocalService, register: Register, make_worker: MakeWorker
) -> None:
    await register("charge")
    worker = make_worker()

    @worker.activity(TASK_LIST, type="charge")
    async def charge(task: ActivityTask) -> Any:
        if task.input == "ok":
            return f"half an emoji: {LONE}"
        raise TaskFailed(f"Bad{LONE}", f"message {LONE}")

    async with worker:
        service.schedule_activity_task(DOMAIN, ("charge", "1"), input="ok", activity_id="s1")
        service.schedule_activity_task(DOMAIN, ("charge", "1"), input="no", activity_id="s2")
        await eventually(settled(service, "s1", "s2"))

    done = task_of(service, "s1")
    assert done["status"] == "COMPLETED"
    assert done["result"] == f"half an emoji: {LONE}"
    failed = task_of(service, "s2")
    assert failed["status"] == "FAILED"
    assert LONE in failed["reason"]
    assert LONE in failed["details"]


async def test_data_pipeline_error_message_with_a_lone_surrogate_lands(
    service: LocalService, transport: str
) -> None:
    from aiobotocore.session import get_session

    worker = Worker(
        service=DataPipeline(transport=transport),  # type: ignore[arg-type]
        endpoint_url=service.endpoint_url,
        region="us-east-1",
        progress_interval=0.2,
        shutdown_grace=1.0,
    )

    @worker.activity("wg-surrogate")
    async def fail(task: Any) -> None:
        raise TaskFailed("Broken", f"cannot decode {LONE} here")

    async with get_session().create_client(
        "datapipeline",
        region_name="us-east-1",
        endpoint_url=service.endpoint_url,
        config=client_config(),
    ) as dp:
        pipeline_id = await start_pipeline(dp, activities("wg-surrogate", "Work"))
        async with worker:

            async def failed() -> bool:
                return any(a.get("@status") == "FAILED" for a in await attempts(dp, pipeline_id))

            await eventually(failed, within=15)
        (attempt,) = [a for a in await attempts(dp, pipeline_id) if a["@status"] == "FAILED"]
    # Data Pipeline's model allows no lone surrogate: both transports send U+FFFD in its place.
    assert attempt["errorId"] == "Broken"
    assert attempt["errorMessage"] == "cannot decode \ufffd here"
