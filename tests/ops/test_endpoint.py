"""The health and metrics endpoint: scraped with a real HTTP client while tasks run."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from pipeworker import ConfigurationError, Task, TaskFailed, Worker
from pipeworker._events import Observer
from pipeworker.local import LocalService
from tests.helpers import activities, eventually, start_pipeline, statuses
from tests.ops.conftest import get, scrape, value


class _Reports(Observer):
    """Progress reports landed (the acknowledgement included), by task id."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}

    def progress_reported(self, task: Task, canceled: bool) -> None:
        self.count[task.id] = self.count.get(task.id, 0) + 1


async def test_counters_move_as_tasks_run(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    reports = _Reports()
    worker = make_worker(http_port=0, observer=reports)

    @worker.activity("wg-ops")
    async def copy(task: Task) -> None:
        if task.attempt_id.startswith("@Bad"):
            raise TaskFailed("Broken", "on purpose")
        # Until a progress report has landed after the acknowledgement, however busy the machine.
        await eventually(lambda: reports.count.get(task.id, 0) >= 2, within=30)

    pipeline_id = await start_pipeline(dp, activities("wg-ops", "Good1", "Good2", "Bad"))
    async with worker:
        assert worker.http_url is not None
        assert worker.http_url.startswith("http://127.0.0.1:")

        async def done() -> bool:
            return set((await statuses(dp, pipeline_id)).values()) <= {"FINISHED", "FAILED"}

        await eventually(done)
        metrics_url = worker.http_url + "/metrics"

        async def counted() -> bool:
            samples = await scrape(metrics_url)
            ended = "pipeworker_tasks_ended_total"
            return (
                value(samples, ended, worker_group="wg-ops", activity=activity, result="finished")
                == 2
            )

        activity = copy.__qualname__
        await eventually(counted)
        samples = await scrape(metrics_url)

    group = {"worker_group": "wg-ops"}
    labels = {**group, "activity": activity}
    assert value(samples, "pipeworker_tasks_started_total", **labels) == 3
    assert value(samples, "pipeworker_tasks_ended_total", **labels, result="failed") == 1
    assert value(samples, "pipeworker_polls_total", **group, result="task") == 3
    assert value(samples, "pipeworker_task_duration_seconds_count", **labels) == 3
    assert value(samples, "pipeworker_ack_delay_seconds_count", **group) == 3
    assert 0 < value(samples, "pipeworker_ack_delay_seconds_sum", **group) < 5
    # Progress reports landed with most of the 300 s lease left.
    slack = value(samples, "pipeworker_progress_slack_seconds_count", **group)
    assert slack >= 2
    assert value(samples, "pipeworker_progress_slack_seconds_sum", **group) / slack > 250
    for operation in ("poll", "acknowledge", "report_progress", "finish", "heartbeat"):
        assert (
            value(samples, "pipeworker_service_calls_total", operation=operation, outcome="ok") >= 1
        )
        assert (
            value(samples, "pipeworker_service_call_duration_seconds_count", operation=operation)
            >= 1
        )
    assert value(samples, "pipeworker_service_calls_total", operation="finish", outcome="ok") == 3
    assert value(samples, "pipeworker_runner_heartbeats_total", **group) >= 1
    assert 0 <= value(samples, "pipeworker_runner_heartbeat_age_seconds", **group) < 5
    assert value(samples, "pipeworker_tasks_in_flight") == 0
    assert value(samples, "pipeworker_slots_free") == 4
    assert 0 <= value(samples, "pipeworker_event_loop_lag_seconds") < 1
    assert ("pipeworker_event_loop_stalls_total", ()) in samples


async def test_throttles_retries_and_lost_leases_are_counted(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker(http_port=0, progress_interval=0.05)
    release = asyncio.Event()
    started = asyncio.Event()

    @worker.activity("wg-ops")
    async def wait(task: Task) -> None:
        started.set()
        await release.wait()

    pipeline_id = await start_pipeline(dp, activities("wg-ops", "A"))
    async with worker:
        assert worker.http_url is not None
        url = worker.http_url + "/metrics"
        await asyncio.wait_for(started.wait(), 10)
        service.configure_faults(throttle_rate=0.5, seed=3)

        async def throttled() -> bool:
            samples = await scrape(url)
            return (
                value(samples, "pipeworker_service_retries_total", operation="report_progress") > 0
                and sum(
                    v
                    for (name, labels), v in samples.items()
                    if name == "pipeworker_service_calls_total"
                    and ("outcome", "throttled") in labels
                )
                > 0
            )

        await eventually(throttled)
        service.configure_faults(throttle_rate=0.0)
        await dp.delete_pipeline(pipelineId=pipeline_id)  # the next report finds the lease lost

        async def lost() -> bool:
            samples = await scrape(url)
            return (
                value(
                    samples,
                    "pipeworker_tasks_ended_total",
                    worker_group="wg-ops",
                    activity=wait.__qualname__,
                    result="lease_lost",
                )
                == 1
            )

        await eventually(lost)
        samples = await scrape(url)
    assert (
        value(
            samples,
            "pipeworker_service_calls_total",
            operation="report_progress",
            outcome="lease_lost",
        )
        == 1
    )
    assert (
        value(
            samples,
            "pipeworker_tasks_ended_total",
            worker_group="wg-ops",
            activity=wait.__qualname__,
            result="finished",
        )
        == 0
    )


async def test_healthz_and_readyz_while_running_and_gone_after(
    make_worker: Callable[..., Worker],
) -> None:
    worker = make_worker(http_port=0)

    @worker.activity("wg-ops")
    async def noop(task: Task) -> None:
        pass

    assert worker.http_url is None
    async with worker:
        url = worker.http_url
        assert url is not None
        assert await get(url + "/healthz") == (200, {"status": "ok"})

        async def ready() -> bool:
            return (await get(url + "/readyz"))[0] == 200

        await eventually(ready)  # once the first call (the heartbeat) landed
        assert await get(url + "/readyz") == (200, {"status": "ready"})
        status, text = await get(url + "/metrics")
        assert status == 200
        assert "# TYPE pipeworker_tasks_started_total counter" in text
    assert worker.http_url is None
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(urllib.request.urlopen, url + "/healthz", timeout=2)


async def test_readyz_says_why_when_service_calls_stop_landing(
    make_service: Callable[..., Any], make_worker: Callable[..., Worker]
) -> None:
    other = await make_service()
    worker = make_worker(
        endpoint_url=other.endpoint_url, http_port=0, ready_max_call_age=0.5, heartbeat_interval=30
    )

    @worker.activity("wg-ops")
    async def noop(task: Task) -> None:
        pass

    async with worker:
        url = worker.http_url
        assert url is not None
        await eventually(lambda: _status(url + "/readyz") == 200)
        await other.stop()  # every call fails from now on: readiness lapses, liveness stays

        async def not_ready() -> bool:
            return (await get(url + "/readyz"))[0] == 503

        await eventually(not_ready)
        _, body = await get(url + "/readyz")
        assert body["status"] == "not ready"
        assert body["reason"].startswith("the last successful service call was ")
        assert await get(url + "/healthz") == (200, {"status": "ok"})


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_healthz_goes_unhealthy_while_the_loop_is_blocked_then_recovers(
    make_worker: Callable[..., Worker],
) -> None:
    worker = make_worker(http_port=0, loop_stall_threshold=0.2, health_max_loop_lag=0.4)

    @worker.activity("wg-ops")
    async def noop(task: Task) -> None:
        pass

    async with worker:
        url = worker.http_url
        assert url is not None
        answers: list[tuple[int, dict[str, Any]]] = []
        stop = threading.Event()

        def probe() -> None:
            # A probe from outside the blocked loop, as Kubernetes' kubelet is.
            import json

            while not stop.is_set():
                try:
                    with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                        answers.append((response.status, json.load(response)))
                except urllib.error.HTTPError as exc:
                    answers.append((exc.code, json.load(exc)))
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            await asyncio.sleep(0.2)
            time.sleep(1.2)  # noqa: ASYNC251 (blocks the worker's loop on purpose: it is ours)
            await eventually(lambda: bool(answers) and answers[-1][0] == 200)
        finally:
            stop.set()
            await asyncio.to_thread(prober.join)
    # A busy machine may add 503s of its own ("event loop lag ..."): find the block's.
    ours = [
        index
        for index, (status, body) in enumerate(answers)
        if status == 503
        and body["reason"].startswith("event loop blocked for ")
        and "test_healthz_goes_unhealthy" in body["reason"]  # where the loop is stuck
    ]
    assert ours, answers
    assert answers[ours[0]][1]["status"] == "unhealthy"
    assert any(status == 200 for status, _ in answers[: ours[0]])  # healthy before the block
    assert answers[-1] == (200, {"status": "ok"})  # and again after it


async def test_two_workers_have_their_own_registries(make_worker: Callable[..., Worker]) -> None:
    first, second = make_worker(), make_worker()
    assert first.metrics_registry is not second.metrics_registry
    assert first.metrics_registry is first.metrics_registry
    names = {metric.name for metric in first.metrics_registry.collect()}
    assert all(name.startswith("pipeworker_") for name in names)
    from prometheus_client import REGISTRY

    assert not any(name.startswith("pipeworker_") for name in (m.name for m in REGISTRY.collect()))


async def test_metrics_are_off_unless_asked(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    seen: list[str] = []

    class Recorder(Observer):
        def task_started(self, task: Task) -> None:
            seen.append(task.attempt_id)

    worker = make_worker(observer=Recorder())

    @worker.activity("wg-ops")
    async def noop(task: Task) -> None:
        pass

    pipeline_id = await start_pipeline(dp, activities("wg-ops", "A"))
    async with worker:
        assert worker.http_url is None

        async def done() -> bool:
            return (await statuses(dp, pipeline_id)) == {"A": "FINISHED"}

        await eventually(done)
    assert len(seen) == 1
    assert worker._metrics is None  # nothing was built, so nothing costs anything per task


async def test_a_users_observer_sees_events_beside_the_metrics(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    calls: list[tuple[str, bool]] = []

    class Recorder(Observer):
        def call_finished(
            self, operation: str, error: BaseException | None, seconds: float, retry: bool
        ) -> None:
            calls.append((operation, error is None))

    worker = make_worker(observer=Recorder())
    registry = worker.metrics_registry  # asking for the registry switches metrics on

    @worker.activity("wg-ops")
    async def noop(task: Task) -> None:
        pass

    pipeline_id = await start_pipeline(dp, activities("wg-ops", "A"))
    async with worker:

        async def done() -> bool:
            return (await statuses(dp, pipeline_id)) == {"A": "FINISHED"}

        await eventually(done)
    assert ("finish", True) in calls
    started = registry.get_sample_value(
        "pipeworker_tasks_started_total", {"worker_group": "wg-ops", "activity": noop.__qualname__}
    )
    assert started == 1


async def test_metrics_mount_in_a_host_app(
    service: LocalService, dp: Any, make_worker: Callable[..., Worker]
) -> None:
    worker = make_worker()

    @worker.activity("wg-ops")
    async def noop(task: Task) -> None:
        pass

    app = web.Application()
    app.router.add_get("/metrics", worker.metrics_handler())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        pipeline_id = await start_pipeline(dp, activities("wg-ops", "A"))
        async with worker:

            async def done() -> bool:
                return (await statuses(dp, pipeline_id)) == {"A": "FINISHED"}

            await eventually(done)
            samples = await scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        await runner.cleanup()
    labels = {"worker_group": "wg-ops", "activity": noop.__qualname__, "result": "finished"}
    assert value(samples, "pipeworker_tasks_ended_total", **labels) == 1


@pytest.mark.parametrize("port", [-1, 65536, "8080", True, 1.5])
def test_a_bad_port_is_refused(port: Any) -> None:
    with pytest.raises(ConfigurationError, match="http_port must be a port number 0-65535"):
        Worker(region="us-east-1", http_port=port)


async def test_a_port_in_use_stops_the_start_with_a_clear_message(
    make_worker: Callable[..., Worker],
) -> None:
    first = make_worker(http_port=0)
    for worker in (first,):

        @worker.activity("wg-ops")
        async def noop(task: Task) -> None:
            pass

    async with first:
        assert first.http_url is not None
        port = int(first.http_url.rsplit(":", 1)[1])
        second = make_worker(http_port=port)

        @second.activity("wg-ops")
        async def other(task: Task) -> None:
            pass

        with pytest.raises(
            ConfigurationError, match=f"cannot serve the health endpoint on 127.0.0.1:{port}"
        ):
            async with second:
                pass
