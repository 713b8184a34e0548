"""200 tasks through 30% injected faults and 0–500 ms latency: nothing lost, nothing run twice.

A third of the task-runner calls fail: 10% InternalServiceError, 10% ThrottlingException and
10% connections dropped (half before the call takes effect, half after, so the runner cannot tell
whether a SetTaskStatus landed). Every call also waits 0–500 ms. The tasks are spread over ten
worker groups so the one-poll-per-group rule does not serialise the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from pipeworker import Task, Worker
from pipeworker.local import LocalConfig, LocalService
from tests.helpers import activities, eventually, fields_of, instances, start_pipeline
from tests.reliability.conftest import report

GROUPS = 10
TASKS_PER_GROUP = 20

pytestmark = [pytest.mark.usefixtures("no_backoff"), pytest.mark.timeout(90)]


class _CountRetries(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.retries: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.retries[str(record.args[0]) if record.args else "?"] += 1  # type: ignore[index]


async def test_every_task_finishes_exactly_once_through_errors_throttles_drops_and_latency() -> (
    None
):
    # Faults hit only the task-runner calls: the test's own queries are never faulted.
    # A 12 s acknowledgement window (AWS's is 120 s): an acknowledgement retried through the
    # faults on a busy machine, whose loop stalls for seconds, still lands inside it.
    config = LocalConfig(poll_hold=0.3, ack_timeout=12.0, time_scale=0.001, seed=20261122)
    retry_log = logging.getLogger("pipeworker.retry")
    counter = _CountRetries()
    retry_log.addHandler(counter)
    previous_level = retry_log.level
    retry_log.setLevel(logging.DEBUG)
    ran: Counter[tuple[str, str]] = Counter()
    try:
        async with LocalService(config) as service:
            worker = Worker(
                endpoint_url=service.endpoint_url,
                region="us-east-1",
                max_concurrency=60,
                progress_interval=0.5,
                heartbeat_interval=1.0,
                shutdown_grace=5.0,
            )

            async def handle(task: Task) -> None:
                ran[task.pipeline_id, task.attempt_id] += 1
                await asyncio.sleep(0.2)

            for group in range(GROUPS):
                worker.activity(f"wg-faults-{group}")(handle)
            client_config = Config(retries={"total_max_attempts": 1}, read_timeout=10)
            async with get_session().create_client(
                "datapipeline",
                region_name="us-east-1",
                endpoint_url=service.endpoint_url,
                config=client_config,
            ) as dp:
                pipelines = [
                    await start_pipeline(
                        dp,
                        activities(
                            f"wg-faults-{group}", *(f"T{n}" for n in range(TASKS_PER_GROUP))
                        ),
                    )
                    for group in range(GROUPS)
                ]
                service.configure_faults(
                    error_rate=0.1, throttle_rate=0.1, drop_rate=0.1, latency=(0.0, 0.5)
                )
                loop = asyncio.get_running_loop()
                started = loop.time()
                async with worker:

                    async def all_finished() -> bool:
                        for pipeline_id in pipelines:
                            found = await instances(dp, pipeline_id)
                            if len(found) != TASKS_PER_GROUP or any(
                                fields["@status"] != "FINISHED" for fields in found.values()
                            ):
                                return False
                        return True

                    await eventually(all_finished, within=75)
                elapsed = loop.time() - started
                service.configure_faults(error_rate=0, throttle_rate=0, drop_rate=0, latency=(0, 0))
                every_attempt = {
                    (pipeline_id, attempt_id): status
                    for pipeline_id in pipelines
                    for attempt_id, status in (await attempt_statuses(dp, pipeline_id)).items()
                }
            stats = service.stats()
    finally:
        retry_log.removeHandler(counter)
        retry_log.setLevel(previous_level)

    # Exactly once per attempt: no handler ran twice for the same attempt id.
    assert ran, "no handler ran"
    assert max(ran.values()) == 1, [attempt for attempt, n in ran.items() if n > 1]
    # Every attempt whose handler ran has its FINISHED: no SetTaskStatus was lost.
    assert set(ran) <= set(every_attempt)
    not_finished = {a: every_attempt[a] for a in ran if every_attempt[a] != "FINISHED"}
    assert not not_finished
    assert len(ran) == GROUPS * TASKS_PER_GROUP  # one handler run per task: none ran twice
    faults = stats["faults"]
    calls = stats["calls"]
    runner_ops = ("PollForTask", "ReportTaskProgress", "SetTaskStatus", "ReportTaskRunnerHeartbeat")
    calls = {op: calls.get(op, 0) for op in runner_ops}
    runner_calls = sum(calls.values())
    assert sum(faults.values()) > 0.2 * runner_calls
    report(
        f"faults: {GROUPS * TASKS_PER_GROUP} tasks FINISHED in {elapsed:.1f}s; "
        f"{runner_calls} task-runner calls ({_fmt(calls)}); faults injected {_fmt(faults)} "
        f"= {sum(faults.values())}; retries by the worker {_fmt(counter.retries)} "
        f"= {sum(counter.retries.values())}; attempts {len(every_attempt)} "
        f"(extra attempts are polls dropped after the hand-out, reassigned unacknowledged)"
    )


def _fmt(counts: Any) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(dict(counts).items()))


async def attempt_statuses(dp: Any, pipeline_id: str) -> dict[str, str]:
    """Every attempt's status, by attempt id."""
    ids = (await dp.query_objects(pipelineId=pipeline_id, sphere="ATTEMPT"))["ids"]
    described = await dp.describe_objects(pipelineId=pipeline_id, objectIds=ids)
    return {wire["id"]: fields_of(wire)["@status"] for wire in described["pipelineObjects"]}
