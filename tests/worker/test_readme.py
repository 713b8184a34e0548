"""The README's complete worker does what the README says, against the local service."""

from __future__ import annotations

from typing import Any

import pytest

from pipeworker import Worker
from pipeworker.local import LocalService
from tests.worker.conftest import attempts, eventually, obj, start_pipeline

# Kept identical to the README's example (13 lines), with the last line left out here.
README_WORKER = """\
from pipeworker import PreconditionNotMet, Task, TaskFailed, Worker

worker = Worker()  # region, credentials and endpoint: the usual AWS settings
@worker.activity("wg-12345")  # the Data Pipeline worker group to poll
async def export(task: Task) -> None:
    table = task.field("table")  # the activity's field, inherited values resolved
    if table is None:
        raise TaskFailed("NoTable", "set 'table' on the activity")  # -> FAILED
    if table.startswith("staging_"):
        raise PreconditionNotMet(f"{table} is still being loaded")  # -> FALSE
    await task.report_progress(table=table)  # sent with the next progress report
    task.logger.info("exported %s", table)  # returning -> FINISHED
"""


async def test_the_readme_worker_reaches_each_outcome(
    service: LocalService, dp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(README_WORKER.splitlines()) + 1 < 15  # plus `worker.run()`
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
