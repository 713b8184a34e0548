"""Event-loop lag and stalls: a tick on the loop, a watchdog thread beside it.

A blocked event loop is the failure a heartbeating worker cannot report itself: while an async
handler calls ``time.sleep()`` or crunches numbers, no progress report leaves, no lease is kept,
and nothing on the loop can log it. So two halves:

- a *tick* on the loop every ``interval`` (one ``call_later`` callback, no task) records when it
  ran and how late (the loop's lag);
- a *watchdog* daemon thread wakes every ``interval`` and, when the loop has not ticked for longer
  than ``threshold``, reads the loop thread's current stack (``sys._current_frames()``) to name the
  handler that blocks it, logs one WARNING, and a recovery line once the loop ticks again.

The watchdog never touches the loop; it reads a few floats the tick writes (atomic under the GIL).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import CodeType, FrameType
from typing import Any

__all__ = ["LoopMonitor", "Stall", "handler_code"]

log = logging.getLogger("pipeworker.loop")

Describe = Callable[[object], Mapping[str, str] | None]
"""Given the loop's current asyncio task, the log ``extra`` of the pipeworker task it runs."""


def handler_code(handler: Any) -> CodeType | None:
    """The code object that runs when *handler* is called (functions, methods, callables)."""
    seen = 0
    while seen < 10:
        seen += 1
        code = getattr(handler, "__code__", None)
        if isinstance(code, CodeType):
            return code
        inner = (
            getattr(handler, "__wrapped__", None)
            or getattr(handler, "__func__", None)
            or getattr(handler, "func", None)  # functools.partial
        )
        if inner is None:
            call = getattr(type(handler), "__call__", None)  # noqa: B004 (callable objects)
            code = getattr(call, "__code__", None)
            return code if isinstance(code, CodeType) else None
        handler = inner
    return None


class Stall:
    """What the watchdog found blocking the loop.

    Attributes:
        activity: the activity's name, or None when no registered handler is on the stack.
        where: the innermost Python frame on the loop's stack, ``function (file:line)``.
        extra: the blocked task's ids for log lines, when the stall is inside a handler.
    """

    __slots__ = ("activity", "extra", "where")

    def __init__(self, activity: str | None, where: str, extra: Mapping[str, str]) -> None:
        self.activity = activity
        self.where = where
        self.extra = extra

    def describe(self) -> str:
        """``activity X`` or ``<function> (file:line)``, for messages."""
        return f"activity {self.activity}" if self.activity else self.where


class LoopMonitor:
    """Measures a loop's lag and notices when it stalls; start on the loop, stop when done.

    Args:
        threshold: seconds without a tick before a stall is logged (and counted).
        interval: seconds between ticks and watchdog checks; by default a quarter of
            *threshold*, at most 0.5 s.
        handlers: code objects of registered handlers, by activity name to report.
        describe: finds the pipeworker task's log ids for the loop's current asyncio task.
        on_stall: called (in the watchdog thread) once per stall, for a metric.
    """

    def __init__(
        self,
        threshold: float = 1.0,
        *,
        interval: float | None = None,
        handlers: Mapping[CodeType, str] | None = None,
        describe: Describe | None = None,
        on_stall: Callable[[], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.interval = interval if interval is not None else min(threshold / 4, 0.5)
        self._handlers = dict(handlers or {})
        self._describe = describe
        self._on_stall = on_stall
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._timer: asyncio.TimerHandle | None = None
        self._expected = 0.0
        self._last_tick = 0.0
        self.lag = 0.0
        """The latest tick's lateness, in seconds."""
        self.longest_gap = 0.0
        self.stall: Stall | None = None
        """What blocks the loop now, while a stall lasts."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop's side ------------------------------------------------------------------------

    def start(self) -> None:
        """Start ticking on the running loop and start the watchdog thread."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._last_tick = time.monotonic()
        self._schedule(loop)
        self._thread = threading.Thread(
            target=self._watch, name="pipeworker-loop-watchdog", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the tick and the watchdog thread (which wakes at once and ends)."""
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self.stall is not None:
            # The loop is running this, so the stall is over; the watchdog stopped before it saw
            # the loop tick again (a worker that stops right after the block).
            self._free_again(self.stall, max(self.longest_gap, time.monotonic() - self._last_tick))

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._expected = loop.time() + self.interval
        self._timer = loop.call_at(self._expected, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        self.lag = max(0.0, loop.time() - self._expected)
        now = time.monotonic()
        if now - self._last_tick > self.threshold:
            self.longest_gap = now - self._last_tick  # read by the watchdog's recovery line
        self._last_tick = now
        if not self._stop.is_set():
            self._schedule(loop)

    # -- what the health endpoint reads ------------------------------------------------------

    def blocked_for(self) -> float:
        """Seconds the loop has gone without a tick beyond its interval (0 while it is fine)."""
        if self._loop is None or self._stop.is_set():
            return 0.0
        return max(0.0, time.monotonic() - self._last_tick - self.interval)

    def current_lag(self) -> float:
        """The worst of the latest tick's lag and the stall going on now."""
        return max(self.lag, self.blocked_for())

    # -- the watchdog thread ------------------------------------------------------------------

    def _watch(self) -> None:
        stalled_since: float | None = None
        while not self._stop.wait(self.interval):
            last = self._last_tick
            silent = time.monotonic() - last
            if stalled_since is None:
                if silent > self.threshold + self.interval:
                    stalled_since = last
                    self.stall = stall = self._find_blocker()
                    if self._on_stall is not None:
                        self._on_stall()
                    log.warning(
                        "event loop blocked for %.1fs by %s: async handlers must not block "
                        "(await, or use a plain def handler, which runs in a thread)",
                        silent - self.interval,
                        stall.describe(),
                        extra={**stall.extra, "activity": stall.activity or stall.where},
                    )
            elif last != stalled_since:
                stalled_since = None
                ended = self.stall
                if ended is not None:
                    self._free_again(ended, self.longest_gap)

    def _free_again(self, stall: Stall, gap: float) -> None:
        self.stall = None
        log.warning(
            "event loop free again after %.1fs blocked by %s",
            gap - self.interval,
            stall.describe(),
            extra={**stall.extra, "activity": stall.activity or stall.where},
        )

    def _find_blocker(self) -> Stall:
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)
        innermost = frame
        activity = None
        while frame is not None:
            activity = self._handlers.get(frame.f_code)
            if activity is not None:
                break
            frame = frame.f_back
        where = "an unknown callback"
        if innermost is not None:
            code = innermost.f_code
            where = f"{code.co_qualname} ({code.co_filename}:{innermost.f_lineno})"
        extra: Mapping[str, str] = {}
        if activity is not None and self._describe is not None and self._loop is not None:
            try:
                extra = self._describe(asyncio.current_task(self._loop)) or {}
            except Exception:  # a best effort from another thread; the name is enough
                extra = {}
        return Stall(activity, where, extra)
