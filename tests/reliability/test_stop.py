"""A stop is bounded, whatever polls, handlers or the service do.

The local service keeps Data Pipeline's real 90 s poll hold in every test here: a stop that waited
for polls in flight would take 88 s. Workers run as the real CLI (``python -m pipeworker``) where
the test is about the process; the rest run in-process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from pipeworker.local import LocalConfig, LocalService
from tests.helpers import activities, attempts, calls, eventually, start_pipeline
from tests.reliability.conftest import report

pytestmark = pytest.mark.timeout(60)

PRODUCTION_HOLD = LocalConfig(time_scale=0.001)  # poll_hold: the default, 90 s

HEADER = """
import asyncio, time
from pipeworker import Task, Worker

worker = Worker(region="us-east-1", progress_interval=0.2, heartbeat_interval=1.0,
                max_concurrency=4)
"""

HANDLERS = {
    "idle": """
@worker.activity("wg-a")
async def a(task: Task) -> None: ...

@worker.activity("wg-b")
async def b(task: Task) -> None: ...
""",
    "swallows": """
@worker.activity("wg-a")
async def stubborn(task: Task) -> None:
    print("started", flush=True)
    while True:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            pass  # the mistake: cancellation swallowed
""",
    "sync-never-checks": """
@worker.activity("wg-a")
def oblivious(task: Task) -> None:
    print("started", flush=True)
    while True:
        time.sleep(0.05)  # never looks at task.cancelled
""",
    "sleeps": """
@worker.activity("wg-a")
async def sleeper(task: Task) -> None:
    print("started", flush=True)
    await asyncio.sleep(60)
""",
    "slow-startup": """
class Slow(Worker):
    async def on_startup(self) -> None:
        print("starting", flush=True)
        await asyncio.sleep(3)
        print("started up", flush=True)

worker = Slow(region="us-east-1", progress_interval=0.2, heartbeat_interval=1.0)

@worker.activity("wg-a")
async def a(task: Task) -> None: ...
""",
}


async def _spawn(tmp_path: Path, endpoint: str, kind: str, *flags: str) -> Any:
    (tmp_path / "app.py").write_text(HEADER + HANDLERS[kind])
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipeworker", f"{tmp_path / 'app.py'}:worker",
        "--endpoint-url", endpoint, *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip


async def _line(process: Any, prefix: bytes) -> None:
    async with asyncio.timeout(20):
        while True:
            line = await process.stdout.readline()
            assert line, (await process.stderr.read()).decode()
            if line.startswith(prefix):
                return


async def _exit(process: Any, within: float = 30) -> tuple[int, float, str]:
    began = time.monotonic()
    async with asyncio.timeout(within):
        _, stderr = await process.communicate()
    return process.returncode, time.monotonic() - began, stderr.decode()


def _client(endpoint: str) -> Any:
    return get_session().create_client(
        "datapipeline", region_name="us-east-1", endpoint_url=endpoint
    )


async def test_sigterm_on_an_idle_worker_exits_within_a_second(tmp_path: Path) -> None:
    async with LocalService(PRODUCTION_HOLD) as service:
        worker = await _spawn(tmp_path, service.endpoint_url, "idle")
        # Both groups' polls are in flight, each held for 90 s.
        await eventually(lambda: calls(service, "PollForTask") >= 2, within=20)
        worker.send_signal(signal.SIGTERM)
        code, took, stderr = await _exit(worker)
    assert code == 0, stderr
    assert took < 1.0, stderr
    report(f"stop: idle Data Pipeline worker (2 polls held 90 s) exited {took:.2f} s after SIGTERM")


@pytest.mark.parametrize("kind", ["swallows", "sync-never-checks"])
async def test_a_handler_that_ignores_cancellation_is_left_behind_and_the_process_exits_1(
    tmp_path: Path, kind: str
) -> None:
    async with LocalService(PRODUCTION_HOLD) as service, _client(service.endpoint_url) as dp:
        pipeline_id = await start_pipeline(dp, activities("wg-a", "Stubborn"))
        worker = await _spawn(
            tmp_path, service.endpoint_url, kind,
            "--shutdown-grace", "1", "--shutdown-hard-deadline", "1",
        )  # fmt: skip
        await _line(worker, b"started")
        worker.send_signal(signal.SIGTERM)
        code, took, stderr = await _exit(worker)
        (attempt,) = await attempts(dp, pipeline_id)
    assert code == 1, stderr
    # grace 1 s + hard deadline 1 s, plus the process's own start of the stop and exit.
    assert took < 5.0, stderr
    assert "left behind" in stderr
    assert ("stubborn" if kind == "swallows" else "thread") in stderr
    # This process is gone, so the task cannot run twice when the service retries it.
    if kind == "sync-never-checks":
        # The handler's task ended at the grace (a thread cannot be interrupted): handed back.
        assert attempt["@status"] == "FAILED"
        assert attempt["errorId"] == "RunnerShutdown"
    else:
        # No outcome ever came; no report keeps the lease any more: it lapses, then a retry.
        assert attempt["@status"] == "RUNNING"
    report(f"stop: {kind} handler left behind; exit 1 after {took:.2f} s (grace 1 + hard 1)")


async def test_a_second_signal_forces_the_stop(tmp_path: Path) -> None:
    async with LocalService(PRODUCTION_HOLD) as service, _client(service.endpoint_url) as dp:
        pipeline_id = await start_pipeline(dp, activities("wg-a", "Long"))
        worker = await _spawn(tmp_path, service.endpoint_url, "sleeps", "--shutdown-grace", "60")
        await _line(worker, b"started")
        worker.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        worker.send_signal(signal.SIGINT)
        code, took, stderr = await _exit(worker)
        (attempt,) = await attempts(dp, pipeline_id)
    assert took < 5.0, stderr  # not the 60 s grace
    assert code == 0, stderr
    assert "stopping now" in stderr
    assert attempt["@status"] == "RUNNING"  # forced: nothing sent; the lease runs out


async def test_sigterm_during_on_startup_is_honoured(tmp_path: Path) -> None:
    async with LocalService(PRODUCTION_HOLD) as service:
        worker = await _spawn(tmp_path, service.endpoint_url, "slow-startup")
        await _line(worker, b"starting")
        worker.send_signal(signal.SIGTERM)
        code, _, stderr = await _exit(worker)
        polls = calls(service, "PollForTask")
    assert code == 0, stderr
    assert polls == 0  # it stopped instead of starting to poll


# Final statuses bounded by the hard deadline, stop() from a hook, a stop before serve() and a
# refused second `async with`: tests/unit/test_stop_calls.py (core logic, on the in-memory fake).
