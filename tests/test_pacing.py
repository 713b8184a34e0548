"""Pacing: the order budgets serve callers in, cancellation, stops, defaults and the switch off."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pipeworker import DataPipeline, Task, Worker
from pipeworker._events import Observer
from pipeworker._pacing import POLL, ROUTINE, URGENT, Budget, Pacer, resolve_rate_limits
from pipeworker.cli import EXIT_USAGE, apply_settings, main, parse_options
from pipeworker.exceptions import ConfigurationError
from pipeworker.local import LocalConfig, LocalService
from pipeworker.services.base import Outcome, RateLimit
from pipeworker.services.swf import SWF

pytestmark = pytest.mark.timeout(30)

TICK = 0.02
"""Seconds per token in the ordering tests: a bucket of 50/s."""


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("PIPEWORKER_RATE_LIMITS", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def empty_budget() -> Budget:
    budget = Budget(RateLimit("ReportTaskProgress", rate=1 / TICK, burst=1))
    assert budget.try_take(asyncio.get_running_loop().time())  # the one token is gone
    return budget


async def test_acknowledgements_and_statuses_go_before_reports_and_the_soonest_lease_first() -> (
    None
):
    budget = empty_budget()
    now = asyncio.get_running_loop().time()
    served: list[str] = []

    async def call(name: str, priority: int, deadline: float) -> None:
        assert await budget.take(priority, deadline, name)
        served.append(name)

    # Queued in the worst order: polls and far leases first, the urgent calls last.
    callers = [
        asyncio.create_task(call("poll", POLL, now)),
        asyncio.create_task(call("report, lease ends in 300s", ROUTINE, now + 300)),
        asyncio.create_task(call("report, lease ends in 60s", ROUTINE, now + 60)),
        asyncio.create_task(call("report, lease ends in 120s", ROUTINE, now + 120)),
        asyncio.create_task(call("acknowledge", URGENT, now + 1)),
        asyncio.create_task(call("finish", URGENT, now + 2)),
    ]
    await asyncio.sleep(0)
    assert budget.waiting == len(callers)
    await asyncio.wait_for(asyncio.gather(*callers), timeout=5)
    assert served == [
        "acknowledge",
        "finish",
        "report, lease ends in 60s",
        "report, lease ends in 120s",
        "report, lease ends in 300s",
        "poll",
    ]
    assert budget.waiting == 0


async def test_tokens_are_spaced_by_the_rate_and_a_full_bucket_lets_a_burst_through() -> None:
    loop = asyncio.get_running_loop()
    budget = Budget(RateLimit("PollForTask", rate=1 / TICK, burst=3))
    started = loop.time()
    for _ in range(3):  # the burst: no wait
        assert await budget.take(POLL, started)
    assert loop.time() - started < TICK
    for _ in range(5):
        assert await budget.take(POLL, started)
    # Five more tokens at 50/s take about 0.1 s, never less than four intervals.
    assert 4 * TICK <= loop.time() - started < 5 * TICK + 0.5


async def test_a_caller_cancelled_while_queued_or_just_granted_costs_no_token() -> None:
    budget = empty_budget()
    loop = asyncio.get_running_loop()
    now = loop.time()
    abandoned = asyncio.create_task(budget.take(URGENT, now, "acknowledge"))
    await asyncio.sleep(0)
    abandoned.cancel()  # cancelled while queued: its turn goes to the next caller
    second = asyncio.create_task(budget.take(ROUTINE, now + 60, "report_progress"))
    await asyncio.sleep(0)
    assert await asyncio.wait_for(second, timeout=1)
    with pytest.raises(asyncio.CancelledError):
        await abandoned

    # Granted, then cancelled before it could run: the token goes back to the bucket.
    granted = asyncio.create_task(budget.take(URGENT, loop.time(), "finish"))
    await asyncio.sleep(0)
    assert budget.waiting == 1
    budget._bucket.tokens = 1.0
    budget._dispatch(loop)  # what the refill timer does: the token is the caller's now
    assert budget.waiting == 0
    granted.cancel()
    with pytest.raises(asyncio.CancelledError):
        await granted
    assert budget.try_take(loop.time())


async def test_a_stop_lets_queued_and_later_polls_go_unsent_at_once() -> None:
    pacer = Pacer({"poll": RateLimit("PollForTask", rate=0.001, burst=1)})
    assert await pacer.take("poll")  # the burst
    queued = asyncio.create_task(pacer.take("poll"))
    await asyncio.sleep(0.05)
    assert not queued.done()  # the next token is 1,000 s away
    pacer.stop_polls()
    assert await asyncio.wait_for(queued, timeout=1) is False
    assert await asyncio.wait_for(pacer.take("poll"), timeout=1) is False
    pacer.close()


async def test_methods_naming_one_operation_share_one_budget() -> None:
    pacer = Pacer(DataPipeline.rate_limits)
    assert pacer.budgets["acknowledge"] is pacer.budgets["report_progress"]
    assert pacer.budgets["finish"] is not pacer.budgets["report_progress"]
    assert {b.name for b in pacer.budgets.values()} == {
        "PollForTask",
        "ReportTaskProgress",
        "SetTaskStatus",
        "ReportTaskRunnerHeartbeat",
    }
    assert await pacer.take("evaluate")  # no declared limit: never waits
    pacer.close()


def test_a_budget_too_small_for_the_leases_is_named_once_with_how_many_it_keeps(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pacer = Pacer(DataPipeline.rate_limits)
    caplog.set_level(logging.WARNING, "pipeworker.pacing")
    assert pacer.check_capacity(600, 300.0)  # 10/s x 300 s x 0.8 = 2,400 tasks
    assert not caplog.records
    assert not pacer.check_capacity(1000, 60.0)
    assert not pacer.check_capacity(2000, 60.0)
    [record] = caplog.records
    message = record.getMessage()
    assert "cannot keep every lease" in message
    assert "1000 tasks" in message
    assert "keeps about 480 tasks" in message


def test_the_default_paces_on_aws_and_not_against_other_endpoints() -> None:
    service = DataPipeline()
    assert resolve_rate_limits("auto", service, None) == dict(DataPipeline.rate_limits)
    vpce = "https://vpce-1.datapipeline.us-east-1.vpce.amazonaws.com"
    assert resolve_rate_limits("auto", service, vpce) is not None
    assert resolve_rate_limits("auto", service, "http://127.0.0.1:8080") is None
    assert resolve_rate_limits("service", service, "http://127.0.0.1:8080") is not None
    assert resolve_rate_limits(None, service, None) is None
    assert resolve_rate_limits("service", SWF(domain="d"), None) == dict(SWF.rate_limits)
    assert Worker().config.rate_limits == "auto"
    assert Worker(rate_limits="off").config.rate_limits is None
    with pytest.raises(ConfigurationError, match="rate_limits must be"):
        Worker(rate_limits="fast")  # type: ignore[arg-type]


def test_rate_limits_from_the_command_line_and_the_environment() -> None:
    worker = Worker()
    apply_settings(worker, parse_options(["app:worker", "--rate-limits", "off"], {}))
    assert worker.config.rate_limits is None
    options = parse_options(["app:worker"], {"PIPEWORKER_RATE_LIMITS": "Service"})
    apply_settings(worker, options)
    assert worker.config.rate_limits == "service"
    flag_wins = parse_options(
        ["app:worker", "--rate-limits", "auto"], {"PIPEWORKER_RATE_LIMITS": "off"}
    )
    apply_settings(worker, flag_wins)
    assert worker.config.rate_limits == "auto"


def test_an_invalid_rate_limits_mode_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["app:worker", "--rate-limits", "fast"]) == EXIT_USAGE
    assert "--rate-limits: 'fast' is not one of auto, service, off" in capsys.readouterr().err
    monkeypatch.setenv("PIPEWORKER_RATE_LIMITS", "sometimes")
    assert main(["app:worker"]) == EXIT_USAGE
    assert "PIPEWORKER_RATE_LIMITS: 'sometimes'" in capsys.readouterr().err


class _Paced(Observer):
    def __init__(self) -> None:
        self.waits: list[tuple[str, float]] = []
        self.finished: list[str] = []

    def call_paced(self, operation: str, seconds: float) -> None:
        self.waits.append((operation, seconds))

    def task_finished(self, task: Task, outcome: Outcome | None) -> None:
        if outcome is not None and outcome.status == "FINISHED":
            self.finished.append(task.attempt_id)


async def _run_tasks(worker: Worker, service: LocalService, tasks: int, seen: _Paced) -> float:
    from aiobotocore.session import get_session
    from botocore.config import Config

    from tests.helpers import activities, eventually, start_pipeline

    async with get_session().create_client(
        "datapipeline",
        region_name="us-east-1",
        endpoint_url=service.endpoint_url,
        config=Config(retries={"total_max_attempts": 1}),
    ) as dp:
        await start_pipeline(dp, activities("wg-pacing", *(f"T{n}" for n in range(tasks))))
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with worker:
            await eventually(lambda: len(set(seen.finished)) == tasks, within=20)
        return loop.time() - started


async def test_with_pacing_off_no_call_waits_and_polls_are_not_capped() -> None:
    # 150 tasks: more polls than the 100-token burst, which paced at 2/s would take 25 s.
    async with LocalService(LocalConfig(poll_hold=0.3, time_scale=0.001)) as service:
        observer = _Paced()
        worker = Worker(
            endpoint_url=service.endpoint_url,
            region="us-east-1",
            max_concurrency=50,
            progress_interval=0.2,
            observer=observer,
            rate_limits=None,
        )

        @worker.activity("wg-pacing")
        async def handle(task: Task) -> None:
            await asyncio.sleep(0.01)

        elapsed = await _run_tasks(worker, service, 150, observer)
    assert observer.waits == []
    assert elapsed < 15


async def test_paced_calls_are_timed_for_the_metrics() -> None:
    async with LocalService(LocalConfig(poll_hold=0.3, time_scale=0.001)) as service:
        worker = Worker(
            endpoint_url=service.endpoint_url,
            region="us-east-1",
            max_concurrency=5,
            progress_interval=0.2,
            rate_limits="service",
            observer=(seen := _Paced()),
        )

        @worker.activity("wg-pacing")
        async def handle(task: Task) -> None:
            await asyncio.sleep(0.01)

        registry = worker.metrics_registry
        await _run_tasks(worker, service, 5, seen)
    count = registry.get_sample_value(
        "pipeworker_pacing_wait_seconds_count", {"operation": "acknowledge"}
    )
    assert count == 5
    assert registry.get_sample_value("pipeworker_pacing_wait_seconds_count", {"operation": "poll"})
