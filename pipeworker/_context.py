"""Where the running code is: inside a worker's own tasks (its hooks, handlers and loops) or not.

Set once by the supervisor for everything it starts, so ``Worker.stop()`` called from a hook or a
handler only asks for the stop instead of waiting for itself.
"""

from __future__ import annotations

import contextvars

__all__ = ["inside_worker"]

inside_worker: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pipeworker_inside_worker", default=False
)
