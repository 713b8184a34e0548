"""Reading AWS answers: one set of readers for every service's wire module.

An answer of the wrong shape (not an object, a member missing or of the wrong type) raises
:class:`~pipeworker.services.base.MalformedAnswer`, which the connection's one seam maps like a
5xx to a retried transient error. Light: the Data Pipeline readers (:mod:`._dpwire`) use these
without loading a client stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeworker.services.base import MalformedAnswer

__all__ = ["kind", "read_flag", "read_member", "read_object"]


def kind(value: Any) -> str:
    """How a wrong member is named in a MalformedAnswer: ``missing``, ``a list``, ..."""
    return "missing" if value is None else f"a {type(value).__name__}"


def read_object(answer: Any) -> dict[str, Any]:
    """*answer* if it is a JSON object (every answer must be, even an empty one)."""
    if not isinstance(answer, dict):
        raise MalformedAnswer(f"the answer is {kind(answer)}, not a JSON object")
    return answer


def read_member(answer: Mapping[str, Any], name: str, expected: type | tuple[type, ...]) -> Any:
    """*answer*'s member *name* if it is absent or an *expected*; else a MalformedAnswer."""
    value = answer.get(name)
    if value is not None and not isinstance(value, expected):
        raise MalformedAnswer(f"{name} is {kind(value)}: {str(value)[:80]}")
    return value


def read_flag(member: str, default: bool | None = None) -> Callable[[Any], bool]:
    """A reader of an answer's boolean *member*: required unless a *default* is given (a
    ``1`` or ``"false"`` is not a boolean, whatever Python would make of it)."""

    def read(answer: Any) -> bool:
        value = read_object(answer).get(member, default)
        if value.__class__ is not bool:
            raise MalformedAnswer(f"{member} is {kind(value)}, not a boolean")
        return bool(value)

    return read
