"""Structured concurrency for one running worker: pollers, task scopes, heartbeat, shutdown.

::

    run()
    └── TaskGroup "tasks"
        ├── heartbeat loop               every heartbeat_interval, one call per worker group
        ├── grace enforcer               after stop(): waits shutdown_grace, cancels handlers
        ├── poll, then task scope        one PollForTask; the task it receives runs in place
        │   │                            (pipeworker._scope): acknowledge, report progress,
        │   │                            send the final status
        │   └── handler task             the user's handler (a thread for plain functions)
        └── TaskGroup "pollers"          one loop per worker group, starting polls on free slots

A slot is taken before a poll and kept by the task the poll returns, so there are never more
polls in flight than free slots and a received task starts at once. Up to the free slots (at
most ``MAX_POLLS_PER_QUEUE`` per worker group) are polling at once, so a busy group is not
limited to one task per round trip. A stop is two-phase: pollers waiting for a slot end at once,
polls in flight may return (their task runs, or is handed back FAILED once the grace period is
over); running tasks get ``shutdown_grace``; then their handlers are cancelled and the tasks
reported FAILED with :data:`SHUTDOWN_ERROR_ID`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, cast

from pipeworker import _retry
from pipeworker._events import Hooks, Observer, observe_connection
from pipeworker._pacing import PacedConnection, Pacer, resolve_rate_limits
from pipeworker._scope import SHUTDOWN_ERROR_ID, SHUTTING_DOWN, TaskScopes, outcome_of
from pipeworker.exceptions import PipeworkerError
from pipeworker.services.base import Connection, ConnectionSettings, Outcome
from pipeworker.task import Task

if TYPE_CHECKING:
    from pipeworker.worker import Activity, WorkerConfig

# SHUTDOWN_ERROR_ID and outcome_of are re-exported from pipeworker._scope.
__all__ = ["SHUTDOWN_ERROR_ID", "Supervisor", "outcome_of"]

log = logging.getLogger("pipeworker.supervisor")

MAX_POLLS_PER_QUEUE = 64
"""The most polls kept in flight on one worker group (never more than the free slots).

Several polls per group let a busy group deliver more than one task per round trip; the cap keeps
a worker with thousands of slots from holding thousands of idle long polls open."""


class Supervisor:
    """Runs one worker's activities until stopped; created afresh for each ``serve()``."""

    def __init__(
        self,
        config: WorkerConfig,
        activities: Sequence[Activity],
        *,
        hooks: Hooks,
        observer: Observer | None = None,
    ) -> None:
        self._config = config
        self._hooks = hooks
        self._observer = observer or Observer()
        self._routes: dict[str, dict[str | None, Activity]] = {}
        for activity in activities:
            self._routes.setdefault(activity.queue, {})[activity.type] = activity
        self._queues = list(self._routes)
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._active = 0  # task scopes alive, including ones only handing a task back
        self._scopes: TaskScopes | None = None
        # Every running task's handler, filled by the task scopes (also read by _health).
        self._running: dict[Task, asyncio.Task[Outcome | None]] = {}
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._waiting_for_slot: set[str] = set()
        self._tasks: asyncio.TaskGroup | None = None
        self._connection: Connection | None = None
        self._pacer: Pacer | None = None
        self._executor: ThreadPoolExecutor | None = None
        if any(not activity.is_async for activity in activities):
            self._executor = ThreadPoolExecutor(
                max_workers=config.max_concurrency, thread_name_prefix="pipeworker-handler"
            )

    # -- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Start a graceful stop (idempotent); returns at once."""
        if self._stopping.is_set():
            return
        log.info(
            "stopping: no new polls; running tasks have %gs to finish",
            self._config.shutdown_grace,
        )
        self._stopping.set()
        if self._pacer is not None:
            self._pacer.stop_polls()  # a poll waiting for its budget is never sent
        for queue in self._waiting_for_slot:
            self._pollers[queue].cancel()

    @property
    def running(self) -> int:
        """How many tasks are running now."""
        return len(self._running)

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for."""
        return self._stopping.is_set()

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Connect, poll and run tasks until stopped; set *ready* once polling is armed."""
        config = self._config
        settings = ConnectionSettings(
            region=config.region,
            endpoint_url=config.endpoint_url,
            taskrunner_id=config.taskrunner_id,
            hostname=config.hostname,
            queues=self._queues,
            max_concurrency=config.max_concurrency,
        )
        try:
            async with config.service.connect(settings) as connection:
                self._connection = observe_connection(connection, self._observer)
                self._pace()
                self._scopes = TaskScopes(
                    self._connection,
                    routes=self._routes,
                    progress_interval=config.progress_interval,
                    hooks=self._hooks,
                    observer=self._observer,
                    task_class=config.service.task_class,
                    executor=self._executor,
                    call_failed=self._call_failed,
                    running=self._running,
                )
                await self._hooks.on_startup()
                try:
                    await self._supervise(ready)
                finally:
                    try:
                        await self._hooks.on_shutdown()
                    except Exception:
                        log.exception("on_shutdown() failed")
        finally:
            if self._pacer is not None:
                self._pacer.close()
            if self._executor is not None:
                # Threads cannot be interrupted; a cancelled sync handler is left to end alone.
                self._executor.shutdown(wait=False, cancel_futures=True)
            self.stopped.set()

    def _pace(self) -> None:
        # Every call then waits for its share of the account's budget (see _pacing).
        config = self._config
        limits = resolve_rate_limits(config.rate_limits, config.service, config.endpoint_url)
        if limits is None:
            return
        self._pacer = pacer = Pacer(limits, self._observer)
        if self._stopping.is_set():
            pacer.stop_polls()
        pacer.check_capacity(config.max_concurrency, config.service.lease_seconds)
        log.info(
            "pacing calls by the account's rate limits: %s",
            ", ".join(sorted({f"{b.name} {b.limit.rate:g}/s" for b in pacer.budgets.values()})),
        )
        self._connection = cast(
            Connection, PacedConnection(self._connection, pacer, config.service.lease_seconds)
        )

    async def _supervise(self, ready: asyncio.Event | None) -> None:
        log.info(
            "runner %s on %s polling %s (up to %d tasks at once)",
            self._config.taskrunner_id,
            self._config.hostname,
            ", ".join(self._queues),
            self._config.max_concurrency,
        )
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            background = [
                tasks.create_task(self._heartbeat_loop(), name="pipeworker-heartbeat"),
                tasks.create_task(self._enforce_grace(), name="pipeworker-grace"),
            ]
            async with asyncio.TaskGroup() as pollers:
                for queue in self._queues:
                    self._pollers[queue] = pollers.create_task(
                        self._poll_loop(queue), name=f"pipeworker-poll-{queue}"
                    )
                if ready is not None:
                    ready.set()
            await self._idle.wait()
            for job in background:
                job.cancel()
        log.info("runner %s stopped", self._config.taskrunner_id)

    # -- polling ---------------------------------------------------------------------------------

    async def _poll_loop(self, queue: str) -> None:
        # Starts polls on *queue* while slots are free, up to MAX_POLLS_PER_QUEUE at once. Each
        # poll holds a slot; the task it receives runs in the poll's own asyncio task, so a
        # task received starts at once and costs no extra task to hand over.
        assert self._tasks is not None
        tasks = self._tasks
        stopping = self._stopping
        slots = self._slots
        permits = asyncio.Semaphore(min(self._config.max_concurrency, MAX_POLLS_PER_QUEUE))
        healthy = asyncio.Event()
        healthy.set()
        while not stopping.is_set():
            self._waiting_for_slot.add(queue)
            try:
                await healthy.wait()  # a rejected poll pauses the whole group, not one poll
                await permits.acquire()
                try:
                    await slots.acquire()
                except BaseException:
                    permits.release()
                    raise
            finally:
                self._waiting_for_slot.discard(queue)
            if stopping.is_set():
                slots.release()
                permits.release()
                return
            # Counted before the poll starts, so the shutdown cannot see "idle" while a task
            # from the last poll is about to begin.
            self._active += 1
            self._idle.clear()
            tasks.create_task(self._poll(queue, permits, healthy), name=f"pipeworker-poll-{queue}")
            # Let other worker groups' loops take free slots in turn.
            await asyncio.sleep(0)

    async def _poll(self, queue: str, permits: asyncio.Semaphore, healthy: asyncio.Event) -> None:
        # Owns one slot and one count of active scopes, taken by _poll_loop; gives both back.
        connection = self._connection
        assert connection is not None
        stopping = self._stopping
        released = False
        try:
            try:
                received = await _retry.call(
                    _retry.POLL,
                    lambda: connection.poll(queue),
                    stop=stopping,
                    on_retry=self._call_failed,
                )
            except PipeworkerError as exc:
                if stopping.is_set():
                    return
                log.error("poll of %r failed: %s", queue, exc, extra={"worker_group": queue})
                self._call_failed(exc)
                released = True
                self._release()
                healthy.clear()
                try:
                    await _retry.pause(_retry.POLL.maximum, stopping)
                finally:
                    healthy.set()
                return
            finally:
                permits.release()
            self._observer.poll_finished(queue, received)
            if received is not None:
                assert self._scopes is not None
                await self._scopes.run(received)
        finally:
            if not released:
                self._release()

    def _release(self) -> None:
        # Called exactly once per poll started: gives back its slot and its count.
        self._slots.release()
        self._active -= 1
        if not self._active:
            self._idle.set()

    # -- background -------------------------------------------------------------------------------

    async def _enforce_grace(self) -> None:
        await self._stopping.wait()
        await asyncio.sleep(self._config.shutdown_grace)
        scopes = self._scopes
        assert scopes is not None
        scopes.past_deadline = True
        for task, handler in list(self._running.items()):
            if not handler.done():
                log.warning(
                    "task %s still running after the grace period: cancelling it",
                    task.id,
                    extra=task.log_extra(),
                )
                scopes.cancel(task, handler, SHUTTING_DOWN)

    async def _heartbeat_loop(self) -> None:
        connection = self._connection
        assert connection is not None
        if not connection.runner_heartbeat:
            return  # a service without one (SWF)
        while True:
            for queue in self._queues:
                try:
                    terminate = await _retry.call(
                        _retry.HEARTBEAT,
                        lambda queue=queue: connection.heartbeat(queue),  # type: ignore[misc]
                        on_retry=self._call_failed,
                    )
                except PipeworkerError as exc:
                    # Never fatal: the next beat is the retry.
                    self._call_failed(exc)
                    log.warning(
                        "runner heartbeat for %r failed: %s",
                        queue,
                        exc,
                        extra={"worker_group": queue},
                    )
                    continue
                self._observer.heartbeat_sent(queue, terminate)
                if terminate and not self._stopping.is_set():
                    log.info("the service asked runner %s to terminate", self._config.taskrunner_id)
                    self.stop()
            await asyncio.sleep(self._config.heartbeat_interval)

    def _call_failed(self, error: BaseException) -> None:
        if isinstance(error, PipeworkerError):
            self._observer.call_failed(error)
