"""A kept state (``LocalConfig(state_path=...)``, ``--state FILE``) survives restarts.

In-process restarts (stop, start on the same file) and real ones: the service as a subprocess,
stopped with SIGTERM or killed with SIGKILL right after an answered call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeworker.local import LocalConfig, LocalService
from tests.helpers import client_config, statuses
from tests.local.helpers import chain_definition

REPO = Path(__file__).resolve().parents[2]


async def _start(dp: Any) -> str:
    created = await dp.create_pipeline(name="kept", uniqueId="kept")
    pipeline_id: str = created["pipelineId"]
    await dp.put_pipeline_definition(pipelineId=pipeline_id, pipelineObjects=chain_definition())
    await dp.activate_pipeline(pipelineId=pipeline_id)
    return pipeline_id


async def test_finished_stays_finished_and_leases_continue(
    tmp_path: Path, make_client: Any
) -> None:
    path = str(tmp_path / "state.db")
    config = LocalConfig(poll_hold=0.3, ack_timeout=5.0, time_scale=0.001, state_path=path)
    first = LocalService(config)
    await first.start()
    dp = await make_client(first)
    pipeline_id = await _start(dp)
    task = (await dp.poll_for_task(workerGroup="wg-1", hostname="h"))["taskObject"]
    await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    leased = (await dp.poll_for_task(workerGroup="wg-1", hostname="h"))["taskObject"]
    await dp.report_task_progress(taskId=leased["taskId"])
    await first.stop()

    second = LocalService(config)
    await second.start()
    try:
        dp = await make_client(second)
        assert await statuses(dp, pipeline_id) == {
            "Extract": "FINISHED",
            "Transform": "RUNNING",
            "Load": "WAITING_ON_DEPENDENCIES",
        }
        # The runner holding Transform goes on under its lease, with the same taskId.
        answer = await dp.report_task_progress(taskId=leased["taskId"])
        assert answer["canceled"] is False
        await dp.set_task_status(taskId=leased["taskId"], taskStatus="FINISHED")
        last = (await dp.poll_for_task(workerGroup="wg-1", hostname="h"))["taskObject"]
        assert last["attemptId"].startswith("@Load_")
        # A retried SetTaskStatus of a task finished before the restart still succeeds.
        await dp.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
        await dp.set_task_status(taskId=last["taskId"], taskStatus="FINISHED")
        described = await dp.describe_pipelines(pipelineIds=[pipeline_id])
        fields = {
            f["key"]: f.get("stringValue")
            for f in described["pipelineDescriptionList"][0]["fields"]
        }
        assert fields["@pipelineState"] == "FINISHED"
    finally:
        await second.stop()


async def test_waiting_work_is_offered_again_after_a_restart(
    tmp_path: Path, make_client: Any
) -> None:
    config = LocalConfig(poll_hold=0.3, time_scale=0.001, state_path=str(tmp_path / "s.db"))
    first = LocalService(config)
    await first.start()
    pipeline_id = await _start(await make_client(first))
    await first.stop()
    second = LocalService(config)
    await second.start()
    try:
        dp = await make_client(second)
        task = (await dp.poll_for_task(workerGroup="wg-1", hostname="h"))["taskObject"]
        assert task["pipelineId"] == pipeline_id
        assert task["attemptId"].startswith("@Extract_")
    finally:
        await second.stop()


# --- a real process, stopped or killed ------------------------------------------------------------


class _Process:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> Any:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "pipeworker.local", "--port", "0", "--poll-hold", "0.3"),
                *("--state", str(self.state)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on" in line, line + (self.proc.stderr.read() if self.proc.stderr else "")
        self.url = line.split()[-1]
        return boto3.client(
            "datapipeline", region_name="us-east-1", endpoint_url=self.url, config=client_config()
        )

    def stop(self, how: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(how)
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def process(tmp_path: Path) -> Iterator[_Process]:
    running = _Process(tmp_path / "state.db")
    yield running
    if running.proc is not None and running.proc.poll() is None:
        running.proc.kill()
        running.proc.wait()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_nothing_answered_is_lost_when_the_process_dies(process: _Process, how: int) -> None:
    dp = process.start()
    pipeline_id = dp.create_pipeline(name="kept", uniqueId="kept")["pipelineId"]
    dp.put_pipeline_definition(pipelineId=pipeline_id, pipelineObjects=chain_definition())
    dp.activate_pipeline(pipelineId=pipeline_id)
    first = dp.poll_for_task(workerGroup="wg-1", hostname="h")["taskObject"]
    dp.set_task_status(taskId=first["taskId"], taskStatus="FINISHED")
    leased = dp.poll_for_task(workerGroup="wg-1", hostname="h")["taskObject"]
    dp.report_task_progress(taskId=leased["taskId"])
    dp.close()
    process.stop(how)

    dp = process.start()
    try:
        ids = dp.query_objects(pipelineId=pipeline_id, sphere="INSTANCE")["ids"]
        described = dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
        found = {
            o["name"]: {f["key"]: f.get("stringValue") for f in o["fields"]}["@status"]
            for o in described["pipelineObjects"]
        }
        assert found == {
            "Extract": "FINISHED",
            "Transform": "RUNNING",
            "Load": "WAITING_ON_DEPENDENCIES",
        }
        assert dp.report_task_progress(taskId=leased["taskId"])["canceled"] is False
        dp.set_task_status(taskId=leased["taskId"], taskStatus="FINISHED")
        last = dp.poll_for_task(workerGroup="wg-1", hostname="h")["taskObject"]
        assert last["attemptId"].startswith("@Load_")
    finally:
        dp.close()
        process.stop(signal.SIGTERM)


def test_a_file_that_is_not_a_state_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_text("hello, I am not SQLite " * 100)
    result = subprocess.run(
        [sys.executable, "-m", "pipeworker.local", "--port", "0", "--state", str(bad)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "not a usable state file" in result.stderr
    assert "Traceback" not in result.stderr
