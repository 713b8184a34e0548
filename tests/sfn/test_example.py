"""examples/sfn_worker.py runs as its docstring says, the CLI checks it, and a real worker process
stopped by SIGTERM hands its running task back to the state machine's Retry within the grace."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from pipeworker.cli import main
from pipeworker.local import LocalConfig, LocalService

from .conftest import Sfn

EXAMPLE_ARN = "arn:aws:states:us-east-1:123456789012:activity:resize"
DEFINITION = json.loads(Path("examples/sfn_worker.asl.json").read_text())


async def test_the_example_runs_against_the_local_service() -> None:
    from examples.sfn_worker import demo

    assert await demo() == [
        {
            "status": "SUCCEEDED",
            "output": {"image": "cat.png", "resized": {"image": "cat.png", "width": 640}},
        },
        {
            "status": "SUCCEEDED",
            "output": {
                "image": "anim.gif",
                "error": {"Error": "UnsupportedFormat", "Cause": "gifs are not resized"},
                "outcome": "skipped",
            },
        },
        {
            "status": "SUCCEEDED",
            "output": {"image": "dog.jpg", "resized": {"image": "dog.jpg", "width": 640}},
        },
    ]


def test_the_cli_checks_the_example_naming_its_activity_arn(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["examples.sfn_worker:worker", "--check"]) == 0
    out = capsys.readouterr().out
    assert "service: stepfunctions" in out
    assert f"activity ARNs: {EXAMPLE_ARN}" in out


@pytest.mark.parametrize(
    "hold",
    [
        pytest.param(1.0, id="1s-hold"),
        pytest.param(60.0, id="real-60s-hold"),
    ],
)
async def test_sigterm_with_a_task_running_exits_within_the_grace_and_retry_hands_it_on(
    hold: float,
) -> None:
    # The Retry waits IntervalSeconds (5 s, x0.01 here) before offering the task again.
    grace = 1.0
    async with LocalService(LocalConfig(poll_hold=hold, time_scale=0.01)) as service:
        sfn = Sfn(service)
        await sfn.activity("resize")
        state_machine = await sfn.machine("resize", DEFINITION)
        execution = await sfn.start(state_machine, {"image": "big.png", "seconds": 3600})
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipeworker", "examples.sfn_worker:worker",
            "--endpoint-url", service.endpoint_url, "--region", "us-east-1",
            "--shutdown-grace", str(grace), "--progress-interval", "0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )  # fmt: skip
        try:
            records = service.sfn.executions[execution].events

            def started() -> bool:
                return any(e["type"] == "ActivityStarted" for e in records)

            async with asyncio.timeout(20):
                while not started():  # noqa: ASYNC110 (the service's own record, in this process)
                    await asyncio.sleep(0.02)
            signalled = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            # The grace, then the final status and the process's exit.
            async with asyncio.timeout(grace + 3.0):
                code = await worker.wait()
            took = time.monotonic() - signalled
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        failed = [e["activityFailedEventDetails"] for e in records if e["type"] == "ActivityFailed"]
        scheduled = sum(1 for e in records if e["type"] == "ActivityScheduled")
        await sfn.stop_execution(executionArn=execution)

    assert code == 0, (await worker.stderr.read()).decode()[-2000:]
    assert took < grace + 3.0
    assert [f["error"] for f in failed] == ["RunnerShutdown"]
    assert scheduled == 2  # the Retry on RunnerShutdown offered it to the next worker
