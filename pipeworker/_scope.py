"""One task's scope, from the poll that received it to its final status.

::

    TaskScopes.run(received)         in the asyncio task of the poll that received it
    ├── acknowledge                  before the handler starts: a handler that blocks the loop
    │                                at its start cannot make the task miss its window
    ├── handler task                 the user's handler (a daemon thread for plain functions)
    ├── lease loop (_Ticks)          report progress every interval until the handler ends
    ├── _report                      the last pending details, if the handler left any
    └── _finish / _confirm_cancel    the final status, or SWF's answer to a cancellation

The supervisor (``pipeworker._supervisor``) owns the slots, polls and shutdown; this module owns
what happens to one task, and decides its outcome in one place (:func:`outcome_of`). Whatever a
handler does (raise anything, ``sys.exit()``, return a coroutine from a plain function, ignore
cancellation) ends its own task and nothing else.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pipeworker import _retry
from pipeworker._cadence import MIN_INTERVAL, PROGRESS_JITTER
from pipeworker._context import NO_CONTEXT, inside_worker
from pipeworker._events import Hooks, Observer
from pipeworker._lease import Leases
from pipeworker._outcome import outcome_of, safe_text
from pipeworker._threads import start_thread
from pipeworker.exceptions import (
    LeaseLost,
    PreconditionNotMet,
    RequestRejected,
    ServiceError,
    TaskFailed,
)
from pipeworker.services.base import Connection, Outcome, ReceivedTask, truncate_head, truncate_tail
from pipeworker.task import BaseTask, CancelReason

if TYPE_CHECKING:
    from pipeworker.worker import Activity

__all__ = [
    "LOG_MESSAGE_LIMIT",
    "LOG_TRACE_LIMIT",
    "NO_HANDLER_ERROR_ID",
    "SHUTDOWN_ERROR_ID",
    "TaskScopes",
    "outcome_of",
    "safe_text",
]

log = logging.getLogger("pipeworker.supervisor")

SHUTDOWN_ERROR_ID = "RunnerShutdown"
"""errorId of a task cancelled because its runner shut down; the service retries it."""
NO_HANDLER_ERROR_ID = "NoHandler"

# Log texts are cut as status texts are (the head of a message, the tail of a trace), with more
# room: a 10 MB exception message must not become a 10 MB log line.
LOG_MESSAGE_LIMIT = 4096
LOG_TRACE_LIMIT = 16384


class _Answer(enum.Enum):
    KEPT = None
    CANCELED = CancelReason.SERVICE  # the service asked for the task to stop
    LOST = CancelReason.LEASE_LOST  # the task is not this runner's any more

    @property
    def reason(self) -> CancelReason:
        assert self.value is not None
        return CancelReason(self.value)


def _resolve(waiter: asyncio.Future[bool] | None, value: bool) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(value)


class _Ticks:
    """When a task's next progress report is due: :meth:`next` is a future that turns True when
    the interval (with its jitter) is up, and False once the handler has ended.

    One small object per running task, a future and a timer per tick: cheaper than
    ``asyncio.wait()`` on every tick (a coroutine, sets and callbacks each time), and than a
    closure, as the lease loop lives as long as the task.
    """

    __slots__ = ("_handler", "_interval", "_loop", "_timer", "_waiter")

    def __init__(self, handler: asyncio.Task[Any], interval: float) -> None:
        self._loop = handler.get_loop()
        self._handler = handler
        self._interval = interval
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        handler.add_done_callback(self._ended, context=NO_CONTEXT)

    def next(self) -> asyncio.Future[bool]:
        waiter = self._waiter = self._loop.create_future()
        if self._handler.done():
            waiter.set_result(False)
        else:
            delay = self._interval * random.uniform(1 - PROGRESS_JITTER, 1 + PROGRESS_JITTER)
            self._timer = self._loop.call_later(delay, _resolve, waiter, True, context=NO_CONTEXT)
        return waiter

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._handler.remove_done_callback(self._ended)

    def _ended(self, _: object) -> None:
        _resolve(self._waiter, False)


class TaskScopes:
    """Runs received tasks for one supervisor: acknowledgement, handler, lease, final status.

    Attributes:
        running: the handler of every task whose handler was started and has not ended.
        finishing: the outcome of every task whose final status is being sent.
        past_deadline: set by the supervisor once the shutdown grace period is over: tasks
            received later are handed back at once.
        give_up: set by the supervisor at the shutdown's hard deadline: status retries end.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        routes: Mapping[str, Mapping[str | None, Activity]],
        progress_interval: float,
        cancel_patience: float,
        hooks: Hooks,
        observer: Observer,
        task_class: Callable[[ReceivedTask, Connection], BaseTask],
        call_failed: Callable[[BaseException], None],
        running: dict[BaseTask, asyncio.Task[Outcome | None]],
        give_up: asyncio.Event,
        leases: Leases,
    ) -> None:
        self._connection = connection
        self._routes = routes
        self._progress_interval = progress_interval
        self._cancel_patience = cancel_patience
        self._hooks = hooks
        self._observer = observer
        self._task_class = task_class
        self._call_failed = call_failed
        self.running = running
        self.finishing: dict[BaseTask, Outcome] = {}
        self.threads: dict[BaseTask, asyncio.Future[Any]] = {}
        self.leases = leases  # written here only; pacing and metrics read them
        self.past_deadline = False
        self.give_up = give_up
        self._clamp_logged = False

    async def run(self, received: ReceivedTask) -> asyncio.Future[Any] | None:
        """Run *received* to its end, in the calling (poll's) asyncio task.

        Returns the thread of a plain-function handler that is still running after its task
        ended (it ignored a cancellation): the caller keeps the task's slot until it completes.
        """
        if self.leases.get(received.id) is not None:
            # The service handed out a task this runner is running (its acknowledgement was
            # lost on the way): the running scope keeps the lease; never run it twice.
            log.warning(
                "task %s was handed out again while it runs here: ignored",
                received.id,
                extra={"task_id": received.id, "worker_group": received.queue},
            )
            return None
        self.leases.received(received)  # also what tells a task handed out again
        task = self._task_class(received, self._connection)
        handler: asyncio.Task[Outcome | None] | None = None
        try:
            activity = self._activity(received)
            if self.past_deadline:
                log.info(
                    "task %s received after the grace period: handed back",
                    task.id,
                    extra=task.log_extra(),
                )
                await self._finish(task, Outcome.failed(SHUTDOWN_ERROR_ID, CancelReason.SHUTDOWN))
                return None
            if activity is None:
                message = f"no handler for activity type {received.type!r} on {received.queue!r}"
                log.error("task %s: %s", task.id, message, extra=task.log_extra())
                await self._finish(task, Outcome.failed(NO_HANDLER_ERROR_ID, message))
                return None
            # Acknowledge first: the service's window starts when it hands the task out, and a
            # handler that blocks the loop at its start must not make the task run twice.
            lease = await self._report(task, first=True)
            if lease is not _Answer.KEPT:
                task._cancel(lease.reason)
                if lease is _Answer.CANCELED:
                    await self._confirm_cancel(task)
                await self._ended(task, None)
                return None
            handler = asyncio.create_task(self._invoke(activity, task), name="pipeworker-handler")
            self.running[task] = handler
            log.info("task %s started (%s)", task.id, activity.name, extra=task.log_extra())
            self._observer.task_started(task)
            # Report progress every interval until the handler ends or the task must stop (in
            # this frame: a coroutine of its own would cost every running task ~250 bytes more).
            ticks = _Ticks(handler, self._interval(task))
            try:
                while await ticks.next():
                    lease = await self._report(task)
                    if lease is not _Answer.KEPT:
                        self.cancel(task, handler, lease.reason)
                        break
            finally:
                ticks.close()
            if not handler.done():
                await self._await_cancelled(task, handler)
            outcome = handler.result()
            del self.running[task]
            if (
                outcome is not None
                and task._pending
                and await self._report(task) is not _Answer.KEPT
            ):
                outcome = None  # the last details are sent first; the answer took the task back
            if task.cancel_reason not in (None, CancelReason.SHUTDOWN):
                outcome = None  # the service took the task back: nothing more may be sent
                if task.cancel_reason is CancelReason.SERVICE:
                    await self._confirm_cancel(task)  # SWF answers it; Data Pipeline does not
            if outcome is not None:
                await self._finish(task, outcome)
            await self._ended(task, outcome)
        except asyncio.CancelledError:
            # A forced stop, or the hard deadline: nothing more is sent; the lease runs out.
            if handler is not None and not handler.done():
                task._cancel(CancelReason.FORCED)
                handler.cancel(CancelReason.FORCED)
            raise
        finally:
            self.running.pop(task, None)
            self.finishing.pop(task, None)
            self.leases.forget(received.id)
        thread = self.threads.pop(task, None)
        if thread is not None and not thread.done():
            return thread
        return None

    def _activity(self, received: ReceivedTask) -> Activity | None:
        routes = self._routes.get(received.queue, {})
        return routes.get(received.type) or routes.get(None)

    def handler_name(self, task: BaseTask) -> str:
        """The name of *task*'s handler, for log lines (looked up: not kept for every task)."""
        activity = self._activity(task._received)
        return activity.name if activity is not None else "?"

    async def _ended(self, task: BaseTask, outcome: Outcome | None) -> None:
        self._observer.task_finished(task, outcome)
        try:
            await self._hooks.on_task_end(task, outcome)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.error(
                "on_task_end() failed for task %s: %s: %s",
                task.id,
                type(exc).__name__,
                truncate_head(safe_text(exc), LOG_MESSAGE_LIMIT),
                extra=task.log_extra(),
            )

    async def _await_cancelled(self, task: BaseTask, handler: asyncio.Task[Outcome | None]) -> None:
        # The handler was cancelled (lease lost, service, shutdown). Wait for it without
        # awaiting it directly, so this scope can itself be cancelled even if the handler
        # swallows its cancellation.
        done, _ = await asyncio.wait((handler,), timeout=self._cancel_patience)
        if not done:
            log.warning(
                "handler %s of task %s ignores its cancellation (%s); its slot stays taken "
                "until it ends",
                self.handler_name(task),
                task.id,
                task.cancel_reason,
                extra=task.log_extra(),
            )
            await asyncio.wait((handler,))

    async def _invoke(self, activity: Activity, task: BaseTask) -> Outcome | None:
        inside_worker.set(True)
        try:
            await self._hooks.on_task_start(task)
            if activity.is_async:
                result = activity.handler(task)
            else:
                name = f"pipeworker-handler-{activity.name}"
                thread = start_thread(activity.handler, task, name=name)
                self.threads[task] = thread
                # Shielded: a cancelled handler task ends at once; the thread runs on and keeps
                # its slot (see run()).
                result = await asyncio.shield(thread)
            if inspect.isawaitable(result):
                # An async function behind a plain decorator or a lambda: its coroutine runs
                # here, on the loop; it is never reported FINISHED unrun.
                result = await result
        except asyncio.CancelledError as exc:
            reason = task.cancel_reason
            if reason is None:
                # Not our cancellation: the handler cancelled itself; report it as a failure.
                return outcome_of(exc)
            if reason is CancelReason.SHUTDOWN:
                return Outcome.failed(
                    SHUTDOWN_ERROR_ID, f"{CancelReason.SHUTDOWN}; the service retries it"
                )
            if reason is CancelReason.FORCED:
                raise
            return None  # cancelled by the service or lease lost: nothing may be sent
        except (TaskFailed, PreconditionNotMet) as exc:
            return outcome_of(exc)  # the handler's own choice; the status line logs it
        except BaseException as exc:
            # Any exception, SystemExit and KeyboardInterrupt included: it ends this task only.
            if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
                # Start the trace at the handler: this frame is the same in every report.
                exc.__traceback__ = exc.__traceback__.tb_next
            outcome = outcome_of(exc)
            # Unexpected: the operator needs the trace, cut as the statuses are cut.
            log.warning(
                "task %s failed: %s: %s\n%s",
                task.id,
                outcome.error_id,
                truncate_head(outcome.message or "", LOG_MESSAGE_LIMIT),
                truncate_tail(outcome.stack_trace or "", LOG_TRACE_LIMIT),
                extra=task.log_extra(),
            )
            return outcome
        return Outcome.finished(result)  # services without results (Data Pipeline) ignore it

    def _interval(self, task: BaseTask) -> float:
        interval = self._progress_interval
        lease = task._received.lease_seconds
        if lease is not None and lease / 3 < interval:
            # A pipeline may set a reportProgressTimeout shorter than the worker's cadence:
            # report at least three times per lease so one lost report does not lose it, but
            # never faster than the floor (a lease of 0 would otherwise spin).
            interval = lease / 3
            if interval < MIN_INTERVAL:
                if not self._clamp_logged:
                    self._clamp_logged = True
                    log.warning(
                        "task %s has a %gs lease: progress is reported every %gs (the floor), "
                        "so its lease may lapse",
                        task.id,
                        lease,
                        MIN_INTERVAL,
                        extra=task.log_extra(),
                    )
                interval = MIN_INTERVAL
        return interval

    async def _report(self, task: BaseTask, first: bool = False) -> _Answer:
        """Send the acknowledgement (*first*) or a progress report with the pending details."""
        connection = self._connection
        received = task._received
        details = None if first else task._take_pending()
        try:
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
                        lambda: connection.report_progress(received, details),
                        on_retry=self._call_failed,
                    )
            except RequestRejected as exc:
                if not details:
                    raise
                # The details themselves were refused: sending them again can never succeed and
                # would cost the lease. Drop them, say which, and renew the lease without them.
                self._call_failed(exc)
                log.error(
                    "task %s: the service refused the progress fields %s (%s); they are dropped",
                    task.id,
                    ", ".join(sorted(details))[:LOG_MESSAGE_LIMIT],
                    exc,
                    extra=task.log_extra(),
                )
                canceled = await _retry.call(
                    _retry.PROGRESS,
                    lambda: connection.report_progress(received, None),
                    on_retry=self._call_failed,
                )
        except LeaseLost as exc:
            log.warning("task %s: lease lost (%s)", task.id, exc, extra=task.log_extra())
            self.leases.lost(task.id, safe_text(exc))
            return _Answer.LOST
        except ServiceError as exc:
            # The next report is the retry; keep unsent details that may still be accepted.
            if details and not isinstance(exc, RequestRejected):
                task._pending = {**details, **(task._take_pending() or {})}
            self._call_failed(exc)
            what = "acknowledgement" if first else "progress report"
            log.warning("task %s: %s failed: %s", task.id, what, exc, extra=task.log_extra())
            return _Answer.KEPT
        self._observer.progress_reported(task, canceled)  # metrics read the lease left first
        if not canceled:
            self.leases.renewed(task.id)
        if canceled:
            log.info("task %s cancelled by the service", task.id, extra=task.log_extra())
            return _Answer.CANCELED
        return _Answer.KEPT

    def cancel(
        self, task: BaseTask, handler: asyncio.Task[Outcome | None], reason: CancelReason
    ) -> None:
        """Cancel *task*'s handler for *reason* (the task sees the reason first)."""
        task._cancel(reason)
        lease = self.leases.get(task.id)
        detail = lease.lost if lease is not None else None
        handler.cancel(f"{reason} ({detail})" if detail else reason)

    async def _confirm_cancel(self, task: BaseTask) -> None:
        connection = self._connection
        received = task._received
        try:
            await _retry.call(
                _retry.STATUS,
                lambda: connection.canceled(received),
                stop=self.give_up,
                on_retry=self._call_failed,
            )
        except ServiceError as exc:
            log.warning(
                "task %s: cancellation not confirmed: %s", task.id, exc, extra=task.log_extra()
            )

    async def _finish(self, task: BaseTask, outcome: Outcome) -> None:
        connection = self._connection
        received = task._received
        self.finishing[task] = outcome
        try:
            await _retry.call(
                _retry.STATUS,
                lambda: connection.finish(received, outcome),
                stop=self.give_up,
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
            undelivered = (
                "not delivered before the stop's deadline" if self.give_up.is_set() else "rejected"
            )
            log.error(
                "task %s: %s status %s: %s",
                task.id,
                outcome.status,
                undelivered,
                exc,
                extra=task.log_extra(),
            )
        else:
            detail = ""
            if outcome.error_id:
                message = truncate_head(outcome.message or "", LOG_MESSAGE_LIMIT)
                detail = f" ({outcome.error_id}: {message})"
            log.info("task %s %s%s", task.id, outcome.status, detail, extra=task.log_extra())
        finally:
            del self.finishing[task]
