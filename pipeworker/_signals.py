"""How ``Worker.run()`` owns the process: its event loop and SIGTERM/SIGINT.

The first signal asks for a graceful stop, a second one forces it. The loop is closed the way
``asyncio.run()`` closes it, except when the stop left user code behind: waiting for code that
ignores cancellation would wait for ever, so that step is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Protocol

__all__ = ["handle_signals", "run_blocking"]

log = logging.getLogger("pipeworker.worker")


class _RequestStop(Protocol):
    def __call__(self, *, force: bool = False) -> None: ...


def run_blocking(
    main: Callable[[], Coroutine[Any, Any, None]], left_behind: Callable[[], bool]
) -> None:
    """Run ``main()`` on a new event loop, then close it unless *left_behind()*."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main())
    finally:
        try:
            if not left_behind():
                _cancel_all_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            if not left_behind():
                loop.close()


@asynccontextmanager
async def handle_signals(request_stop: _RequestStop) -> AsyncIterator[None]:
    """While the body runs: the first SIGTERM or SIGINT asks for a stop, the next forces it."""
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        name = signal.Signals(signum).name
        if signals == 1:
            log.info("%s received: stopping gracefully (signal again to force)", name)
            request_stop()
        else:
            log.warning("%s received again: stopping now, running tasks are abandoned", name)
            request_stop(force=True)

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover (not the main thread)
            pass
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.all_tasks(loop)
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
