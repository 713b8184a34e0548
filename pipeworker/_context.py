"""Where the running code is: inside a worker's own tasks (its hooks, handlers and loops) or not.

Set once by the supervisor for everything it starts, so ``Worker.stop()`` called from a hook or a
handler only asks for the stop instead of waiting for itself.
"""

from __future__ import annotations

import contextvars

__all__ = ["NO_CONTEXT", "inside_worker"]

inside_worker: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pipeworker_inside_worker", default=False
)

NO_CONTEXT = contextvars.Context()
"""For the timers and done callbacks of the worker's own loops, which run no user code: they
share this empty context instead of a copy of the caller's each (one object less per task)."""
