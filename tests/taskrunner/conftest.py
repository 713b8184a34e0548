"""Fixtures for the task runner's tests: moto's S3, the local Data Pipeline service, and the
runner started through its real command line as a subprocess.

moto's threaded server and the local service run in this process's threads; the runner is a
child process that reaches both over 127.0.0.1, as it would reach AWS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from pipeworker.local import LocalConfig
from pipeworker.testing import LocalEndpoint, serve_in_thread
from tests.helpers import fake_aws_environment

LOCAL = LocalConfig(poll_hold=0.5, ack_timeout=5.0, time_scale=0.001)
"""The local service's rules: a short poll hold (so a stopping runner waits little), fast
definitions' durations."""


@pytest.fixture
def s3(moto_url: str) -> Iterator[Any]:
    """A boto3 S3 client for moto, state reset, with the buckets ``data`` and ``logs``."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    client = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    for bucket in ("data-bucket", "logs-bucket"):
        client.create_bucket(Bucket=bucket)
    yield client
    client.close()


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalEndpoint]:
    """The local Data Pipeline service in a thread, with a boto3 client (``local.client``)."""
    fake_aws_environment(monkeypatch)
    with serve_in_thread(LOCAL) as endpoint:
        yield endpoint


def runner_env(moto_url: str, **extra: str) -> dict[str, str]:
    """The runner's environment: fake credentials, S3 at moto, nothing from this machine."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_")
        and key.lower() not in ("https_proxy", "http_proxy", "no_proxy")
    }
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL_S3=moto_url,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class RunnerProcess:
    """A ``python -m pipeworker.taskrunner`` child; its stderr goes to :attr:`log`."""

    process: subprocess.Popen[bytes]
    log: Path
    output: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        """Everything the runner wrote to stderr so far."""
        return self.log.read_text(errors="replace")

    def terminate(self, within: float = 20.0) -> int:
        """SIGTERM, then wait for the exit; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(within)

    def wait(self, within: float = 30.0) -> int:
        try:
            return self.process.wait(within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the runner did not exit in {within}s:\n{self.text()}") from None


@dataclass
class Launcher:
    """``start(*args)``: a runner child process with *args* after the module name."""

    moto_url: str
    tmp_path: Path
    started: list[RunnerProcess] = field(default_factory=list)

    def start(self, *args: str, env: dict[str, str] | None = None) -> RunnerProcess:
        number = len(self.started) + 1
        output = self.tmp_path / f"output{number}"
        log = self.tmp_path / f"runner{number}.log"
        argv = [sys.executable, "-m", "pipeworker.taskrunner", *args]
        if not any(arg.startswith("--output") for arg in args):
            argv += ["--output", str(output)]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                argv, env=env or runner_env(self.moto_url), stdout=sink, stderr=subprocess.STDOUT
            )
        runner = RunnerProcess(process, log, output)
        self.started.append(runner)
        return runner

    def run(
        self, *args: str, env: dict[str, str] | None = None, within: float = 30.0
    ) -> tuple[int, str]:
        """Run to the end; return the exit code and the output."""
        runner = self.start(*args, env=env)
        code = runner.wait(within)
        return code, runner.text()


@pytest.fixture
def launcher(moto_url: str, tmp_path: Path) -> Iterator[Launcher]:
    """Starts runners; any still running at the end of the test is killed."""
    made = Launcher(moto_url, tmp_path)
    yield made
    for runner in made.started:
        if runner.process.poll() is None:
            runner.process.kill()
            runner.process.wait()


# -- pipelines on the local service, through its boto3 client ------------------------------------


def wire(object_id: str, **fields: Any) -> dict[str, Any]:
    """A wire pipeline object; ``{"ref": id}`` values are references, lists give several."""
    values = []
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                values.append({"key": key, "refValue": item["ref"]})
            else:
                values.append({"key": key, "stringValue": item})
    return {"id": object_id, "name": object_id, "fields": values}


def start_pipeline(client: Any, objects: list[dict[str, Any]]) -> str:
    """Create, define and activate a pipeline; return its id."""
    pipeline_id: str = client.create_pipeline(name="p", uniqueId=f"u-{time.monotonic_ns()}")[
        "pipelineId"
    ]
    answer = client.put_pipeline_definition(pipelineId=pipeline_id, pipelineObjects=objects)
    assert not answer["errored"], answer
    client.activate_pipeline(pipelineId=pipeline_id)
    return pipeline_id


def described(client: Any, pipeline_id: str, sphere: str) -> list[dict[str, Any]]:
    """Every object of *sphere* (INSTANCE, ATTEMPT), as ``{"@id": id, key: value...}``."""
    ids = client.query_objects(pipelineId=pipeline_id, sphere=sphere)["ids"]
    result = []
    for start in range(0, len(ids), 25):
        page = client.describe_objects(pipelineId=pipeline_id, objectIds=ids[start : start + 25])
        for obj in page["pipelineObjects"]:
            fields: dict[str, Any] = {"@id": obj["id"]}
            for item in obj["fields"]:
                fields[item["key"]] = item.get("stringValue", item.get("refValue"))
            result.append(fields)
    return result


def statuses(client: Any, pipeline_id: str) -> dict[str, str]:
    """Each instance's status, by component id."""
    return {
        fields["@componentParent"]: fields.get("@status", "?")
        for fields in described(client, pipeline_id, "INSTANCE")
    }


TERMINAL = {"FINISHED", "FAILED", "CANCELED", "CASCADE_FAILED", "TIMEDOUT"}


def wait_until(check: Callable[[], Any], within: float = 30.0, what: str = "") -> Any:
    """Poll *check* every 50 ms until it returns something truthy; fail after *within* s."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def wait_done(
    client: Any, pipeline_id: str, components: list[str], runner: RunnerProcess | None = None
) -> dict[str, str]:
    """Wait until each of *components* has a terminal status; return every status."""

    def done() -> dict[str, str] | None:
        if runner is not None and runner.process.poll() is not None:
            raise AssertionError(f"the runner exited early:\n{runner.text()}")
        current = statuses(client, pipeline_id)
        return current if all(current.get(c) in TERMINAL for c in components) else None

    result: dict[str, str] = wait_until(done, what=f"{components} to end")
    return result
