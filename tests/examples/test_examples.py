"""Every example runs, the way its docstring says to run it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from pipeworker import Worker
from pipeworker.cli import main
from pipeworker.testing import LocalEndpoint, TaskHarness, local_service, run_handler

__all__ = ["local_service"]


@pytest.mark.parametrize(
    ("example", "expected_log"),
    [
        ("hello", "Hello, the Americas!"),
        ("shell_command", "| Hello, shell!"),
        ("sync_handler", "checksum of 8 blocks"),
        ("subclass", "reserved 3 apples, 7 left"),
    ],
)
def test_example_runs_locally(
    capsys: pytest.CaptureFixture[str], example: str, expected_log: str
) -> None:
    code = main([f"examples.{example}:worker", "--local"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "pipeline finished" in out
    assert expected_log in err


async def test_shell_command_fails_with_the_exit_code() -> None:
    from examples.shell_command import shell_command

    result = await run_handler(
        shell_command, fields={"command": "echo oops; exit 3"}, type="ShellCommandActivity"
    )
    assert result.status == "FAILED"
    assert result.outcome is not None
    assert result.outcome.error_id == "ExitCode3"
    assert result.fields == {"outputLines": "1"}


async def test_shell_command_cancel_stops_the_command(tmp_path: Path) -> None:
    from examples.shell_command import shell_command

    pid_file = tmp_path / "pid"
    harness = TaskHarness(fields={"command": f"echo $$ > {pid_file}; exec sleep 30"})
    harness.start(shell_command)
    async with asyncio.timeout(5):
        while not pid_file.exists() or not pid_file.read_text().strip():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    pid = int(pid_file.read_text())
    result = await harness.cancel()
    assert result.status is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_sync_handler_returns_early_when_cancelled() -> None:
    from examples.sync_handler import checksum

    harness = TaskHarness(fields={"blocks": "200"})
    harness.start(checksum)
    await asyncio.sleep(0.1)
    result = await harness.cancel()
    assert result.status is None
    assert result.error is None  # it returned on its own, between two blocks


async def test_subclass_instances_do_not_share_state() -> None:
    from examples.subclass import InventoryWorker

    first, second = InventoryWorker(), InventoryWorker()
    assert len(first.activities) == len(second.activities) == 2
    await first.on_startup()
    result = await run_handler(first.reserve, fields={"item": "pears", "quantity": "9"})
    assert result.status == "FAILED"
    assert "only 4 pears left" in str(result.error)
    assert second.stock is None


async def test_embedded_worker_shares_the_web_apps_loop(local_service: LocalEndpoint) -> None:
    from examples.embedded import create_app

    client = local_service.client
    pipeline_id = (await asyncio.to_thread(client.create_pipeline, name="e", uniqueId="e"))[
        "pipelineId"
    ]
    objects = [
        {
            "id": "Default",
            "name": "Default",
            "fields": [
                {"key": "scheduleType", "stringValue": "ondemand"},
                {"key": "workerGroup", "stringValue": "embedded"},
            ],
        },
        {
            "id": "Say",
            "name": "Say",
            "fields": [
                {"key": "type", "stringValue": "CustomActivity"},
                {"key": "message", "stringValue": "from the pipeline"},
            ],
        },
    ]
    await asyncio.to_thread(
        client.put_pipeline_definition, pipelineId=pipeline_id, pipelineObjects=objects
    )
    await asyncio.to_thread(client.activate_pipeline, pipelineId=pipeline_id)

    worker = Worker(endpoint_url=local_service.endpoint_url, region="us-east-1")
    runner = web.AppRunner(create_app(worker), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            async with asyncio.timeout(10):
                while True:
                    async with session.get(f"http://127.0.0.1:{port}/status") as response:
                        handled = (await response.json())["handled"]
                    if handled:
                        break
                    await asyncio.sleep(0.05)
        assert handled == ["from the pipeline"]
    finally:
        await runner.cleanup()
