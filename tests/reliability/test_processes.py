"""Real worker processes: SIGTERM drains or hands back, kill -9 loses nothing.

Each worker is ``python -m pipeworker app:worker --endpoint-url ...`` in its own process; the
local service runs in the test process on 127.0.0.1 with definitions scaled x0.001, so a
``reportProgressTimeout`` of 10 minutes is a 0.6 s lease and a ``retryDelay`` of 2 minutes 0.12 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from pipeworker.local import LocalConfig, LocalService
from tests.helpers import activities, eventually, instances, obj, start_pipeline
from tests.reliability.conftest import report
from tests.reliability.test_faults import attempt_statuses

pytestmark = pytest.mark.timeout(60)

APP = """
import asyncio
from pipeworker import Task, Worker

worker = Worker(region="us-east-1", progress_interval=0.2, heartbeat_interval=1.0,
                shutdown_grace={grace}, max_concurrency=4)

@worker.activity("wg-proc")
async def handle(task: Task) -> None:
    print("started", task.attempt_id, flush=True)
    await asyncio.sleep({seconds})
"""


async def _spawn(tmp_path: Path, endpoint: str, name: str, **app: Any) -> Any:
    (tmp_path / f"{name}.py").write_text(APP.format(**app))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipeworker", f"{tmp_path / name}.py:worker",
        "--endpoint-url", endpoint, "--log-level", "warning",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip


async def _started(process: Any, count: int) -> None:
    seen = 0
    async with asyncio.timeout(20):
        while seen < count:
            line = await process.stdout.readline()
            assert line, (await process.stderr.read()).decode()
            seen += line.startswith(b"started")


def _client(endpoint: str) -> Any:
    return get_session().create_client(
        "datapipeline", region_name="us-east-1", endpoint_url=endpoint,
        config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip


SCALED = LocalConfig(poll_hold=0.3, ack_timeout=2.0, time_scale=0.001)


async def test_sigterm_lets_running_tasks_finish_within_the_grace_and_exits_0(
    tmp_path: Path,
) -> None:
    async with LocalService(SCALED) as service, _client(service.endpoint_url) as dp:
        names = [f"T{n}" for n in range(4)]
        pipeline_id = await start_pipeline(dp, activities("wg-proc", *names))
        worker = await _spawn(tmp_path, service.endpoint_url, "drain", grace=10.0, seconds=1.0)
        await _started(worker, 4)
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await worker.wait()
        found = await instances(dp, pipeline_id)
    assert code == 0
    assert {name: f["@status"] for name, f in found.items()} == dict.fromkeys(names, "FINISHED")


async def test_sigterm_hands_back_tasks_longer_than_the_grace_as_failed_for_a_retry(
    tmp_path: Path,
) -> None:
    async with LocalService(SCALED) as service, _client(service.endpoint_url) as dp:
        names = [f"L{n}" for n in range(3)]
        pipeline_id = await start_pipeline(
            dp, activities("wg-proc", *names, retryDelay="2 Minutes")
        )
        worker = await _spawn(tmp_path, service.endpoint_url, "long", grace=0.5, seconds=60)
        await _started(worker, 3)
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await worker.wait()
        statuses = await attempt_statuses(dp, pipeline_id)
        described = await dp.describe_objects(pipelineId=pipeline_id, objectIds=list(statuses))
    assert code == 0
    assert "RUNNING" not in statuses.values()
    errors = {
        next(f.get("stringValue") for f in wire["fields"] if f["key"] == "errorId")
        for wire in described["pipelineObjects"]
    }
    assert errors == {"RunnerShutdown"}
    assert set(statuses.values()) == {"FAILED"}


async def test_kill_9_of_one_worker_loses_nothing_the_survivor_finishes_all(
    tmp_path: Path,
) -> None:
    async with LocalService(SCALED) as service, _client(service.endpoint_url) as dp:
        names = [f"K{n}" for n in range(8)]
        default = obj(
            "Default", scheduleType="ondemand", workerGroup="wg-proc", maximumRetries="3",
            retryDelay="2 Minutes", reportProgressTimeout="10 Minutes",
        )  # fmt: skip
        pipeline_id = await start_pipeline(dp, [default, *activities("wg-proc", *names)[1:]])
        victim = await _spawn(tmp_path, service.endpoint_url, "victim", grace=5.0, seconds=1.5)
        await _started(victim, 2)
        survivor = await _spawn(tmp_path, service.endpoint_url, "survivor", grace=5.0, seconds=1.5)
        victim.kill()  # SIGKILL: no status, no handing back; its leases must run out
        await victim.wait()

        async def all_finished() -> bool:
            found = await instances(dp, pipeline_id)
            return len(found) == 8 and all(f["@status"] == "FINISHED" for f in found.values())

        try:
            await eventually(all_finished, within=30)
        finally:
            survivor.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                code = await survivor.wait()
        statuses = await attempt_statuses(dp, pipeline_id)
    assert code == 0
    assert "RUNNING" not in statuses.values()
    reassigned = sum(1 for status in statuses.values() if status != "FINISHED")
    assert reassigned >= 1  # the killed worker's tasks were taken back and run again
    report(f"kill -9: 8 tasks FINISHED; {reassigned} attempt(s) of the killed worker reassigned")
