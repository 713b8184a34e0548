"""``worker.run()`` in a real process: SIGTERM stops it gracefully, a second SIGINT forces it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pipeworker.local import LocalService
from tests.helpers import activities, attempts, calls, start_pipeline

SCRIPT = textwrap.dedent(
    """
    import asyncio, os
    from pipeworker import Task, Worker

    worker = Worker(
        endpoint_url=os.environ["ENDPOINT"], region="us-east-1",
        progress_interval=0.2, heartbeat_interval=0.2, shutdown_grace=5,
    )

    @worker.activity("wg-signals")
    async def handle(task: Task) -> None:
        print("started", flush=True)
        await asyncio.sleep(float(os.environ["WORK_SECONDS"]))

    worker.run()
    print("stopped", flush=True)
    """
)


async def start_runner(tmp_path: Path, service: LocalService, work: float) -> Any:
    script = tmp_path / "runner.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "ENDPOINT": service.endpoint_url,
        "WORK_SECONDS": str(work),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 20)
    assert line == b"started\n"
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_run_gracefully_and_the_running_task_finishes(
    tmp_path: Path, service: LocalService, dp: Any, signum: signal.Signals
) -> None:
    pipeline_id = await start_pipeline(dp, activities("wg-signals", "Job"))
    process = await start_runner(tmp_path, service, work=0.5)
    process.send_signal(signum)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err
    assert out == b"stopped\n"
    assert b"Traceback" not in err
    (attempt,) = await attempts(dp, pipeline_id)
    assert attempt["@status"] == "FINISHED"


async def test_a_second_interrupt_forces_the_stop_without_reporting(
    tmp_path: Path, service: LocalService, dp: Any
) -> None:
    await start_pipeline(dp, activities("wg-signals", "Endless"))
    process = await start_runner(tmp_path, service, work=60)
    process.send_signal(signal.SIGINT)
    await asyncio.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, err
    assert b"Traceback" not in err
    assert b"never retrieved" not in err
    # Forced: the task is left to its lease, which the service reassigns.
    assert calls(service, "SetTaskStatus") == 0
