"""One task's scope, from the poll that received it to its final status.

::

    TaskScopes.run(received)         in the asyncio task of the poll that received it
    ├── handler task                 the user's handler (a thread for plain functions)
    ├── _keep_lease                  acknowledge at once, then report progress every interval
    ├── _report                      the last pending fields, if the handler left any
    └── _finish / _confirm_cancel    the final status, or SWF's answer to a cancellation

The supervisor (``pipeworker._supervisor``) owns the slots, polls and shutdown; this module owns
what happens to one task. Nothing here is kept per task beyond the task's own objects, its
handler's asyncio task and one timer and future per progress tick.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from pipeworker import _retry
from pipeworker._events import Hooks, Observer
from pipeworker.exceptions import LeaseLost, PreconditionNotMet, ServiceError, TaskFailed
from pipeworker.services.base import Connection, Outcome, ReceivedTask
from pipeworker.task import Task
from pipeworker.worker import PROGRESS_JITTER, in_handler

if TYPE_CHECKING:
    from pipeworker.worker import Activity

__all__ = [
    "CANCELED_BY_SERVICE",
    "FORCED",
    "NO_HANDLER_ERROR_ID",
    "SHUTDOWN_ERROR_ID",
    "SHUTTING_DOWN",
    "TaskScopes",
    "outcome_of",
]

log = logging.getLogger("pipeworker.supervisor")

SHUTDOWN_ERROR_ID = "RunnerShutdown"
"""errorId of a task cancelled because its runner shut down; the service retries it."""
NO_HANDLER_ERROR_ID = "NoHandler"

CANCELED_BY_SERVICE = "canceled by the service"
SHUTTING_DOWN = "the task runner is shutting down"
FORCED = "the task runner was forced to stop"

# Timers and done callbacks of the lease loop run no user code: they share one empty context
# instead of a copy of the caller's for each (one object less per task and per tick).
_NO_CONTEXT = contextvars.Context()


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


class TaskScopes:
    """Runs received tasks for one supervisor: handler, lease, final status.

    Attributes:
        running: the handler of every task whose handler was started and has not ended.
        past_deadline: set by the supervisor once the shutdown grace period is over: tasks
            received later are handed back at once.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        routes: Mapping[str, Mapping[str | None, Activity]],
        progress_interval: float,
        hooks: Hooks,
        observer: Observer,
        task_class: type[Task],
        executor: ThreadPoolExecutor | None,
        call_failed: Callable[[BaseException], None],
        running: dict[Task, asyncio.Task[Outcome | None]],
    ) -> None:
        self._connection = connection
        self._routes = routes
        self._progress_interval = progress_interval
        self._hooks = hooks
        self._observer = observer
        self._task_class = task_class
        self._executor = executor
        self._call_failed = call_failed
        self.running = running
        self.past_deadline = False

    async def run(self, received: ReceivedTask) -> None:
        """Run *received* to its end, in the calling (poll's) asyncio task."""
        connection = self._connection
        task = self._task_class(received, connection)
        handler: asyncio.Task[Outcome | None] | None = None
        try:
            routes = self._routes[received.queue]
            activity = routes.get(received.type) or routes.get(None)
            if self.past_deadline:
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
            self.running[task] = handler
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
            self.running.pop(task, None)

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
        interval = self._progress_interval
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

        handler.add_done_callback(handler_done, context=_NO_CONTEXT)
        try:
            while True:
                if not await self._report(task, handler, first):
                    return
                first = False
                if handler.done():
                    return
                waiter = loop.create_future()
                delay = interval * random.uniform(1 - PROGRESS_JITTER, 1 + PROGRESS_JITTER)
                timer = loop.call_later(delay, _wake, waiter, context=_NO_CONTEXT)
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
            self.cancel(task, handler, f"lease lost: {exc}")
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
            self.cancel(task, handler, CANCELED_BY_SERVICE)
            log.info("task %s cancelled by the service", task.id, extra=task.log_extra())
            return False
        return True

    def cancel(self, task: Task, handler: asyncio.Task[Outcome | None], reason: str) -> None:
        """Cancel *task*'s handler for *reason* (the task sees the reason first)."""
        task._cancel(reason)
        handler.cancel(reason)

    async def _confirm_cancel(self, task: Task) -> None:
        connection = self._connection
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
