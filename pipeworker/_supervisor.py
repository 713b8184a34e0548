"""Structured concurrency for one running worker: pollers, task scopes, heartbeat, shutdown.

::

    run()
    └── TaskGroup "tasks"
        ├── heartbeat loop               every heartbeat_interval, one call per worker group
        ├── grace enforcer               after stop(): waits shutdown_grace, cancels handlers
        ├── poll, then task scope        one PollForTask; the task it receives runs in place:
        │   │                            acknowledge, report progress, send the final status
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
import contextvars
import logging
import random
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, cast

from pipeworker import _retry
from pipeworker._events import Hooks, Observer, observe_connection
from pipeworker._pacing import PacedConnection, Pacer, resolve_rate_limits
from pipeworker.exceptions import (
    LeaseLost,
    PipeworkerError,
    PreconditionNotMet,
    ServiceError,
    TaskFailed,
)
from pipeworker.services.base import Connection, ConnectionSettings, Outcome, ReceivedTask
from pipeworker.task import Task
from pipeworker.worker import PROGRESS_JITTER, in_handler

if TYPE_CHECKING:
    from pipeworker.worker import Activity, WorkerConfig

__all__ = ["SHUTDOWN_ERROR_ID", "Supervisor", "outcome_of"]

log = logging.getLogger("pipeworker.supervisor")

SHUTDOWN_ERROR_ID = "RunnerShutdown"
"""errorId of a task cancelled because its runner shut down; the service retries it."""
NO_HANDLER_ERROR_ID = "NoHandler"

CANCELED_BY_SERVICE = "canceled by the service"
SHUTTING_DOWN = "the task runner is shutting down"
FORCED = "the task runner was forced to stop"

MAX_POLLS_PER_QUEUE = 64
"""The most polls kept in flight on one worker group (never more than the free slots).

Several polls per group let a busy group deliver more than one task per round trip; the cap keeps
a worker with thousands of slots from holding thousands of idle long polls open."""


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def outcome_of(error: BaseException | None) -> Outcome:
    """The outcome of a handler that returned (None) or raised *error*."""
    if error is None:
        return Outcome.finished()
    if isinstance(error, TaskFailed):
        return Outcome.failed(error.error_id, error.message)
    if isinstance(error, PreconditionNotMet):
        return Outcome.false(str(error))
    trace = "".join(traceback.format_exception(error))
    return Outcome.failed(type(error).__name__, str(error), trace)


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
        self._past_deadline = False
        self.stopped = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._active = 0  # task scopes alive, including ones only handing a task back
        self._running: dict[Task, asyncio.Task[Outcome | None]] = {}
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._waiting_for_slot: set[str] = set()
        self._tasks: asyncio.TaskGroup | None = None
        self._connection: Connection | None = None
        self._pacer: Pacer | None = None
        self._task_class = config.service.task_class
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
                await self._run_task(received)
        finally:
            if not released:
                self._release()

    def _release(self) -> None:
        # Called exactly once per poll started: gives back its slot and its count.
        self._slots.release()
        self._active -= 1
        if not self._active:
            self._idle.set()

    # -- one task -------------------------------------------------------------------------------

    async def _run_task(self, received: ReceivedTask) -> None:
        # Runs in the asyncio task of the poll that received it; _poll gives the slot back.
        connection = self._connection
        assert connection is not None
        task = self._task_class(received, connection)
        handler: asyncio.Task[Outcome | None] | None = None
        try:
            routes = self._routes[received.queue]
            activity = routes.get(received.type) or routes.get(None)
            if self._past_deadline:
                log.info(
                    "task %s received after the grace period: handed back",
                    task.id,
                    extra=task.log_extra(),
                )
                await self._finish(task, Outcome.failed(SHUTDOWN_ERROR_ID, SHUTTING_DOWN))
                return
            if activity is None:
                message = f"no handler for activity type {received.type!r} on {received.queue!r}"
                log.error("task %s: %s", task.id, message, extra=task.log_extra())
                await self._finish(task, Outcome.failed(NO_HANDLER_ERROR_ID, message))
                return
            handler = asyncio.create_task(self._invoke(activity, task), name="pipeworker-handler")
            self._running[task] = handler
            log.info("task %s started (%s)", task.id, activity.name, extra=task.log_extra())
            self._observer.task_started(task)
            await self._keep_lease(task, handler)
            outcome = await handler
            if outcome is not None and task._pending and not await self._report(task, handler):
                outcome = None  # the last fields are sent first; the answer took the task back
            if task.cancel_reason not in (None, SHUTTING_DOWN):
                outcome = None  # the service took the task back: nothing more may be sent
                if task.cancel_reason == CANCELED_BY_SERVICE:
                    await self._confirm_cancel(task)  # SWF answers it; Data Pipeline does not
            if outcome is not None:
                await self._finish(task, outcome)
            self._observer.task_finished(task, outcome)
            try:
                await self._hooks.on_task_end(task, outcome)
            except Exception:
                log.exception("on_task_end() failed for task %s", task.id, extra=task.log_extra())
        except asyncio.CancelledError:
            # Only a forced stop cancels this scope; the lease runs out and the service retries.
            if handler is not None:
                task._cancel(FORCED)
                handler.cancel(FORCED)
            raise
        finally:
            self._running.pop(task, None)

    async def _invoke(self, activity: Activity, task: Task) -> Outcome | None:
        in_handler.set(True)
        try:
            await self._hooks.on_task_start(task)
            if activity.is_async:
                result = await activity.handler(task)
            else:
                loop = asyncio.get_running_loop()
                context = contextvars.copy_context()
                result = await loop.run_in_executor(
                    self._executor, context.run, activity.handler, task
                )
        except asyncio.CancelledError as exc:
            reason = task.cancel_reason
            if reason is None:
                # Not our cancellation: the handler cancelled itself; report it as a failure.
                return outcome_of(exc)
            if reason == SHUTTING_DOWN:
                return Outcome.failed(SHUTDOWN_ERROR_ID, f"{SHUTTING_DOWN}; the service retries it")
            if reason == FORCED:
                raise
            return None  # cancelled by the service or lease lost: nothing may be sent
        except (TaskFailed, PreconditionNotMet) as exc:
            return outcome_of(exc)  # the handler's own choice; the status line logs it
        except Exception as exc:
            if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
                # Start the trace at the handler: this frame is the same in every report.
                exc.__traceback__ = exc.__traceback__.tb_next
            # Unexpected: the operator needs the whole trace, not only the truncated one sent.
            log.warning(
                "task %s failed: %s: %s",
                task.id,
                type(exc).__name__,
                exc,
                exc_info=exc,
                extra=task.log_extra(),
            )
            return outcome_of(exc)
        return Outcome.finished(result)  # services without results (Data Pipeline) ignore it

    async def _keep_lease(self, task: Task, handler: asyncio.Task[Outcome | None]) -> None:
        """Acknowledge at once, then report progress until the handler ends or must stop."""
        received = task._received
        interval = self._config.progress_interval
        if received.lease_seconds is not None:
            # A pipeline may set a reportProgressTimeout shorter than the worker's cadence:
            # report at least three times per lease so one lost report does not lose it.
            interval = min(interval, received.lease_seconds / 3)
        first = True
        # One waiter per tick, woken by a timer or by the handler's end; cheaper per task than
        # asyncio.wait(), which builds a coroutine, sets and callbacks on every tick.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] | None = None

        def handler_done(_: object) -> None:
            if waiter is not None:
                _wake(waiter)

        handler.add_done_callback(handler_done)
        try:
            while True:
                if not await self._report(task, handler, first):
                    return
                first = False
                if handler.done():
                    return
                waiter = loop.create_future()
                delay = interval * random.uniform(1 - PROGRESS_JITTER, 1 + PROGRESS_JITTER)
                timer = loop.call_later(delay, _wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                if handler.done():
                    return
        finally:
            handler.remove_done_callback(handler_done)

    async def _report(
        self, task: Task, handler: asyncio.Task[Outcome | None], first: bool = False
    ) -> bool:
        """Send the acknowledgement or a progress report; False once the lease is over."""
        connection = self._connection
        assert connection is not None
        received = task._received
        fields = None if first else task._take_pending()
        try:
            if first:
                canceled = await _retry.call(
                    _retry.PROGRESS,
                    lambda: connection.acknowledge(received),
                    on_retry=self._call_failed,
                )
            else:
                canceled = await _retry.call(
                    _retry.PROGRESS,
                    lambda: connection.report_progress(received, fields),
                    on_retry=self._call_failed,
                )
        except LeaseLost as exc:
            self._cancel(task, handler, f"lease lost: {exc}")
            log.warning("task %s: lease lost (%s)", task.id, exc, extra=task.log_extra())
            return False
        except ServiceError as exc:
            # The next report is the retry; keep the unsent fields for it.
            if fields:
                task._pending = {**fields, **(task._take_pending() or {})}
            self._call_failed(exc)
            log.warning("task %s: progress report failed: %s", task.id, exc, extra=task.log_extra())
            return True
        self._observer.progress_reported(task, canceled)
        if canceled:
            self._cancel(task, handler, CANCELED_BY_SERVICE)
            log.info("task %s cancelled by the service", task.id, extra=task.log_extra())
            return False
        return True

    def _cancel(self, task: Task, handler: asyncio.Task[Outcome | None], reason: str) -> None:
        task._cancel(reason)
        handler.cancel(reason)

    async def _confirm_cancel(self, task: Task) -> None:
        connection = self._connection
        assert connection is not None
        received = task._received
        try:
            await _retry.call(
                _retry.STATUS, lambda: connection.canceled(received), on_retry=self._call_failed
            )
        except ServiceError as exc:
            log.warning(
                "task %s: cancellation not confirmed: %s", task.id, exc, extra=task.log_extra()
            )

    async def _finish(self, task: Task, outcome: Outcome) -> None:
        connection = self._connection
        assert connection is not None
        received = task._received
        try:
            await _retry.call(
                _retry.STATUS,
                lambda: connection.finish(received, outcome),
                on_retry=self._call_failed,
            )
        except LeaseLost as exc:
            log.warning(
                "task %s: lease lost before its %s status landed (%s)",
                task.id,
                outcome.status,
                exc,
                extra=task.log_extra(),
            )
        except ServiceError as exc:
            log.error(
                "task %s: %s status rejected: %s",
                task.id,
                outcome.status,
                exc,
                extra=task.log_extra(),
            )
        else:
            detail = f" ({outcome.error_id}: {outcome.message})" if outcome.error_id else ""
            log.info("task %s %s%s", task.id, outcome.status, detail, extra=task.log_extra())

    # -- background -------------------------------------------------------------------------------

    async def _enforce_grace(self) -> None:
        await self._stopping.wait()
        await asyncio.sleep(self._config.shutdown_grace)
        self._past_deadline = True
        for task, handler in list(self._running.items()):
            if not handler.done():
                log.warning(
                    "task %s still running after the grace period: cancelling it",
                    task.id,
                    extra=task.log_extra(),
                )
                self._cancel(task, handler, SHUTTING_DOWN)

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
