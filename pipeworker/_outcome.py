"""The one outcome decision: how a handler's return or exception becomes a task's end.

Used by the worker's task scope and, through it, by the testing kit. Whatever a handler raises,
however hostile the exception object, there is an outcome with a best-effort text.
"""

from __future__ import annotations

import traceback
from typing import Any

from pipeworker.exceptions import PreconditionNotMet, TaskFailed
from pipeworker.services.base import Outcome

__all__ = ["outcome_of", "safe_text"]


def safe_text(value: object) -> str:
    """``str(value)``, or the best text there is when that raises or returns a non-str."""
    if isinstance(value, str):
        return value
    for convert in (str, repr):
        try:
            text = convert(value)
        except Exception:
            continue
        if isinstance(text, str):
            return text
    return f"<unprintable {type(value).__name__}>"


def _trace(error: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(error))
    except Exception:  # an exception object hostile enough to break the traceback module
        return f"{type(error).__name__}: {safe_text(error)}"


def outcome_of(error: BaseException | None, result: Any = None) -> Outcome:
    """The outcome of a handler that returned *result* (*error* None) or raised *error*.

    Any object a handler raises gives an outcome: error ids and messages that are not strings,
    or whose ``str()`` raises, are turned into the best text available.
    """
    if error is None:
        return Outcome.finished(result)
    if isinstance(error, TaskFailed):
        error_id = safe_text(getattr(error, "error_id", "")) or type(error).__name__
        return Outcome.failed(error_id, safe_text(getattr(error, "message", "")))
    if isinstance(error, PreconditionNotMet):
        return Outcome.false(safe_text(error))
    return Outcome.failed(type(error).__name__, safe_text(error), _trace(error))
