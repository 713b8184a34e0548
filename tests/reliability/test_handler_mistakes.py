"""A handler's mistakes never crash the worker or lose a task: each ends its own task only.

The handlers here are the ones written in a hurry: async functions behind plain decorators,
``sys.exit()``, exception objects that cannot be printed, observers that raise, threads that never
look at ``task.cancelled``. Each test also runs a well-behaved task beside the broken one and
checks that it finished. Real HTTP to the local service; its time rules are shortened, since
polling is not what is under test.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiobotocore.session import get_session

from pipeworker import (
    ConfigurationError,
    Outcome,
    PreconditionNotMet,
    Task,
    TaskFailed,
    Worker,
)
from pipeworker._events import Observer
from pipeworker.local import LocalConfig, LocalService
from tests.helpers import (
    activities,
    attempts,
    by_component,
    calls,
    eventually,
    obj,
    start_pipeline,
)

pytestmark = pytest.mark.timeout(60)

RULES = LocalConfig(poll_hold=0.3, ack_timeout=5.0, time_scale=0.001)


@pytest.fixture
async def service() -> AsyncIterator[LocalService]:
    async with LocalService(RULES) as running:
        yield running


@pytest.fixture
async def dp(service: LocalService) -> AsyncIterator[Any]:
    async with get_session().create_client(
        "datapipeline", region_name="us-east-1", endpoint_url=service.endpoint_url
    ) as client:
        yield client


async def _run_until_done(worker: Worker, dp: Any, pipeline_id: str, count: int) -> dict[str, Any]:
    """Serve until *count* attempts of the pipeline ended; return them by component name."""
    async with worker:

        async def ended() -> bool:
            found = await attempts(dp, pipeline_id)
            return len(found) >= count and all(
                a["@status"] in ("FINISHED", "FAILED", "FALSE") for a in found
            )

        await eventually(ended, within=20)
    return by_component(await attempts(dp, pipeline_id))


def _named(group: str, *names: str, own_groups: bool = False) -> list[dict[str, Any]]:
    """A pipeline whose activities carry their name as ``label`` (and, with *own_groups*, run
    on worker group ``<group>-<name>`` each)."""
    return [
        activities(group)[0],
        *(
            obj(
                name,
                type="ShellCommandActivity",
                command="x",
                label=name,
                workerGroup=f"{group}-{name}" if own_groups else group,
            )
            for name in names
        ),
    ]


def _plain_decorator(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(task: Task) -> Any:  # no functools.wraps: looks like a plain function
        return function(task)

    return wrapper


async def test_async_handlers_registered_as_sync_are_awaited_never_finished_unrun(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    ran: list[str] = []
    worker = make_worker(endpoint_url=service.endpoint_url)

    async def handle(task: Task) -> None:
        await asyncio.sleep(0.01)
        ran.append(task.field("label"))

    @worker.activity("wg-a-A")
    @_plain_decorator
    async def decorated(task: Task) -> None:
        await handle(task)

    worker.activity("wg-a-B")(lambda task: handle(task))
    worker.activity("wg-a-C")(functools.wraps(handle)(lambda task: handle(task)))

    pipeline_id = await start_pipeline(dp, _named("wg-a", "A", "B", "C", own_groups=True))
    ended = await _run_until_done(worker, dp, pipeline_id, 3)
    assert {name: a["@status"] for name, a in ended.items()} == dict.fromkeys("ABC", "FINISHED")
    assert sorted(ran) == ["A", "B", "C"]


# A handler raising any BaseException (async or sync) fails its task only:
# tests/unit/test_outcomes.py.


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class NotAString(Exception):
    def __str__(self) -> Any:
        return 42


class Hostile:
    def __str__(self) -> str:
        raise ValueError("hostile")

    def __repr__(self) -> str:
        raise ValueError("hostile too")


ODD = {
    "Unprintable": (Unprintable(), "FAILED", "Unprintable"),
    "NotAString": (NotAString(), "FAILED", "NotAString"),
    "NumericId": (TaskFailed(404, "missing"), "FAILED", "404"),  # type: ignore[arg-type]
    "DictMessage": (TaskFailed("E", {"why": "x"}), "FAILED", "E"),  # type: ignore[arg-type]
    "HostilePrecondition": (PreconditionNotMet(Hostile()), "FALSE", None),
}


async def test_odd_exception_objects_end_their_task_with_a_best_effort_text(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(endpoint_url=service.endpoint_url)

    @worker.activity("wg-odd")
    async def odd(task: Task) -> None:
        raise ODD[task.field("label")][0]

    pipeline_id = await start_pipeline(dp, _named("wg-odd", *ODD))
    ended = await _run_until_done(worker, dp, pipeline_id, len(ODD))
    for name, (_, status, error_id) in ODD.items():
        assert ended[name]["@status"] == status, name
        if error_id is not None:
            assert ended[name]["errorId"] == error_id, name
    assert "why" in ended["DictMessage"]["errorMessage"]


async def test_a_raising_observer_is_logged_once_and_switched_off(
    service: LocalService,
    dp: Any,
    make_worker: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Observer):
        calls = 0

        def task_started(self, task: Task) -> None:
            Broken.calls += 1
            raise RuntimeError("metrics backend down")

    class Hooked(Worker):
        async def on_task_end(self, task: Task, outcome: Outcome | None) -> None:
            raise SystemExit("hook exits")

    worker = make_worker(Hooked, endpoint_url=service.endpoint_url, observer=Broken())

    @worker.activity("wg-obs")
    async def handle(task: Task) -> None:
        await asyncio.sleep(0.01)

    pipeline_id = await start_pipeline(dp, activities("wg-obs", "A", "B", "C"))
    with caplog.at_level(logging.WARNING, logger="pipeworker"):
        ended = await _run_until_done(worker, dp, pipeline_id, 3)
    assert {a["@status"] for a in ended.values()} == {"FINISHED"}
    assert Broken.calls == 1
    switched_off = [r for r in caplog.records if "switched off" in r.getMessage()]
    assert len(switched_off) == 1
    assert switched_off[0].exc_info is not None  # with its trace
    assert "on_task_end() failed" in caplog.text


async def test_fields_the_service_refuses_are_dropped_and_the_lease_is_renewed_without_them(
    service: LocalService,
    dp: Any,
    make_worker: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Each report is within the limits, but together they break the attempt object's 50-field
    # limit: the service answers 400 and would again for ever. The lease must live on.
    worker = make_worker(endpoint_url=service.endpoint_url, progress_interval=0.1)
    reports = asyncio.Event()

    @worker.activity("wg-poison")
    async def handle(task: Task) -> None:
        await task.report_progress(**{f"first{n}": "x" for n in range(40)})
        await asyncio.sleep(0.3)
        await task.report_progress(**{f"second{n}": "y" for n in range(40)})
        before = calls(service, "ReportTaskProgress")
        await eventually(lambda: calls(service, "ReportTaskProgress") >= before + 4)
        reports.set()

    pipeline_id = await start_pipeline(
        dp, activities("wg-poison", "Chatty", reportProgressTimeout="10 Minutes")
    )
    with caplog.at_level(logging.ERROR, logger="pipeworker"):
        ended = await _run_until_done(worker, dp, pipeline_id, 1)
    assert reports.is_set()
    assert ended["Chatty"]["@status"] == "FINISHED"
    assert ended["Chatty"].get("first0") == "x"
    assert "second0" not in ended["Chatty"]
    refused = [r for r in caplog.records if "refused the progress fields" in r.getMessage()]
    assert len(refused) == 1
    assert "second0" in refused[0].getMessage()


async def test_report_progress_checks_the_whole_request_size(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(endpoint_url=service.endpoint_url)
    errors: list[str] = []

    @worker.activity("wg-big")
    async def handle(task: Task) -> None:
        await task.report_progress(a="x" * 9000)
        try:
            await task.report_progress(b="y" * 9000)  # each fits; together they do not
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    pipeline_id = await start_pipeline(dp, activities("wg-big", "Big"))
    ended = await _run_until_done(worker, dp, pipeline_id, 1)
    assert ended["Big"]["@status"] == "FINISHED"
    assert len(errors) == 1
    assert errors[0].startswith("ValidationError")
    assert "15,360" in errors[0]


async def test_a_cancelled_sync_handler_that_keeps_running_keeps_its_slot(
    service: LocalService,
    dp: Any,
    make_worker: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = make_worker(endpoint_url=service.endpoint_url, max_concurrency=1)
    registry = worker.metrics_registry
    started = threading.Event()
    finish = threading.Event()

    @worker.activity("wg-thread")
    def oblivious(task: Task) -> None:
        started.set()
        finish.wait(30)  # never looks at task.cancelled

    pipeline_id = await start_pipeline(dp, activities("wg-thread", "Stuck"))
    with caplog.at_level(logging.WARNING, logger="pipeworker"):
        async with worker:
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
            await dp.delete_pipeline(pipelineId=pipeline_id)  # the lease is lost: cancelled
            await eventually(
                lambda: registry.get_sample_value("pipeworker_lingering_handler_threads") == 1
            )
            polls = calls(service, "PollForTask")
            await asyncio.sleep(1.0)  # three poll holds: a free slot would have polled
            assert calls(service, "PollForTask") == polls  # the thread still holds the slot
            finish.set()
            await eventually(lambda: calls(service, "PollForTask") > polls)
            assert registry.get_sample_value("pipeworker_lingering_handler_threads") == 0
    assert "lease lost" in caplog.text


async def test_the_acknowledgement_is_sent_before_the_handler_starts(
    make_worker: Callable[..., Worker],
) -> None:
    # A handler that blocks the loop at its start for longer than the acknowledgement window:
    # the acknowledgement must already have landed, or the task is handed out again.
    async with LocalService(LocalConfig(poll_hold=0.3, ack_timeout=1.0, time_scale=0.001)) as svc:
        worker = make_worker(endpoint_url=svc.endpoint_url)
        acked_first: list[bool] = []

        @worker.activity("wg-ack")
        async def blocking(task: Task) -> None:
            acked_first.append(calls(svc, "ReportTaskProgress") >= 1)
            time.sleep(1.5)  # noqa: ASYNC251 (the mistake under test: it blocks the loop)

        async with get_session().create_client(
            "datapipeline", region_name="us-east-1", endpoint_url=svc.endpoint_url
        ) as dp:
            pipeline_id = await start_pipeline(dp, activities("wg-ack", "Blocker"))
            ended = await _run_until_done(worker, dp, pipeline_id, 1)
            found = await attempts(dp, pipeline_id)
    assert acked_first == [True]
    assert len(found) == 1  # never handed out again
    assert ended["Blocker"]["@status"] == "FINISHED"


# A task handed out again while it runs is not run twice, and a lease near zero is reported at
# the floor, not in a spin: tests/unit/test_retries.py and tests/unit/test_leases.py (both were
# fakes at the transport seam already).


@pytest.mark.parametrize("setting", ["progress_interval", "heartbeat_interval"])
def test_intervals_below_the_floor_are_refused(setting: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"{setting} must be at least 0.05 seconds"):
        Worker(**{setting: 1e-6})  # type: ignore[arg-type]


async def test_a_huge_exception_message_gives_a_bounded_log_line(
    service: LocalService,
    dp: Any,
    make_worker: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = make_worker(endpoint_url=service.endpoint_url)

    @worker.activity("wg-huge")
    async def handle(task: Task) -> None:
        raise ValueError("x" * 10_000_000)

    pipeline_id = await start_pipeline(dp, activities("wg-huge", "Huge"))
    with caplog.at_level(logging.DEBUG, logger="pipeworker"):
        ended = await _run_until_done(worker, dp, pipeline_id, 1)
    assert ended["Huge"]["@status"] == "FAILED"
    assert ended["Huge"]["errorId"] == "ValueError"
    longest = max(len(caplog.handler.format(record)) for record in caplog.records)
    assert longest < 32_000
