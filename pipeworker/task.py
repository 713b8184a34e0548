"""What a handler sees: the task it was given, and the few calls it may make about it.

How the task is polled, acknowledged, kept alive and reported lives in ``pipeworker._supervisor``;
nothing here schedules anything.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Generator, Mapping
from typing import Any

from pipeworker import _retry
from pipeworker.exceptions import ValidationError
from pipeworker.services.base import Connection, FieldValue, ReceivedTask, Ref, resolve_field

__all__ = ["BaseTask", "CancelReason", "Task"]


class CancelReason(enum.StrEnum):
    """Why a running task was cancelled (:attr:`Task.cancel_reason`).

    A ``StrEnum``: each member also compares equal to its text.
    """

    SERVICE = "canceled by the service"
    """The service asked for it (Data Pipeline's ``canceled``, SWF's ``cancelRequested``)."""
    LEASE_LOST = "lease lost"
    """The task is not this runner's any more (timed out, pipeline deleted, execution stopped)."""
    SHUTDOWN = "the task runner is shutting down"
    """The shutdown grace period ended before the handler did; the task is reported FAILED."""
    FORCED = "the task runner was forced to stop"
    """A forced stop (a second signal): nothing more is sent; the lease runs out."""


class _Done:
    # An awaitable that is already complete: `await` on it returns at once.
    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield


_DONE = _Done()

_task_log = logging.getLogger("pipeworker.task")


class BaseTask:
    """What every service's task shares: its id and queue, cancellation, a logger.

    Each service's handlers get a subclass: Data Pipeline's :class:`Task`, SWF's
    :class:`~pipeworker.services.swf.ActivityTask`, Step Functions'
    :class:`~pipeworker.services.stepfunctions.StepFunctionsTask`. None inherits another
    service's API.

    Attributes:
        id: the service's token for the task.
        queue: what it was polled from (a worker group, a task list, an activity ARN).
    """

    __slots__ = ("_cancel_reason", "_connection", "_logger", "_loop", "_pending", "_received")

    def __init__(self, received: ReceivedTask, connection: Connection) -> None:
        self._loop = asyncio.get_running_loop()
        self._received = received
        self._connection = connection
        self._pending: dict[str, str | Ref] | None = None
        self._cancel_reason: CancelReason | None = None
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None

    @property
    def id(self) -> str:
        return self._received.id

    @property
    def queue(self) -> str:
        return self._received.queue

    @property
    def _attrs(self) -> Mapping[str, Any]:
        # What else the service delivered (SWF's activityId, Step Functions' input...).
        return self._received.attributes or {}

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry ``task_id``, ``pipeline_id``, ``attempt_id`` and
        ``worker_group`` in their ``extra``."""
        if self._logger is None:
            self._logger = logging.LoggerAdapter(_task_log, self.log_extra())
        return self._logger

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled (by the service, a lost lease or a shutdown).

        Async handlers also see :class:`asyncio.CancelledError`; sync handlers, which run in a
        thread and cannot be interrupted, should check this between steps.
        """
        return self._cancel_reason is not None

    @property
    def cancel_reason(self) -> CancelReason | None:
        """Why the task was cancelled, or None while it was not."""
        return self._cancel_reason

    def heartbeat(self, details: Any = None) -> Awaitable[None]:
        """Send *details* with the task's next heartbeat (its next progress report).

        The one verb every service's task has. The worker keeps each lease on its own cadence;
        this only adds what the next beat carries, coalesced (later calls replace or add to what
        is not yet sent). The details are taken at once, so sync handlers (in their thread) may
        call it without ``await``. What *details* may be depends on the service:

        - Data Pipeline: a mapping of fields, as :meth:`Task.report_progress` takes them;
        - SWF: any value, sent as-is if a str and as JSON otherwise (2,048 characters at most);
        - Step Functions: none (SendTaskHeartbeat carries only the token); ``heartbeat()``
          sends a beat at once instead.

        Raises:
            ValidationError: *details* the service would reject; nothing is queued.
        """
        raise NotImplementedError  # each service's task class implements it

    def log_extra(self) -> dict[str, str]:
        """The task's ids, for ``extra=`` in log calls."""
        received = self._received
        return {
            "task_id": received.id,
            "pipeline_id": received.pipeline_id,
            "attempt_id": received.attempt_id,
            "worker_group": received.queue,
        }

    # The supervisor's side; handlers do not call these.

    def _cancel(self, reason: CancelReason) -> None:
        if self._cancel_reason is None:
            self._cancel_reason = reason

    def _take_pending(self) -> dict[str, str | Ref] | None:
        pending, self._pending = self._pending, None
        return pending


class Task(BaseTask):
    """One task given to a handler.

    Attributes:
        id: the service's token for the task (Data Pipeline's ``taskId``).
        pipeline_id: the pipeline the task belongs to.
        attempt_id: the id of this attempt's object (``@MyActivity_..._Attempt=1``).
        worker_group: the worker group (queue) the task was polled from.
        type: the activity's type, for example ``"ShellCommandActivity"``, if it has one.
        objects: every object that came with the task, by id; each maps field keys to a string,
            a :class:`~pipeworker.Ref` to another object, or a list when the field holds several.
    """

    __slots__ = ()

    @property
    def pipeline_id(self) -> str:
        return self._received.pipeline_id

    @property
    def attempt_id(self) -> str:
        return self._received.attempt_id

    @property
    def worker_group(self) -> str:
        return self._received.queue

    @property
    def type(self) -> str | None:
        return self._received.type

    @property
    def objects(self) -> Mapping[str, Mapping[str, FieldValue]]:
        return self._received.objects

    def field(self, key: str, default: Any = None) -> Any:
        """Return the activity's field *key*, following inheritance; *default* if it has none.

        The attempt's own fields come first, then its instance's, its component's and each
        ``parent`` in turn, as the service resolves them.
        """
        value = resolve_field(self._received.objects, self._received.attempt_id, key)
        return default if value is None else value

    async def evaluate(self, expression: str) -> str:
        """Evaluate *expression* (``"#{@scheduledStartTime}"``) on this task's object.

        Raises:
            ValidationError: the expression is longer than the service accepts.
            ServiceError: the service could not evaluate it, after retries where that helps.
        """
        return await _retry.call(
            _retry.EVALUATE, lambda: self._connection.evaluate(self._received, expression)
        )

    def evaluate_sync(self, expression: str, timeout: float | None = None) -> str:
        """:meth:`evaluate` for sync handlers: blocks the handler's thread, never the event loop.

        Raises:
            RuntimeError: called on the event loop's own thread (use ``await evaluate()`` there).
            TimeoutError: no answer within *timeout* seconds.
        """
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("evaluate_sync() blocks: in an async handler use await evaluate()")
        future = asyncio.run_coroutine_threadsafe(self.evaluate(expression), self._loop)
        return future.result(timeout)

    def heartbeat(self, details: Mapping[str, object] | None = None) -> Awaitable[None]:
        """Send the fields in *details* with the next progress report (see
        :meth:`report_progress`); the verb every service's task shares.

        Raises:
            ValidationError: *details* is not a mapping of field names, or holds a key or value
                the service would reject; nothing is queued.
        """
        if details is None:
            return _DONE
        if not isinstance(details, Mapping) or not all(isinstance(k, str) for k in details):
            raise ValidationError(
                "heartbeat(): Data Pipeline's details are fields, a mapping of names to values, "
                f"not {type(details).__name__}"
            )
        return self.report_progress(**details)

    def report_progress(self, **fields: object) -> Awaitable[None]:
        """Send *fields* with the next progress report (strings, or :class:`Ref` s).

        Other values are sent as ``str(value)``. Later calls add to (and overwrite keys of) the
        fields not yet sent. The fields are taken at once, so sync handlers (in their thread) may
        call it without ``await``; async handlers write ``await task.report_progress(...)``.

        Raises:
            ValidationError: a key or value the service would reject; nothing is queued.
        """
        converted = {
            key: value if isinstance(value, str | Ref) else str(value)
            for key, value in fields.items()
        }
        # The whole request is checked (what is pending and what is added), so a report that the
        # service would refuse for its size is refused here, in the handler that made it.
        merged = {**self._pending, **converted} if self._pending else converted
        problems = self._connection.check_progress_fields(merged)
        if problems:
            raise ValidationError(f"report_progress(): {'; '.join(problems)}")
        # One assignment of a new dict: safe against the loop taking the pending fields while
        # a handler thread adds to them.
        self._pending = merged
        return _DONE

    def __repr__(self) -> str:
        return f"<Task {self._received.id!r} attempt={self._received.attempt_id!r}>"
