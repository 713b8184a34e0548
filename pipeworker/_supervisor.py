"""Structured concurrency for one running worker: pollers, task scopes, heartbeat, shutdown.

::

    run()
    ├── shutdown clock               after stop(): polls by the service's policy, the grace,
    │                                the hard deadline
    ├── heartbeat loop               every heartbeat_interval, one call per worker group
    ├── one poller per queue         starts polls on free slots, as many as the queue earns
    └── poll, then task scope        one poll; the task it receives runs in place
        │                            (pipeworker._scope): acknowledge, report progress,
        │                            send the final status
        └── handler task             the user's handler (a daemon thread for plain functions)

**Slots.** A slot is taken before a poll and kept by the task the poll returns, so there are
never more polls in flight than free slots and a received task starts at once. A plain-function
handler that ignores its cancellation keeps its slot until its thread really ends.

**Polls scale with the work** (as Temporal's poller autoscaling does): each queue starts with one
poll in flight; every poll that returns a task allows one more (up to the free slots and
``MAX_POLLS_PER_QUEUE``), every poll that comes back empty one fewer, down to one. An idle queue
therefore holds one poll, and one slot, and never starves a busy one.

**A stop is bounded**: no new polls; polls in flight follow the service's policy (Data Pipeline:
aborted at once; SWF: they may return until the grace ends); running tasks get
``shutdown_grace``, then their handlers are cancelled and the tasks reported FAILED with
:data:`SHUTDOWN_ERROR_ID`; status calls get ``shutdown_hard_deadline`` more. Then whatever is
still running (handlers that ignore cancellation, statuses the service never took) is named in
the log and left behind, and :meth:`Supervisor.run` returns. A forced stop skips the grace.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pipeworker import _retry
from pipeworker._context import NO_CONTEXT, inside_worker
from pipeworker._events import Hooks, Observer, observe_connection
from pipeworker._lease import Leases
from pipeworker._pacing import PacedConnection, Pacer, resolve_rate_limits
from pipeworker._scope import SHUTDOWN_ERROR_ID, TaskScopes, outcome_of
from pipeworker._shutdown import FORCED_PATIENCE, Stop
from pipeworker.exceptions import PipeworkerError
from pipeworker.services.base import Connection, ConnectionSettings, Outcome
from pipeworker.task import BaseTask, CancelReason

if TYPE_CHECKING:
    from pipeworker._config import WorkerConfig
    from pipeworker.worker import Activity

# SHUTDOWN_ERROR_ID and outcome_of are re-exported from pipeworker._scope.
__all__ = ["MAX_POLLS_PER_QUEUE", "SHUTDOWN_ERROR_ID", "Supervisor", "outcome_of"]

log = logging.getLogger("pipeworker.supervisor")

T = TypeVar("T")

MAX_POLLS_PER_QUEUE = 64
"""The most polls kept in flight on one queue (never more than the free slots).

Several polls per queue let a busy queue deliver more than one task per round trip; the cap keeps
a worker with thousands of slots from holding thousands of long polls open."""


@dataclass(slots=True)
class _Queue:
    """One queue's polls: how many are in flight and how many it has earned."""

    name: str
    cap: int
    in_flight: int = 0
    target: int = 1
    room: asyncio.Event = field(default_factory=asyncio.Event)
    healthy: asyncio.Event = field(default_factory=asyncio.Event)
    job_name: str = field(init=False)  # one string for every poll's asyncio task

    def __post_init__(self) -> None:
        self.job_name = f"pipeworker-poll-{self.name}"

    def returned(self, got_task: bool) -> None:
        self.in_flight -= 1
        if got_task:
            self.target = min(self.target + 1, self.cap)
        else:
            self.target = max(self.target - 1, 1)
        self.room.set()


class Supervisor:
    """Runs one worker's activities until stopped; created afresh for each ``serve()``.

    Attributes:
        left_behind: after :meth:`run`, what a stop gave up on: handlers that ignored their
            cancellation and statuses that were not delivered, one line each.
    """

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
        cap = min(config.max_concurrency, MAX_POLLS_PER_QUEUE)
        self._queues = {name: _Queue(name, cap) for name in self._routes}
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._stop = Stop()
        self._stopping = self._stop.asked
        self._forced = self._stop.forced
        self.stopped = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._active = 0  # polls and task scopes alive, and threads still holding a slot
        self._scopes: TaskScopes | None = None
        # Every running task's handler, filled by the task scopes (also read by _health).
        self._running: dict[BaseTask, asyncio.Task[Outcome | None]] = {}
        # Every running task's lease: the task scopes keep them; pacing and metrics read them.
        self.leases = Leases(config.service.lease_seconds, config.service.ack_window)
        self._pollers: list[asyncio.Task[None]] = []
        self._polling: set[asyncio.Task[Any]] = set()  # poll tasks still in their poll
        self._aborted: set[asyncio.Task[Any]] = set()
        self._jobs: set[asyncio.Task[Any]] = set()  # every poll-then-scope task
        self._job_done_callback = self._job_done  # one bound method for every job
        self._lingering: set[asyncio.Future[Any]] = set()  # threads of ended tasks
        self._connection: Connection | None = None
        self._pacer: Pacer | None = None
        self.left_behind = self._stop.left_behind

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
        for poller in self._pollers:
            poller.cancel()  # pollers only ever wait for room or a slot: nothing is lost
        if self._config.service.poll_stop == "abort":
            self._abort_polls()

    def force(self) -> None:
        """Stop now: running handlers are cancelled and nothing more is sent for them."""
        if self._forced.is_set():
            return
        log.warning("forced stop: running tasks are abandoned; their leases run out")
        self.stop()
        self._forced.set()
        self._end_grace(CancelReason.FORCED)

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
        inside_worker.set(True)  # hooks and handlers calling stop() must not wait for themselves
        config = self._config
        settings = ConnectionSettings(
            region=config.region,
            endpoint_url=config.endpoint_url,
            taskrunner_id=config.taskrunner_id,
            hostname=config.hostname,
            queues=list(self._queues),
            max_concurrency=config.max_concurrency,
        )
        clock = asyncio.create_task(
            self._stop.clock(
                self._idle,
                grace=config.shutdown_grace,
                hard_deadline=config.shutdown_hard_deadline,
                end_grace=lambda: self._end_grace(CancelReason.SHUTDOWN),
                abandon=self._abandon,
            ),
            name="pipeworker-shutdown",
        )
        try:
            async with config.service.connect(settings) as connection:
                self._connection = observe_connection(connection, self._observer)
                self._pace()
                self._scopes = TaskScopes(
                    self._connection,
                    routes=self._routes,
                    progress_interval=config.progress_interval,
                    cancel_patience=config.shutdown_hard_deadline,
                    hooks=self._hooks,
                    observer=self._observer,
                    task_class=config.service.task_class,
                    call_failed=self._call_failed,
                    running=self._running,
                    give_up=self._stop.give_up,
                    leases=self.leases,
                )
                if await self._stop.bounded("on_startup()", self._hooks.on_startup):
                    try:
                        await self._supervise(ready)
                    finally:
                        await self._stop.bounded(
                            "on_shutdown()",
                            self._hooks.on_shutdown,
                            limit=config.shutdown_hard_deadline,
                        )
        finally:
            clock.cancel()
            if self._pacer is not None:
                self._pacer.close()
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
        paced: Any = PacedConnection(self._connection, pacer, self.leases)
        self._connection = paced

    async def _supervise(self, ready: asyncio.Event | None) -> None:
        config = self._config
        tasks = "task" if config.max_concurrency == 1 else "tasks"
        log.info(
            "runner %s on %s polling %s (up to %d %s at once)",
            config.taskrunner_id,
            config.hostname,
            ", ".join(self._queues),
            config.max_concurrency,
            tasks,
        )
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="pipeworker-heartbeat")
        try:
            if not self._stopping.is_set():
                for queue in self._queues.values():
                    queue.healthy.set()
                    self._pollers.append(
                        asyncio.create_task(
                            self._poll_loop(queue), name=f"pipeworker-poller-{queue.name}"
                        )
                    )
            if ready is not None:
                ready.set()
            await self._stopping.wait()
            if self._pollers:
                await asyncio.wait(self._pollers)
            await self._idle.wait()
        finally:
            heartbeat.cancel()
            for poller in self._pollers:
                poller.cancel()
            leftovers = [job for job in self._jobs if not job.done()]
            for job in leftovers:
                job.cancel()
            if leftovers:
                # Our own code unwinds at once; user code that swallows cancellation is not
                # waited for (its task was already named by the shutdown clock).
                await asyncio.wait(leftovers, timeout=FORCED_PATIENCE)
        log.info("runner %s stopped", config.taskrunner_id)

    # -- polling ---------------------------------------------------------------------------------

    async def _poll_loop(self, queue: _Queue) -> None:
        # Starts polls on *queue* while it has room (see _Queue) and a slot is free. Each poll
        # holds a slot; the task it receives runs in the poll's own asyncio task, so a task
        # received starts at once and costs no extra task to hand over.
        slots = self._slots
        while True:
            while queue.in_flight >= queue.target:
                queue.room.clear()
                await queue.room.wait()
            await queue.healthy.wait()  # a rejected poll pauses the whole queue, not one poll
            await slots.acquire()
            # Counted before the poll starts, so the shutdown cannot see "idle" while a task
            # from the last poll is about to begin.
            queue.in_flight += 1
            self._take()
            job = asyncio.create_task(self._poll(queue), name=queue.job_name)
            self._jobs.add(job)
            job.add_done_callback(self._job_done_callback, context=NO_CONTEXT)
            # Let other queues' loops take free slots in turn.
            await asyncio.sleep(0)

    def _job_done(self, job: asyncio.Task[Any]) -> None:
        self._jobs.discard(job)
        if not job.cancelled() and job.exception() is not None:
            error = job.exception()
            log.error("internal error in a task scope: %r", error, exc_info=error)

    async def _poll(self, queue: _Queue) -> None:
        # Owns one slot and one count of active work, taken by _poll_loop; gives both back
        # (or hands them to a handler thread that outlives its task).
        connection = self._connection
        assert connection is not None
        this = asyncio.current_task()
        assert this is not None
        keep_slot: asyncio.Future[Any] | None = None
        released = False
        received = None
        self._polling.add(this)
        try:
            try:
                if self._stopping.is_set():
                    # Created before the stop but first run after it: too late to be aborted
                    # with the polls in flight, so it must not go out at all ("no new polls"),
                    # or the stop would wait out the grace for its hold.
                    return
                received = await _retry.call(
                    _retry.POLL,
                    # A partial, not a lambda: the lambda's cells would live as long as the task.
                    functools.partial(connection.poll, queue.name),
                    stop=self._stopping,
                    on_retry=self._call_failed,
                )
            except asyncio.CancelledError:
                if this in self._aborted and this.uncancel() == 0:
                    return  # aborted by the stop (see the service's poll_stop policy)
                raise
            except PipeworkerError as exc:
                if self._stopping.is_set():
                    return
                log.error(
                    "poll of %r failed: %s", queue.name, exc, extra={"worker_group": queue.name}
                )
                self._call_failed(exc)
                queue.healthy.clear()
                self._release()  # the slot is free during the pause; the count goes with it
                released = True
                try:
                    await _retry.pause(_retry.POLL.maximum, self._stopping)
                finally:
                    queue.healthy.set()
                return
            finally:
                self._polling.discard(this)
                self._aborted.discard(this)
                queue.returned(got_task=received is not None)
            self._observer.poll_finished(queue.name, received)
            if received is not None:
                assert self._scopes is not None
                keep_slot = await self._scopes.run(received)
                if keep_slot is not None:
                    self._linger(keep_slot)
        finally:
            if keep_slot is None and not released:
                self._release()

    def _abort_polls(self) -> None:
        for job in list(self._polling):
            if job not in self._aborted:
                self._aborted.add(job)
                job.cancel("stop: poll aborted")

    def _linger(self, thread: asyncio.Future[Any]) -> None:
        # A plain-function handler's thread outlived its task: its slot stays taken until the
        # thread really ends, so the worker never polls for tasks it cannot start.
        self._lingering.add(thread)
        self._observer.thread_lingering(True)

        def ended(_: object) -> None:
            self._lingering.discard(thread)
            self._observer.thread_lingering(False)
            self._release()

        thread.add_done_callback(ended)

    def _take(self) -> None:
        self._active += 1
        self._idle.clear()

    def _release(self) -> None:
        # Called exactly once per poll started: gives back its slot and its count.
        self._slots.release()
        self._active -= 1
        if not self._active:
            self._idle.set()

    # -- shutdown --------------------------------------------------------------------------------

    def _end_grace(self, reason: CancelReason) -> None:
        # Polls still in flight are aborted (SWF-style polls were drained until now), and
        # running handlers cancelled: with SHUTDOWN their tasks are reported FAILED; with
        # FORCED nothing more is sent for them.
        self._stop.grace_over.set()
        self._abort_polls()
        scopes = self._scopes
        if scopes is not None:
            scopes.past_deadline = True
            for task, handler in list(self._running.items()):
                if not handler.done():
                    if reason is CancelReason.SHUTDOWN:
                        log.warning(
                            "task %s still running after the grace period: cancelling it",
                            task.id,
                            extra=task.log_extra(),
                        )
                    scopes.cancel(task, handler, reason)
        if reason is CancelReason.FORCED:
            for job in list(self._jobs):
                job.cancel()

    def _abandon(self) -> None:
        # The hard deadline: name what is still running, stop waiting for it.
        scopes = self._scopes
        if scopes is not None:
            for task, handler in list(self._running.items()):
                if not handler.done():
                    line = (
                        f"handler {scopes.handler_name(task)} of task {task.id} ignores its "
                        "cancellation"
                    )
                    self.left_behind.append(line)
                    log.warning("%s: left behind", line, extra=task.log_extra())
            for task, outcome in list(scopes.finishing.items()):
                line = f"task {task.id}: its {outcome.status} status was not delivered"
                self.left_behind.append(line)
                log.error("%s before the stop's deadline", line, extra=task.log_extra())
        for _ in self._lingering:
            line = "a plain-function handler's thread is still running after its task ended"
            self.left_behind.append(line)
            log.warning("%s: left behind", line)
        for job in list(self._jobs):
            job.cancel()
        self._idle.set()

    # -- background -------------------------------------------------------------------------------

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
                        stop=self._stopping,
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
