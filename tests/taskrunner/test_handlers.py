"""The handlers on their own, through ``pipeworker.testing`` (the worker's own per-task path)
against moto's S3: the preconditions' FINISHED/FALSE, and the activity's refusals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pipeworker import Ref, Task
from pipeworker.taskrunner._activity import shell_command_activity
from pipeworker.taskrunner._preconditions import PRECONDITIONS
from pipeworker.taskrunner._s3 import open_s3
from pipeworker.taskrunner._shell import RunnerContext
from pipeworker.testing import TaskHarness
from tests.helpers import fake_aws_environment


@pytest.fixture
async def context(
    moto_url: str, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunnerContext]:
    fake_aws_environment(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    async with open_s3("us-east-1") as transfers:
        yield RunnerContext(
            output=tmp_path / "output", formatter=logging.Formatter(), transfers=transfers
        )


async def run(context: RunnerContext, kind: str, **harness: Any) -> Any:
    handler = PRECONDITIONS.get(kind, shell_command_activity)

    async def handle(task: Task) -> None:
        await handler(context, task)

    return await TaskHarness(type=kind, **harness).run(handle)


async def test_shell_command_precondition_is_false_until_its_command_exits_0(
    context: RunnerContext, tmp_path: Path
) -> None:
    flag = tmp_path / "ready"
    fields = {"command": f"test -f {flag}"}
    first = await run(context, "ShellCommandPrecondition", fields=fields)
    assert first.status == "FALSE"
    flag.touch()
    second = await run(context, "ShellCommandPrecondition", fields=fields)
    assert second.status == "FINISHED"


async def test_shell_command_precondition_runs_a_script_uri(
    context: RunnerContext, s3: Any
) -> None:
    s3.put_object(Bucket="data-bucket", Key="check.sh", Body=b'test "$1" = yes\n')
    fields = {"scriptUri": "s3://data-bucket/check.sh"}
    no = await run(context, "ShellCommandPrecondition", fields={**fields, "scriptArgument": "no"})
    yes = await run(context, "ShellCommandPrecondition", fields={**fields, "scriptArgument": "yes"})
    assert (no.status, yes.status) == ("FALSE", "FINISHED")


@pytest.mark.parametrize(
    ("node", "key"),
    [
        ({"filePath": "s3://data-bucket/daily/part.csv"}, "daily/part.csv"),
        ({"directoryPath": "s3://data-bucket/daily"}, "daily/any/file"),
    ],
)
async def test_exists_is_false_until_the_data_node_has_data(
    context: RunnerContext, s3: Any, node: dict[str, str], key: str
) -> None:
    attempt = "@Ready_2026-01-01T00:00:00_Attempt=1"
    objects = {
        # The data node names its precondition; the precondition does not name the node.
        "@Daily_2026-01-01T00:00:00": {
            "type": "S3DataNode",
            "precondition": Ref("@Ready_2026-01-01T00:00:00"),
            **node,
        },
        "@Other_2026-01-01T00:00:00": {"type": "S3DataNode", "filePath": "s3://data-bucket/x"},
    }
    fields = {"@instanceParent": Ref("@Ready_2026-01-01T00:00:00")}
    before = await run(context, "Exists", fields=fields, objects=objects, attempt_id=attempt)
    assert before.status == "FALSE"
    s3.put_object(Bucket="data-bucket", Key=key, Body=b"1")
    after = await run(context, "Exists", fields=fields, objects=objects, attempt_id=attempt)
    assert after.status == "FINISHED"


async def test_exists_without_a_data_node_fails(context: RunnerContext) -> None:
    result = await run(context, "Exists")
    assert result.status == "FAILED"
    assert result.outcome.error_id == "NoDataNode"


async def test_s3_key_exists_and_s3_prefix_not_empty(context: RunnerContext, s3: Any) -> None:
    key = {"s3Key": "s3://data-bucket/in/done.flag"}
    prefix = {"s3Prefix": "s3://data-bucket/in/"}
    assert (await run(context, "S3KeyExists", fields=key)).status == "FALSE"
    assert (await run(context, "S3PrefixNotEmpty", fields=prefix)).status == "FALSE"
    s3.put_object(Bucket="data-bucket", Key="in/done.flag", Body=b"")
    assert (await run(context, "S3KeyExists", fields=key)).status == "FINISHED"
    assert (await run(context, "S3PrefixNotEmpty", fields=prefix)).status == "FINISHED"
    bad = await run(context, "S3KeyExists", fields={"s3Key": "in/done.flag"})
    assert (bad.status, bad.outcome.error_id) == ("FAILED", "InvalidPrecondition")


@pytest.mark.parametrize(
    ("fields", "objects", "error_id"),
    [
        ({}, {}, "MissingCommand"),
        ({"command": "true", "scriptUri": "s3://data-bucket/x.sh"}, {}, "CommandAndScriptUri"),
        ({"scriptUri": "s3://data-bucket/missing.sh"}, {}, "ScriptDownloadFailed"),
        (
            {"command": "true", "stage": "true", "input": Ref("Sql")},
            {"Sql": {"type": "SqlDataNode", "table": "t"}},
            "UnsupportedDataNode",
        ),
        (
            {"command": "true", "stage": "true", "input": Ref("Both")},
            {"Both": {"type": "S3DataNode", "filePath": "s3://a/b", "directoryPath": "s3://a/"}},
            "InvalidDataNode",
        ),
        (
            {
                "command": "touch $OUTPUT1_STAGING_DIR/a $OUTPUT1_STAGING_DIR/b",
                "stage": "true",
                "output": Ref("One"),
            },
            {"One": {"type": "S3DataNode", "filePath": "s3://data-bucket/one.csv"}},
            "OutputStagingFailed",
        ),
        (
            {"command": "true", "stage": "true", "input": Ref("Gone")},
            {"Gone": {"type": "S3DataNode", "filePath": "s3://data-bucket/nothing-here"}},
            "InputStagingFailed",
        ),
        ({"command": "kill -KILL $$"}, {}, "KilledBySIGKILL"),
    ],
)
async def test_the_activity_fails_with_an_error_id_saying_what_is_wrong(
    context: RunnerContext, fields: dict[str, Any], objects: dict[str, Any], error_id: str
) -> None:
    result = await run(context, "ShellCommandActivity", fields=fields, objects=objects)
    assert result.status == "FAILED"
    assert result.outcome.error_id == error_id


async def test_stage_false_sets_no_staging_directories(
    context: RunnerContext, tmp_path: Path
) -> None:
    out = tmp_path / "env.txt"
    fields = {
        "command": f'echo "[$INPUT1_STAGING_DIR]" > {out}',
        "input": Ref("In"),
        "stage": "false",
    }
    objects = {"In": {"type": "S3DataNode", "filePath": "s3://data-bucket/nothing"}}
    result = await run(context, "ShellCommandActivity", fields=fields, objects=objects)
    assert result.status == "FINISHED"
    assert out.read_text() == "[]\n"


async def test_the_runner_embeds_like_any_worker(
    local: Any, s3: Any, moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeworker.taskrunner import RunnerSettings, TaskRunner
    from tests.taskrunner.conftest import start_pipeline, wait_done, wire

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    pipeline_id = start_pipeline(
        local.client,
        [
            wire("Default", scheduleType="ondemand", workerGroup="embedded", maximumRetries="0"),
            wire(
                "Hi", type="ShellCommandActivity", command="echo hi", stdout="s3://data-bucket/hi"
            ),
        ],
    )
    runner = TaskRunner(
        RunnerSettings(worker_groups=["embedded"], output=tmp_path / "output"),
        endpoint_url=local.endpoint_url,
        region="us-east-1",
        progress_interval=0.3,
    )
    assert runner.config.max_concurrency == 10  # Worker's default; the CLI sets the Java 2
    async with runner:
        # Waited for in a thread: the runner shares this test's loop.
        done = await asyncio.to_thread(wait_done, local.client, pipeline_id, ["Hi"])
    assert done == {"Hi": "FINISHED"}
    assert s3.get_object(Bucket="data-bucket", Key="hi")["Body"].read() == b"hi\n"
