"""A handler's mistakes never crash the worker or lose a task, end to end: progress fields the
service refuses, a handler blocking the loop past the acknowledgement window, a 10 MB exception
message. Real HTTP to the local service; its time rules are shortened, since polling is not what
is under test.

The mistakes whose subject is the worker's own logic (async functions behind plain decorators,
``sys.exit()``, exception objects that cannot be printed, observers that raise, threads that never
look at ``task.cancelled``) are tested on the in-memory fake:
``tests/unit/test_handler_mistakes.py``
and ``tests/unit/test_outcomes.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiobotocore.session import get_session

from pipeworker import (
    ConfigurationError,
    Task,
    Worker,
)
from pipeworker.local import LocalConfig, LocalService
from tests.helpers import (
    activities,
    attempts,
    by_component,
    calls,
    eventually,
    start_pipeline,
)

pytestmark = pytest.mark.timeout(60)

RULES = LocalConfig(poll_hold=0.3, ack_timeout=5.0, time_scale=0.001)


@pytest.fixture
async def service() -> AsyncIterator[LocalService]:
    async with LocalService(RULES) as running:
        yield running


@pytest.fixture
async def dp(service: LocalService) -> AsyncIterator[Any]:
    async with get_session().create_client(
        "datapipeline", region_name="us-east-1", endpoint_url=service.endpoint_url
    ) as client:
        yield client


async def _run_until_done(worker: Worker, dp: Any, pipeline_id: str, count: int) -> dict[str, Any]:
    """Serve until *count* attempts of the pipeline ended; return them by component name."""
    async with worker:

        async def ended() -> bool:
            found = await attempts(dp, pipeline_id)
            return len(found) >= count and all(
                a["@status"] in ("FINISHED", "FAILED", "FALSE") for a in found
            )

        await eventually(ended, within=20)
    return by_component(await attempts(dp, pipeline_id))


# A handler raising any BaseException (async or sync) fails its task only:
# tests/unit/test_outcomes.py.


# Async handlers behind plain decorators, odd exception objects, a raising observer or hook,
# report_progress's size check and a cancelled sync handler keeping its slot:
# tests/unit/test_handler_mistakes.py (core logic, on the in-memory fake).


async def test_fields_the_service_refuses_are_dropped_and_the_lease_is_renewed_without_them(
    service: LocalService,
    dp: Any,
    make_worker: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Each report is within the limits, but together they break the attempt object's 50-field
    # limit: the service answers 400 and would again for ever. The lease must live on.
    worker = make_worker(endpoint_url=service.endpoint_url, progress_interval=0.1)
    reports = asyncio.Event()

    @worker.activity("wg-poison")
    async def handle(task: Task) -> None:
        await task.report_progress(**{f"first{n}": "x" for n in range(40)})
        await asyncio.sleep(0.3)
        await task.report_progress(**{f"second{n}": "y" for n in range(40)})
        before = calls(service, "ReportTaskProgress")
        await eventually(lambda: calls(service, "ReportTaskProgress") >= before + 4)
        reports.set()

    pipeline_id = await start_pipeline(
        dp, activities("wg-poison", "Chatty", reportProgressTimeout="10 Minutes")
    )
    with caplog.at_level(logging.ERROR, logger="pipeworker"):
        ended = await _run_until_done(worker, dp, pipeline_id, 1)
    assert reports.is_set()
    assert ended["Chatty"]["@status"] == "FINISHED"
    assert ended["Chatty"].get("first0") == "x"
    assert "second0" not in ended["Chatty"]
    refused = [r for r in caplog.records if "refused the progress fields" in r.getMessage()]
    assert len(refused) == 1
    assert "second0" in refused[0].getMessage()


async def test_the_acknowledgement_is_sent_before_the_handler_starts(
    make_worker: Callable[..., Worker],
) -> None:
    # A handler that blocks the loop at its start for longer than the acknowledgement window:
    # the acknowledgement must already have landed, or the task is handed out again.
    async with LocalService(LocalConfig(poll_hold=0.3, ack_timeout=1.0, time_scale=0.001)) as svc:
        worker = make_worker(endpoint_url=svc.endpoint_url)
        acked_first: list[bool] = []

        @worker.activity("wg-ack")
        async def blocking(task: Task) -> None:
            acked_first.append(calls(svc, "ReportTaskProgress") >= 1)
            time.sleep(1.5)  # noqa: ASYNC251 (the mistake under test: it blocks the loop)

        async with get_session().create_client(
            "datapipeline", region_name="us-east-1", endpoint_url=svc.endpoint_url
        ) as dp:
            pipeline_id = await start_pipeline(dp, activities("wg-ack", "Blocker"))
            ended = await _run_until_done(worker, dp, pipeline_id, 1)
            found = await attempts(dp, pipeline_id)
    assert acked_first == [True]
    assert len(found) == 1  # never handed out again
    assert ended["Blocker"]["@status"] == "FINISHED"


# A task handed out again while it runs is not run twice, and a lease near zero is reported at
# the floor, not in a spin: tests/unit/test_retries.py and tests/unit/test_leases.py (both were
# fakes at the transport seam already).


@pytest.mark.parametrize("setting", ["progress_interval", "heartbeat_interval"])
def test_intervals_below_the_floor_are_refused(setting: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"{setting} must be at least 0.05 seconds"):
        Worker(**{setting: 1e-6})  # type: ignore[arg-type]


async def test_a_huge_exception_message_gives_a_bounded_log_line(
    service: LocalService,
    dp: Any,
    make_worker: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = make_worker(endpoint_url=service.endpoint_url)

    @worker.activity("wg-huge")
    async def handle(task: Task) -> None:
        raise ValueError("x" * 10_000_000)

    pipeline_id = await start_pipeline(dp, activities("wg-huge", "Huge"))
    with caplog.at_level(logging.DEBUG, logger="pipeworker"):
        ended = await _run_until_done(worker, dp, pipeline_id, 1)
    assert ended["Huge"]["@status"] == "FAILED"
    assert ended["Huge"]["errorId"] == "ValueError"
    longest = max(len(caplog.handler.format(record)) for record in caplog.records)
    assert longest < 32_000
