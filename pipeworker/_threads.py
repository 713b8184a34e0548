"""Plain-function handlers in threads that never hold the process hostage.

A thread cannot be interrupted: a sync handler cancelled by its lease, the service or a stop keeps
running until it returns. So each call gets its own daemon thread, and the future it returns is
only completed when the thread really ends. The task scope awaits it through ``asyncio.shield``
(the handler's asyncio task can end at once), while the supervisor keeps the slot until the
future completes, so a thread left running still counts against ``max_concurrency``. Daemon
threads (unlike ``ThreadPoolExecutor``'s, which are joined at exit) let the process exit once a
stop has given up on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["start_thread"]

T = TypeVar("T")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def start_thread(function: Callable[[T], Any], argument: T, *, name: str) -> asyncio.Future[Any]:
    """Run ``function(argument)`` in a new daemon thread, in a copy of the caller's context.

    Returns a future of the running loop that completes when the thread ends, with what the
    function returned or raised (any BaseException, ``SystemExit`` included: it ends the
    thread's call, never the process).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = context.run(function, argument)
        except BaseException as exc:  # a handler's SystemExit ends its call, not the process
            error = exc
        # A closed loop: the worker gave up on this thread and has stopped.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, result, error)

    threading.Thread(target=work, name=name, daemon=True).start()
    return future
