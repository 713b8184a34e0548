"""Every option out of its limits fails at startup with a clear message and exit code 2, before
any network call.

Each case runs ``pipeworker.cli.main(argv)`` in-process against an app written to a temporary
directory whose endpoint is a counting HTTP server on 127.0.0.1. That server answers like a
service asking the runner to terminate, so a setting that slipped through would end the run
with exit 0 (and a counted request) instead of hanging the test.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeworker import cli

pytestmark = pytest.mark.timeout(30)

APP = """
from pipeworker import Task, Worker

worker = Worker(region="us-east-1", endpoint_url={endpoint!r}, heartbeat_interval=0.1)

@worker.activity({group!r})
async def handle(task: Task) -> None:
    pass
"""


class _Counting(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_POST(self) -> None:
        self.requests.append(self.headers.get("X-Amz-Target", "?"))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target", "")
        body = {"terminate": True} if target.endswith("Heartbeat") else {}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def counting_server() -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []
    handler = type("Handler", (_Counting,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


@pytest.fixture
def app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counting_server: tuple[str, list[str]]
) -> Iterator[tuple[Path, list[str]]]:
    endpoint, requests = counting_server
    for name in [n for n in __import__("os").environ if n.startswith("PIPEWORKER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    modules = set(sys.modules)
    requests.clear()
    (tmp_path / "good.py").write_text(APP.format(endpoint=endpoint, group="wg-config"))
    yield tmp_path, requests
    for name in set(sys.modules) - modules:
        if name in ("good", "badgroup"):
            del sys.modules[name]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        code = cli.main(argv)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return code, capsys.readouterr().err


def test_the_counting_server_sees_a_good_configuration(
    app: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    # The control: a good configuration reaches the network and ends with exit 0.
    path, requests = app
    code, err = _run([f"{path}/good.py:worker", "--shutdown-grace", "0"], capsys)
    assert code == 0, err
    assert requests


# (flag, bad value, what the message must say)
BAD_FLAGS = [
    ("--taskrunner-id", "", "taskrunner"),
    ("--taskrunner-id", "x" * 1025, "taskrunner"),
    ("--taskrunner-id", "bad\x01id", "taskrunner"),
    ("--hostname", "", "hostname"),
    ("--hostname", "h" * 1025, "hostname"),
    ("--concurrency", "0", "max_concurrency"),
    ("--concurrency", "-3", "max_concurrency"),
    ("--concurrency", "many", "whole number"),
    ("--progress-interval", "-1", "progress_interval"),
    ("--progress-interval", "0", "progress_interval"),
    ("--progress-interval", "nan", "progress_interval"),
    ("--progress-interval", "600", "lease"),  # longer than the 300 s lease
    ("--progress-interval", "soon", "number of seconds"),
    ("--heartbeat-interval", "-5", "heartbeat_interval"),
    ("--heartbeat-interval", "0", "heartbeat_interval"),
    ("--shutdown-grace", "-1", "shutdown_grace"),
    ("--shutdown-grace", "inf", "shutdown_grace"),
    ("--region", "", "region"),
    ("--region", "not a region!", "region"),
    ("--endpoint-url", "", "endpoint"),
    ("--endpoint-url", "localhost:8080", "endpoint"),
    ("--endpoint-url", "ftp://127.0.0.1/", "endpoint"),
    ("--log-level", "loud", "loud"),
    ("--log-format", "xml", "xml"),
]


@pytest.mark.parametrize(("flag", "value", "says"), BAD_FLAGS)
def test_a_bad_option_exits_2_before_any_request(
    app: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
    says: str,
) -> None:
    path, requests = app
    code, err = _run([f"{path}/good.py:worker", f"{flag}={value}"], capsys)
    assert code == 2, err
    assert "pipeworker: error:" in err
    assert says.lower() in err.lower(), err
    assert not requests, requests


# An empty variable means "not set", as with AWS's own variables; every other bad value counts.
@pytest.mark.parametrize(("flag", "value", "says"), [case for case in BAD_FLAGS if case[1]])
def test_a_bad_environment_variable_exits_2_before_any_request(
    app: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    value: str,
    says: str,
) -> None:
    path, requests = app
    env = "PIPEWORKER_" + flag.removeprefix("--").replace("-", "_").upper()
    monkeypatch.setenv(env, value)
    code, err = _run([f"{path}/good.py:worker"], capsys)
    assert code == 2, err
    assert env in err, err  # the message says where the bad value came from
    assert not requests, requests


@pytest.mark.parametrize(
    ("group", "says"),
    [
        ("w" * 1025, "1024"),
        ("", "must not be empty"),
        ("wg\x00null", "worker group"),
        ("wg-\ud800", "worker group"),
    ],
    ids=["too-long", "empty", "control-character", "lone-surrogate"],
)
def test_a_bad_worker_group_exits_2_before_any_request(
    app: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str], group: str, says: str
) -> None:
    path, requests = app
    endpoint = "http://127.0.0.1:9"  # never reached: the app fails while it is imported
    (path / "badgroup.py").write_text(APP.format(endpoint=endpoint, group=group))
    code, err = _run([f"{path}/badgroup.py:worker"], capsys)
    assert code == 2, err
    assert says in err, err
    assert not requests


@pytest.mark.parametrize(
    "argv",
    [
        ["--pipeline", "x.json"],
        ["--keep-running"],
        ["--local", "--endpoint-url", "http://127.0.0.1:1"],
        ["--no-such-option"],
        ["--concurrency"],
    ],
)
def test_bad_combinations_and_unknown_options_exit_2(
    app: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    path, requests = app
    code, err = _run([f"{path}/good.py:worker", *argv], capsys)
    assert code == 2, err
    assert "error:" in err
    assert not requests
