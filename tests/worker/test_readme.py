"""The README's complete worker does what the README says, against the local service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeworker import Worker
from pipeworker.local import LocalService
from tests.helpers import attempts, eventually, obj, start_pipeline

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_worker() -> str:
    """The README's complete worker: the first python block after "## A complete worker"."""
    text = README.read_text()
    section = text[text.index("## A complete worker") :]
    block = section[section.index("```python\n") + len("```python\n") :]
    return block[: block.index("```")]


README_WORKER = _readme_worker()  # run() is under `if __name__ == "__main__":`


async def test_the_readme_worker_reaches_each_outcome(
    service: LocalService, dp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(_readme_worker().strip().splitlines()) <= 15
    # botocore reads the endpoint from the environment, as it would any AWS setting.
    monkeypatch.setenv("AWS_ENDPOINT_URL", service.endpoint_url)
    namespace: dict[str, Any] = {}
    exec(compile(README_WORKER, "README.md", "exec"), namespace)
    worker: Worker = namespace["worker"]
    pipeline_id = await start_pipeline(
        dp,
        [
            obj("Default", scheduleType="ondemand", workerGroup="wg-12345", maximumRetries="0"),
            obj("Orders", type="ShellCommandActivity", table="orders"),
            obj("Staging", type="ShellCommandActivity", table="staging_orders"),
            obj("Nothing", type="ShellCommandActivity"),
        ],
    )
    async with worker:

        async def three_ended() -> bool:
            return len([a for a in await attempts(dp, pipeline_id) if "@actualEndTime" in a]) == 3

        await eventually(three_ended)
    ended = {a["@instanceParent"]["ref"].split("_")[0]: a for a in await attempts(dp, pipeline_id)}
    assert ended["@Orders"]["@status"] == "FINISHED"
    assert ended["@Orders"]["table"] == "orders"
    assert ended["@Staging"]["@status"] == "FALSE"
    assert ended["@Nothing"]["@status"] == "FAILED"
    assert ended["@Nothing"]["errorId"] == "NoTable"
