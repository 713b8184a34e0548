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

from pipeworker.services.base import Connection, ReceivedTask

__all__ = ["BaseTask", "CancelReason"]


class CancelReason(enum.StrEnum):
    """Why a running task was cancelled (:attr:`BaseTask.cancel_reason`).

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

    Each service's handlers get a subclass: Data Pipeline's :class:`~pipeworker.Task`, SWF's
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
        # Details for the next heartbeat (progress report), by name; the service's task class
        # fills them, the scope sends them.
        self._pending: dict[str, Any] | None = None
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
        """A logger whose records carry the task's ids in their ``extra`` (:meth:`log_extra`)."""
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
        """The task's ids, for ``extra=`` in log calls: ``task_id`` and ``queue``, and the
        service's own (Data Pipeline's ``pipeline_id``, ``attempt_id``, ``worker_group``)."""
        return {"task_id": self._received.id, "queue": self._received.queue}

    # The supervisor's side; handlers do not call these.

    def _cancel(self, reason: CancelReason) -> None:
        if self._cancel_reason is None:
            self._cancel_reason = reason

    def _take_pending(self) -> dict[str, Any] | None:
        pending, self._pending = self._pending, None
        return pending
