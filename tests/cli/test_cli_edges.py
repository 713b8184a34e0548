"""The command line's edges, through the real ``python -m pipeworker`` subprocess.

Bad input exits 2 with one clear line and no traceback; ``--local`` needs no AWS profile, ends at
once when there is nothing to run, and a second Ctrl-C forces its stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(90)

APP = """
import asyncio
from pipeworker import Task, Worker

worker = Worker(region="us-east-1")

@worker.activity("wg-edge")
async def handle(task: Task) -> None:
    print("handler started", flush=True)
    await asyncio.sleep({seconds})
"""

SYNC_APP = """
import time
from pipeworker import Task, Worker

worker = Worker(region="us-east-1")

@worker.activity("wg-edge")
def handle(task: Task) -> None:
    print("handler started", flush=True)
    time.sleep(3600)  # never checks task.cancelled
"""

ONE_ACTIVITY = """
{"objects": [
  {"id": "Default", "scheduleType": "ondemand", "workerGroup": "wg-edge"},
  {"id": "Work", "type": "ShellCommandActivity", "command": "run"}
]}
"""


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "PIPEWORKER_"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([os.getcwd(), str(tmp_path)]),
        AWS_ACCESS_KEY_ID="AKIAFAKE",
        AWS_SECRET_ACCESS_KEY="fake",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "edge_app.py").write_text(APP.format(seconds=0))
    (tmp_path / "slow_app.py").write_text(APP.format(seconds=3600))
    (tmp_path / "stuck_app.py").write_text(SYNC_APP)
    (tmp_path / "one.json").write_text(ONE_ACTIVITY)
    return tmp_path


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeworker", *args],
        cwd=tmp_path,
        env=environment(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_usage_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("pipeworker: error")]
    assert len(errors) == 1, result.stderr
    assert len(errors[0]) < 400, errors[0]
    for needle in needles:
        assert needle in errors[0]


def test_an_endpoint_url_urllib_cannot_parse_exits_2(app: Path) -> None:
    result = run(app, "edge_app:worker", "--endpoint-url", "http://[::1")
    assert_usage_error(result, "--endpoint-url", "'http://[::1'", "not a valid URL")


def test_an_endpoint_url_from_the_environment_exits_2_naming_the_variable(app: Path) -> None:
    result = run(app, "edge_app:worker", PIPEWORKER_ENDPOINT_URL="http://127.0.0.1:99999")
    assert_usage_error(result, "PIPEWORKER_ENDPOINT_URL", "not a valid URL")


@pytest.mark.parametrize("digits", [4300, 4301])
def test_a_definition_with_a_huge_number_exits_2_with_a_short_message(
    app: Path, digits: int
) -> None:
    number = "9" * digits
    (app / "huge.json").write_text(
        '{"objects": [{"id": "Default", "scheduleType": "ondemand", "workerGroup": "wg-edge", '
        f'"retryDelay": {number}}}]}}'
    )
    result = run(app, "edge_app:worker", "--local", "--pipeline", "huge.json")
    assert_usage_error(result, "huge.json", "quotes")


def test_a_nonexistent_aws_profile_exits_2_naming_it(app: Path) -> None:
    # Port 9 (discard) on loopback: nothing is sent anyway, the profile is refused first.
    result = run(
        app, "edge_app:worker", "--endpoint-url", "http://127.0.0.1:9", AWS_PROFILE="nonexistent"
    )
    assert_usage_error(result, "'nonexistent'", "AWS_PROFILE")


def test_local_needs_no_profile(app: Path) -> None:
    result = run(
        app, "edge_app:worker", "--local", "--pipeline", "one.json", AWS_PROFILE="nonexistent"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pipeline finished" in result.stdout
    assert "Traceback" not in result.stderr
    assert "AWS_PROFILE='nonexistent'" in result.stderr


def test_local_with_no_activity_ends_at_once_with_a_message(app: Path) -> None:
    (app / "empty.json").write_text(
        '{"objects": [{"id": "Default", "scheduleType": "ondemand", "workerGroup": "wg-edge"}]}'
    )
    started = time.monotonic()
    result = run(app, "edge_app:worker", "--local", "--pipeline", "empty.json")
    assert_usage_error(result, "empty.json", "no activity")
    assert time.monotonic() - started < 30  # it used to run until killed


@pytest.mark.parametrize("app_name", ["slow_app", "stuck_app"], ids=["async", "sync-thread"])
def test_local_second_interrupt_forces_the_stop(app: Path, app_name: str) -> None:
    # The production grace (30 s) is kept: only the second interrupt can end the run early,
    # also when a sync handler's thread will never end.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeworker",
            f"{app_name}:worker",
            "--local",
            "--pipeline",
            "one.json",
        ],
        cwd=app,
        env=environment(app),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []

        def wait_for(needle: str) -> None:
            while True:
                line = process.stdout.readline()  # type: ignore[union-attr]
                assert line, "".join(lines) + process.stderr.read()  # type: ignore[union-attr]
                lines.append(line)
                if needle in line:
                    return

        wait_for("handler started")
        process.send_signal(signal.SIGINT)
        wait_for("interrupt again to force")
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=25)
        elapsed = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert elapsed < 20, f"the second interrupt did not force the stop ({elapsed:.1f}s)"
    assert "running tasks are abandoned" in out
    assert process.returncode == 1  # the pipeline did not finish
    assert "Traceback" not in err
