"""What a Step Functions activity handler sees: :class:`StepFunctionsTask`.

Kept apart from :mod:`pipeworker.services.stepfunctions` (how the worker talks to Step
Functions), as ``task.py`` is from the supervisor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from pipeworker import _retry
from pipeworker.exceptions import LeaseLost, ValidationError
from pipeworker.task import _DONE, BaseTask, CancelReason

__all__ = ["StepFunctionsTask"]


class StepFunctionsTask(BaseTask):
    """A Step Functions activity task, as a handler sees it.

    Attributes:
        token: the task token every call about the task carries (also :attr:`id`).
        input: the task's input, decoded from JSON (the state's effective input).
        raw_input: the same input as the JSON text Step Functions sent.
        activity_arn: the activity the task was polled from (also :attr:`worker_group`).
    """

    __slots__ = ()

    @property
    def token(self) -> str:
        return self._received.id

    @property
    def input(self) -> Any:
        return self._attrs.get("input")

    @property
    def raw_input(self) -> str:
        return str(self._attrs.get("raw_input", ""))

    @property
    def activity_arn(self) -> str:
        return str(self._attrs.get("activityArn", self._received.queue))

    def heartbeat(self, details: None = None) -> Awaitable[None]:
        """Send a SendTaskHeartbeat now, on top of the worker's own cadence.

        The verb every service's task shares; Step Functions' heartbeat carries no details
        (only the token), so *details* must be None: anything else is refused rather than
        silently dropped.

        Worth calling before a step that may outlast the state's ``HeartbeatSeconds`` between
        two automatic beats. If the answer says the task is gone (a heartbeat timeout, the
        state's ``TimeoutSeconds``, or StopExecution), the task is cancelled as by the worker's
        own heartbeat: :attr:`cancel_reason` says why, and nothing more is sent. An async
        handler (``await task.heartbeat()``) sees :class:`asyncio.CancelledError` at once; a
        sync handler (in its thread, no ``await``) blocks until the answer, then should check
        :attr:`cancelled`.

        Raises:
            ServiceError: the heartbeat could not be delivered, after retries.
        """
        if details is not None:
            raise ValidationError(
                "heartbeat(): a Step Functions heartbeat carries no details (SendTaskHeartbeat "
                "sends only the task token); return them in the task's output, or log them"
            )
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            return self._beat(raise_cancelled=True)
        asyncio.run_coroutine_threadsafe(self._beat(raise_cancelled=False), self._loop).result()
        return _DONE

    async def _beat(self, *, raise_cancelled: bool) -> None:
        connection = self._connection
        received = self._received
        try:
            await _retry.call(_retry.PROGRESS, lambda: connection.report_progress(received))
        except LeaseLost as exc:
            self._cancel(CancelReason.LEASE_LOST)
            if raise_cancelled:
                raise asyncio.CancelledError(f"{CancelReason.LEASE_LOST} ({exc})") from exc

    def __repr__(self) -> str:
        return f"<StepFunctionsTask {self.activity_arn!r} token={self.token[:16]!r}...>"
