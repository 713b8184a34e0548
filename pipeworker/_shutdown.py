"""The timing of one worker's bounded stop: asked, forced, the grace, the hard deadline.

::

    stop asked ──grace──> grace over ──hard deadline──> give up
                 (idle: done)          (idle: done)     name what still runs, stop waiting

:class:`Stop` holds the events every part of a running worker watches, and runs the clock; what
happens at each step (cancelling handlers, naming what is left behind) is the supervisor's, passed
in as callbacks. User code the stop waits for (lifecycle hooks) runs under :meth:`Stop.bounded`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["FORCED_PATIENCE", "Stop"]

log = logging.getLogger("pipeworker.supervisor")

FORCED_PATIENCE = 1.0
"""Seconds cancelled work gets to unwind after a forced stop before it is left behind."""


class Stop:
    """The events of one worker's stop, and the clock that moves through them.

    Attributes:
        asked: a stop was asked for.
        forced: the stop was forced (a second signal): no more waiting.
        grace_over: the grace has ended; running handlers are being cancelled.
        give_up: the hard deadline has passed; retries end and what still runs is left behind.
        left_behind: one line for each piece of user code or status the stop gave up on.
    """

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.forced = asyncio.Event()
        self.grace_over = asyncio.Event()
        self.give_up = asyncio.Event()
        self.left_behind: list[str] = []

    async def until(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for *event* at most *seconds*, or until the stop is forced; True if it is set."""
        if event.is_set():
            return True
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.forced.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return event.is_set()

    async def clock(
        self,
        idle: asyncio.Event,
        *,
        grace: float,
        hard_deadline: float,
        end_grace: Callable[[], None],
        abandon: Callable[[], None],
    ) -> None:
        """Once a stop is asked: wait up to *grace* for *idle*, then *end_grace*; up to
        *hard_deadline* more, then *abandon*. A forced stop skips the waiting."""
        await self.asked.wait()
        if await self.until(idle, grace):
            return
        if not self.forced.is_set():
            end_grace()
        if await self.until(idle, hard_deadline):
            return
        if self.forced.is_set():
            # Cancelled scopes unwind at once; only user code that ignores cancellation stays.
            await self.until(idle, FORCED_PATIENCE)
        if not idle.is_set():
            self.give_up.set()
            abandon()

    async def bounded(
        self, name: str, hook: Callable[[], Awaitable[None]], *, limit: float | None = None
    ) -> bool:
        """Run a lifecycle hook (user code) so that it cannot hold the stop for ever.

        With *limit* None (``on_startup``) it runs until the grace ends, if a stop comes; with a
        *limit* (``on_shutdown``) it gets that many seconds. Then it is cancelled, and left
        behind if it ignores that. True if it completed. An error is raised when *limit* is None
        (the worker does not start), logged otherwise.
        """
        job = asyncio.ensure_future(hook())
        if limit is None:
            await _first(job, self.grace_over.wait())
        else:
            await asyncio.wait((job,), timeout=limit)
        if not job.done():
            job.cancel()
            if limit is None:
                await _first(job, self.give_up.wait())
            else:
                await asyncio.wait((job,), timeout=FORCED_PATIENCE)
        if not job.done():
            self.left_behind.append(f"{name} ignores its cancellation")
            log.warning("%s ignores its cancellation: left behind", name)
            return False
        if job.cancelled():
            log.warning("%s did not finish in time: cancelled", name)
            return False
        error = job.exception()
        if error is None:
            return True
        if limit is None:
            raise error
        log.error("%s failed: %s: %s", name, type(error).__name__, error, exc_info=error)
        return False


async def _first(job: asyncio.Future[Any], other: Awaitable[Any]) -> None:
    waiter = asyncio.ensure_future(other)
    try:
        await asyncio.wait((job, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
