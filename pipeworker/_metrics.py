"""Prometheus metrics: an :class:`~pipeworker._events.Observer` that counts what a worker does.

Each :class:`Metrics` has its own ``CollectorRegistry`` (never prometheus-client's global one), so
two workers in one process, or two tests, never share or collide on a metric. Every name starts
with ``pipeworker_``; the README's "Metrics" table is the reference.

The observer runs on the hot path of every task and call, so labelled children are bound once per
worker group and activity (or operation) and kept; an event costs a dict lookup and an increment.
Gauges that are a view of the worker (tasks in flight, free slots, loop lag, heartbeat age) are
read when scraped rather than kept up to date.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipeworker._events import Observer
from pipeworker.exceptions import (
    LeaseLost,
    PipeworkerError,
    RequestRejected,
    ThrottlingError,
    TransientServiceError,
)
from pipeworker.services.base import Outcome, ReceivedTask
from pipeworker.task import BaseTask, CancelReason

if TYPE_CHECKING:
    from pipeworker._lease import Leases
    from pipeworker.worker import Activity

__all__ = ["Metrics", "call_outcome", "task_result"]

_TASK_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600)
_ACK_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_SLACK_SECONDS = (1, 5, 10, 30, 60, 120, 180, 240, 270, 300, 600)
_PACING_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300)
_CALL_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 90, 120)

# How many polled-but-not-acknowledged tasks to remember before forgetting the oldest (tasks
# handed back at shutdown are never acknowledged).
_MAX_UNACKNOWLEDGED = 10_000


def call_outcome(error: BaseException | None) -> str:
    """The ``outcome`` label of a service call that raised *error* (None: it succeeded)."""
    if error is None:
        return "ok"
    if isinstance(error, ThrottlingError):
        return "throttled"
    if isinstance(error, TransientServiceError):
        return "transient"
    if isinstance(error, LeaseLost):
        return "lease_lost"
    if isinstance(error, RequestRejected):
        return "rejected"
    return "error"


def task_result(task: BaseTask, outcome: Outcome | None) -> str:
    """The ``result`` label of a task that ended with *outcome*."""
    if outcome is not None:
        return outcome.status.lower()  # finished, failed, false
    return "lease_lost" if task.cancel_reason is CancelReason.LEASE_LOST else "cancelled"


class _Bound:
    # The children of one (worker group, activity): bound once, used for every task.
    __slots__ = ("ack", "duration", "ended", "labels", "slack", "started")

    def __init__(self, metrics: Metrics, queue: str, activity: str) -> None:
        self.labels = (queue, activity)
        self.started = metrics.tasks_started.labels(queue, activity)
        self.duration = metrics.task_duration.labels(queue, activity)
        self.ack = metrics.ack_delay.labels(queue)
        self.slack = metrics.progress_slack.labels(queue)
        self.ended: dict[str, Any] = {}


class _Call:
    __slots__ = ("ok", "retries", "seconds")

    def __init__(self, metrics: Metrics, operation: str) -> None:
        self.ok = metrics.calls.labels(operation, "ok")
        self.seconds = metrics.call_duration.labels(operation)
        self.retries = metrics.retries.labels(operation)


class _Running:
    # A running task's metrics: its children and when it started (its lease is in Leases).
    __slots__ = ("bound", "started")

    def __init__(self, bound: _Bound, started: float) -> None:
        self.bound = bound
        self.started = started


class Metrics(Observer):
    """A worker's Prometheus metrics; :attr:`registry` is what ``/metrics`` serves.

    :meth:`attach` points the gauges at a running supervisor and tells the observer which
    activity serves which task; events before that are counted under activity ``"(none)"``.
    """

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self._clock = time.monotonic
        self.last_call_ok: float | None = None
        """``time.monotonic()`` of the last service call that succeeded."""
        self._routes: dict[tuple[str, str | None], str] = {}
        self._bound: dict[tuple[str, str | None], _Bound] = {}
        self._calls: dict[str, _Call] = {}
        self._running: dict[BaseTask, _Running] = {}
        self._polled: dict[str, float] = {}
        self._heartbeats: dict[str, float] = {}
        self._leases: Leases | None = None
        self._in_flight: Callable[[], float] = lambda: 0.0
        self._capacity = 0
        self._loop_lag: Callable[[], float] = lambda: 0.0

        self.polls = Counter(
            "pipeworker_polls",
            "Polls answered, by worker group and result (task or empty).",
            ["worker_group", "result"],
            registry=registry,
        )
        self.tasks_started = Counter(
            "pipeworker_tasks_started",
            "Tasks whose handler started.",
            ["worker_group", "activity"],
            registry=registry,
        )
        self.tasks_ended = Counter(
            "pipeworker_tasks_ended",
            "Tasks that ended, by result: finished, failed, false (the status sent), "
            "cancelled (by the service) or lease_lost (nothing sent).",
            ["worker_group", "activity", "result"],
            registry=registry,
        )
        self.task_duration = Histogram(
            "pipeworker_task_duration_seconds",
            "Seconds from a handler's start to its task's end (the status sent).",
            ["worker_group", "activity"],
            buckets=_TASK_SECONDS,
            registry=registry,
        )
        Gauge(
            "pipeworker_tasks_in_flight",
            "Tasks running now.",
            registry=registry,
        ).set_function(lambda: self._in_flight())
        Gauge(
            "pipeworker_slots_free",
            "Tasks the worker could still start: max_concurrency minus tasks in flight.",
            registry=registry,
        ).set_function(lambda: self._capacity - self._in_flight())
        self.ack_delay = Histogram(
            "pipeworker_ack_delay_seconds",
            "Seconds from a poll handing a task out to its acknowledgement landing "
            "(the service's window is 2 minutes).",
            ["worker_group"],
            buckets=_ACK_SECONDS,
            registry=registry,
        )
        self.progress_slack = Histogram(
            "pipeworker_progress_slack_seconds",
            "Seconds left on a task's lease when a progress report landed.",
            ["worker_group"],
            buckets=_SLACK_SECONDS,
            registry=registry,
        )
        self.calls = Counter(
            "pipeworker_service_calls",
            "Service call attempts, by operation and outcome "
            "(ok, throttled, transient, lease_lost, rejected, error).",
            ["operation", "outcome"],
            registry=registry,
        )
        self.call_duration = Histogram(
            "pipeworker_service_call_duration_seconds",
            "Seconds per service call attempt (polls include the long-poll hold).",
            ["operation"],
            buckets=_CALL_SECONDS,
            registry=registry,
        )
        self.retries = Counter(
            "pipeworker_service_retries",
            "Service call attempts that repeat a call after a transient failure.",
            ["operation"],
            registry=registry,
        )
        self.pacing_wait = Histogram(
            "pipeworker_pacing_wait_seconds",
            "Seconds a call waited for its rate-limit budget before it was sent (0: none), "
            "while the worker paces its calls.",
            ["operation"],
            buckets=_PACING_SECONDS,
            registry=registry,
        )
        self._paced: dict[str, Any] = {}
        self.heartbeats = Counter(
            "pipeworker_runner_heartbeats",
            "Runner heartbeats that landed, by worker group.",
            ["worker_group"],
            registry=registry,
        )
        self.heartbeat_age = Gauge(
            "pipeworker_runner_heartbeat_age_seconds",
            "Seconds since the last runner heartbeat for the worker group landed.",
            ["worker_group"],
            registry=registry,
        )
        Gauge(
            "pipeworker_event_loop_lag_seconds",
            "How late the event loop ran its last tick, or how long it has been blocked now.",
            registry=registry,
        ).set_function(lambda: self._loop_lag())
        self.lingering_threads = Gauge(
            "pipeworker_lingering_handler_threads",
            "Threads of plain-function handlers that ignored a cancellation and still run after "
            "their task ended; each keeps its slot until it ends.",
            registry=registry,
        )
        self.loop_stalls = Counter(
            "pipeworker_event_loop_stalls",
            "Times the event loop was blocked longer than the stall threshold.",
            registry=registry,
        )

    # -- wiring ------------------------------------------------------------------------------

    def attach(
        self,
        activities: Sequence[Activity],
        *,
        capacity: int,
        leases: Leases,
        in_flight: Callable[[], float],
        loop_lag: Callable[[], float] | None = None,
    ) -> None:
        """Read the gauges from a running worker; name tasks after the activities serving them."""
        self._routes = {(a.queue, a.type): a.name for a in activities}
        self._bound.clear()
        self._running.clear()
        self._polled.clear()
        self._capacity = capacity
        self._leases = leases
        self._in_flight = in_flight
        if loop_lag is not None:
            self._loop_lag = loop_lag

    def detach(self) -> None:
        """The worker stopped: gauges read zero again."""
        self._in_flight = lambda: 0.0
        self._loop_lag = lambda: 0.0
        self._running.clear()
        self._polled.clear()

    def _bind(self, queue: str, kind: str | None) -> _Bound:
        routes = self._routes
        activity = routes.get((queue, kind)) or routes.get((queue, None)) or "(none)"
        bound = self._bound[(queue, kind)] = _Bound(self, queue, activity)
        return bound

    # -- events ------------------------------------------------------------------------------

    def poll_finished(self, queue: str, task: ReceivedTask | None) -> None:
        self.polls.labels(queue, "empty" if task is None else "task").inc()
        if task is not None:
            polled = self._polled
            if len(polled) >= _MAX_UNACKNOWLEDGED:
                del polled[next(iter(polled))]
            polled[task.id] = self._clock()

    def thread_lingering(self, running: bool) -> None:
        if running:
            self.lingering_threads.inc()
        else:
            self.lingering_threads.dec()

    def task_started(self, task: BaseTask) -> None:
        received = task._received
        key = (received.queue, received.type)
        bound = self._bound.get(key) or self._bind(*key)
        bound.started.inc()
        self._running[task] = _Running(bound, self._clock())

    def progress_reported(self, task: BaseTask, canceled: bool) -> None:
        now = self._clock()
        running = self._running.get(task)
        polled = self._polled.pop(task.id, None)
        if polled is not None:
            # The acknowledgement is sent before the handler starts (so before task_started).
            if running is not None:
                bound = running.bound
            else:
                received = task._received
                key = (received.queue, received.type)
                bound = self._bound.get(key) or self._bind(*key)
            bound.ack.observe(now - polled)
            return
        left = self._leases.left(task.id) if self._leases is not None else None
        if running is not None and left is not None:
            running.bound.slack.observe(left)  # read before the scope renews the lease

    def task_finished(self, task: BaseTask, outcome: Outcome | None) -> None:
        self._polled.pop(task.id, None)
        running = self._running.pop(task, None)
        if running is None:
            return
        bound = running.bound
        result = task_result(task, outcome)
        counter = bound.ended.get(result)
        if counter is None:
            counter = bound.ended[result] = self.tasks_ended.labels(*bound.labels, result)
        counter.inc()
        bound.duration.observe(self._clock() - running.started)

    def heartbeat_sent(self, queue: str, terminate: bool) -> None:
        self.heartbeats.labels(queue).inc()
        if queue not in self._heartbeats:
            beats = self._heartbeats
            clock = self._clock
            self.heartbeat_age.labels(queue).set_function(lambda: clock() - beats[queue])
        self._heartbeats[queue] = self._clock()

    def call_finished(
        self, operation: str, error: BaseException | None, seconds: float, retry: bool
    ) -> None:
        call = self._calls.get(operation)
        if call is None:
            call = self._calls[operation] = _Call(self, operation)
        if error is None:
            call.ok.inc()
            self.last_call_ok = self._clock()
        else:
            self.calls.labels(operation, call_outcome(error)).inc()
        call.seconds.observe(seconds)
        if retry:
            call.retries.inc()

    def call_failed(self, error: PipeworkerError) -> None:
        pass  # counted by call_finished, with the operation

    def call_paced(self, operation: str, seconds: float) -> None:
        child = self._paced.get(operation)
        if child is None:
            child = self._paced[operation] = self.pacing_wait.labels(operation)
        child.observe(seconds)
