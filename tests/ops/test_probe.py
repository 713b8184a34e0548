"""``--check --http-port N``: a probe of a running worker's /healthz, for Kubernetes exec probes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import Task, Worker
from pipeworker.cli import main


@pytest.fixture(autouse=True)
def _no_pipeworker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PIPEWORKER_"):
            monkeypatch.delenv(name)


async def running_port(worker: Worker) -> int:
    assert worker.http_url is not None
    return int(worker.http_url.rsplit(":", 1)[1])


def new_worker(make_worker: Callable[..., Worker], **settings: Any) -> Worker:
    worker = make_worker(http_port=0, **settings)

    @worker.activity("wg-ops")
    async def noop(task: Task) -> None:
        pass

    return worker


async def test_check_probes_a_healthy_worker_without_loading_the_app(
    make_worker: Callable[..., Worker], capsys: pytest.CaptureFixture[str]
) -> None:
    worker = new_worker(make_worker)
    async with worker:
        port = await running_port(worker)
        # The app does not exist: it is never imported for a probe.
        argv = ["no_such_module:worker", "--check", "--http-port", str(port)]
        code = await asyncio.to_thread(main, argv)
    assert code == 0
    assert capsys.readouterr().out.strip() == '{"status": "ok"}'


async def test_check_fails_while_the_loop_is_blocked(
    make_worker: Callable[..., Worker],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = new_worker(make_worker, loop_stall_threshold=0.1, health_max_loop_lag=0.2)
    async with worker:
        monkeypatch.setenv("PIPEWORKER_HTTP_PORT", str(await running_port(worker)))

        def probe_later() -> int:
            time.sleep(0.6)
            return main(["app:worker", "--check"])

        probe = asyncio.get_running_loop().run_in_executor(None, probe_later)
        time.sleep(1.5)  # noqa: ASYNC251 (blocks the worker's loop, which is this test's)
        code = await probe
    assert code == 1
    out = capsys.readouterr().out
    assert '"status": "unhealthy"' in out
    assert "event loop blocked for" in out


def test_check_fails_when_nothing_answers(
    capsys: pytest.CaptureFixture[str], unused_tcp_port: int
) -> None:
    code = main(["app:worker", "--check", "--http-port", str(unused_tcp_port)])
    assert code == 1
    assert f"no answer from http://127.0.0.1:{unused_tcp_port}/healthz" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_a_bad_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["app:worker", "--check", "--http-port", port]) == 2
    assert "--http-port:" in capsys.readouterr().err


async def test_the_probe_as_a_subprocess_loads_no_aws_client(
    make_worker: Callable[..., Worker],
) -> None:
    worker = new_worker(make_worker)
    code = (
        "import sys; from pipeworker.cli import main; rc = main(sys.argv[1:]); "
        "print('aiobotocore' in sys.modules, 'botocore' in sys.modules); sys.exit(rc)"
    )
    async with worker:
        port = await running_port(worker)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            "app:worker",
            "--check",
            "--http-port",
            str(port),
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert out.decode().splitlines() == ['{"status": "ok"}', "False False"]
