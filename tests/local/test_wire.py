"""The wire: malformed requests get AWS's answers, the query form works, the CLI starts it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from typing import Any

import aiohttp
import pytest

from pipeworker.local import LocalService
from pipeworker.local.__main__ import main
from tests.helpers import start_pipeline
from tests.local.helpers import chain_definition


def code(body: dict[str, Any]) -> str:
    return str(body["__type"]).rsplit("#", 1)[-1]


@pytest.mark.parametrize(
    ("target", "data", "status", "error"),
    [
        ("DataPipeline.NoSuchOperation", b"{}", 400, "UnknownOperationException"),
        ("SimpleWorkflowService.StartWorkflowExecution", b"{}", 400, "UnknownOperationException"),
        ("SimpleWorkflowService.PollForActivityTask", b"{}", 400, "ValidationException"),
        (None, b"{}", 400, "UnknownOperationException"),
        ("DataPipeline.PollForTask", b"{not json", 400, "SerializationException"),
        ("DataPipeline.PollForTask", b"\xff\xfe", 400, "SerializationException"),
        ("DataPipeline.PollForTask", b"[1, 2]", 400, "SerializationException"),
        ("DataPipeline.PollForTask", b"", 400, "ValidationException"),
        ("DataPipeline.PollForTask", b'{"workerGroup": 5}', 400, "ValidationException"),
        ("DataPipeline.PollForTask", b'{"workerGroup": "g", "x": 1}', 400, "ValidationException"),
        (
            "DataPipeline.SetTaskStatus",
            b'{"taskId": "t", "taskStatus": "DONE"}',
            400,
            "ValidationException",
        ),
    ],
)
async def test_malformed_requests_get_aws_errors_never_a_500(
    raw: Any, target: str | None, data: bytes, status: int, error: str
) -> None:
    answer_status, body = await raw(target, data=data)
    assert (answer_status, code(body)) == (status, error)
    assert body["message"]
    assert "Traceback" not in body["message"]


async def test_query_form_answers_the_task_runner_actions(dp: Any, service: LocalService) -> None:
    pipeline_id = await start_pipeline(dp, chain_definition("wg-q"))
    url = service.endpoint_url
    async with aiohttp.ClientSession() as http:

        async def get(**params: str) -> tuple[int, Any]:
            async with http.get(url + "/", params=params) as response:
                return response.status, await response.json(content_type=None)

        status, polled = await get(Action="PollForTask", workerGroup="wg-q", hostname="curl")
        assert status == 200
        task = polled["taskObject"]
        fields = json.dumps([{"key": "step", "stringValue": "1"}])
        assert await get(Action="ReportTaskProgress", taskId=task["taskId"], fields=fields) == (
            200,
            {"canceled": False},
        )
        evaluated = await get(
            Action="EvaluateExpression",
            pipelineId=pipeline_id,
            objectId="Extract",
            expression="#{command}",
        )
        assert evaluated == (200, {"evaluatedExpression": "echo extract"})
        assert await get(Action="SetTaskStatus", taskId=task["taskId"], taskStatus="FINISHED") == (
            200,
            {},
        )
        assert await get(Action="ReportTaskRunnerHeartbeat", taskrunnerId="curl-1") == (
            200,
            {"terminate": False},
        )
        status, body = await get(Action="ReportTaskProgress", taskId="t", fields="{bad")
        assert (status, code(body)) == (400, "SerializationException")
        status, body = await get(Action="CreatePipeline", name="x", uniqueId="y")
        assert (status, code(body)) == (400, "InvalidAction")
        status, body = await get(Action="PollForTask")
        assert (status, code(body)) == (400, "ValidationException")


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
async def test_aws_cli_works_against_the_service(service: LocalService) -> None:
    process = await asyncio.create_subprocess_exec(
        "aws",
        "datapipeline",
        "create-pipeline",
        "--name",
        "cli",
        "--unique-id",
        "cli-1",
        "--endpoint-url",
        service.endpoint_url,
        "--region",
        "us-east-1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    pipeline_id = json.loads(out)["pipelineId"]
    assert pipeline_id in service.state.pipelines


async def test_module_runs_as_a_process_and_prints_its_endpoint_first() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeworker.local",
        "--port",
        "0",
        "--poll-hold",
        "0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "0"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
        prefix = "pipeworker.local listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        url = line.rsplit(" ", 1)[-1]
        async with aiohttp.ClientSession() as http:
            params = {"Action": "PollForTask", "workerGroup": "none"}
            async with http.get(url + "/", params=params) as response:
                assert (response.status, await response.json(content_type=None)) == (200, {})
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0


def test_cli_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--poll-hold", "-1"]) == 2
    assert "poll_hold" in capsys.readouterr().err


async def test_an_unexpected_failure_is_an_internal_service_error_without_traceback(
    service: LocalService, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    service.dispatcher._services["DataPipeline"][1]["ListPipelines"] = (broken, False)
    status, body = await raw("DataPipeline.ListPipelines", {})
    assert (status, code(body)) == (500, "InternalServiceError")
    assert "bug" not in body["message"]
    assert "RuntimeError: bug" in caplog.text  # logged for the developer, not sent
