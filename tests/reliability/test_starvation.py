"""Starvation: an async handler that blocks the event loop is named in the logs; others recover.

The worker's loop monitor (``pipeworker._loopmonitor``) ticks on the loop and watches it from a
thread; a stall longer than ``loop_stall_threshold`` is logged once, naming the activity whose
code is on the loop's stack, and again when the loop is free.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

import pytest

from pipeworker import Task, Worker
from pipeworker._events import Observer
from pipeworker.local import LocalService
from tests.helpers import activities, eventually, start_pipeline, statuses


class Reports(Observer):
    """When each task's progress reports landed (time.monotonic()), by attempt id."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def progress_reported(self, task: Task, canceled: bool) -> None:
        self.times.setdefault(task.attempt_id.split("_")[0], []).append(time.monotonic())


def make_worker(service: LocalService, reports: Reports) -> Worker:
    return Worker(
        endpoint_url=service.endpoint_url,
        region="us-east-1",
        progress_interval=0.1,
        heartbeat_interval=5,
        max_concurrency=4,
        loop_stall_threshold=0.3,
        observer=reports,
    )


def stall_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pipeworker.loop"]


async def test_a_blocking_async_handler_is_named_and_others_resume(
    service: LocalService, dp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reports = Reports()
    worker = make_worker(service, reports)
    other_running = asyncio.Event()
    unblocked_at: list[float] = []

    @worker.activity("wg-starve", type="ShellCommandActivity")
    async def hog(task: Task) -> None:
        if task.attempt_id.startswith("@Other"):
            other_running.set()
            await asyncio.sleep(2.0)
            return
        await other_running.wait()
        await asyncio.sleep(0.3)  # a few of the other task's reports land first
        time.sleep(1.2)  # noqa: ASYNC251 (the bug under test: blocks the event loop)
        unblocked_at.append(time.monotonic())

    caplog.set_level(logging.INFO)
    pipeline_id = await start_pipeline(dp, activities("wg-starve", "Hog", "Other"))
    async with worker:

        async def done() -> bool:
            return set((await statuses(dp, pipeline_id)).values()) == {"FINISHED"}

        await eventually(done, within=15)

    blocked, free = stall_lines(caplog)
    assert blocked.levelno == logging.WARNING
    assert blocked.getMessage().startswith("event loop blocked for ")
    assert f"by activity {hog.__qualname__}" in blocked.getMessage()
    assert blocked.attempt_id.startswith("@Hog")  # type: ignore[attr-defined]
    assert blocked.worker_group == "wg-starve"  # type: ignore[attr-defined]
    assert blocked.task_id
    assert blocked.pipeline_id == pipeline_id
    assert free.getMessage().startswith("event loop free again after 1.")
    assert f"by activity {hog.__qualname__}" in free.getMessage()

    # The other task's reports paused during the stall and resumed as soon as the loop was free.
    other = reports.times["@Other"]
    after = [t for t in other if t >= unblocked_at[0]]
    before = [t for t in other if t < unblocked_at[0]]
    assert before, "the other task reported before the stall"
    assert after[0] - unblocked_at[0] < 0.25
    assert after[0] - before[-1] > 1.0  # nothing was sent while the loop was blocked


async def test_a_sync_handler_never_blocks_the_loop(
    service: LocalService, dp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reports = Reports()
    worker = make_worker(service, reports)

    @worker.activity("wg-starve", type="ShellCommandActivity")
    def crunch(task: Task) -> None:
        time.sleep(1.2)  # in its own thread: the loop keeps running

    caplog.set_level(logging.INFO)
    pipeline_id = await start_pipeline(dp, activities("wg-starve", "Crunch", "Crunch2"))
    async with worker:

        async def done() -> bool:
            return set((await statuses(dp, pipeline_id)).values()) == {"FINISHED"}

        await eventually(done, within=15)

    assert stall_lines(caplog) == []
    for name in ("@Crunch", "@Crunch2"):
        times = reports.times[name]
        assert len(times) >= 6  # the acknowledgement, then a report every ~0.1 s
        assert max(b - a for a, b in itertools.pairwise(times)) < 0.5
