"""Data Pipeline's answers, read once at the connection's edge: tasks, flags, expressions.

A PollForTask answer becomes a :class:`~pipeworker.services._dptask.ReceivedAttempt` (objects and
fields as Python values, shared short values interned); an answer of the wrong shape raises
:class:`~pipeworker.services.base.MalformedAnswer` naming what was wrong.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from pipeworker.services._answers import kind as _kind
from pipeworker.services._answers import read_flag, read_object
from pipeworker.services._dptask import FieldValue, ReceivedAttempt, Ref, resolve_field
from pipeworker.services.base import MalformedAnswer

__all__ = [
    "period_seconds",
    "poll_answer",
    "read_canceled",
    "read_expression",
    "read_terminate",
    "task_from_wire",
]


def _malformed_field(field: Any, task_id: str, object_id: str) -> MalformedAnswer:
    return MalformedAnswer(
        f"taskObject: a field of object {object_id[:80]!r} is not a key with a string or "
        f"reference value: {str(field)[:120]}",
        task_id=task_id,
    )


# Keys and short values (types, dates, worker groups, object ids) repeat across every task in
# flight; interned, thousands of tasks share one copy of each instead of one per task. Interned
# strings are freed with their last user, and longer values are rarely shared.
_intern = sys.intern
_SHARED_VALUE_LENGTH = 64


def _fields_from_wire(fields: Any, task_id: str, object_id: str) -> dict[str, FieldValue]:
    if fields is None:
        return {}
    if not isinstance(fields, list):
        raise MalformedAnswer(
            f"taskObject: objects[{object_id[:80]!r}].fields is {_kind(fields)}, not a list",
            task_id=task_id,
        )
    result: dict[str, FieldValue] = {}
    for field in fields:
        # Checked as read, one isinstance per member: this runs for every field of every task.
        if not isinstance(field, dict) or not isinstance(key := field.get("key"), str):
            raise _malformed_field(field, task_id, object_id)
        ref = field.get("refValue")
        value: str | Ref
        if ref is None:
            text = field.get("stringValue")
            if text is None:
                value = ""
            elif isinstance(text, str):
                value = _intern(text) if len(text) <= _SHARED_VALUE_LENGTH else text
            else:
                raise _malformed_field(field, task_id, object_id)
        elif isinstance(ref, str):
            value = Ref(_intern(ref))
        else:
            raise _malformed_field(field, task_id, object_id)
        key = _intern(key)
        previous = result.get(key)
        if previous is None:
            result[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            result[key] = [previous, value]
    return result


_PERIOD = re.compile(r"\s*(\d+)\s*(second|minute|hour|day|week)s?\s*", re.IGNORECASE)
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


def period_seconds(text: str) -> float | None:
    """Seconds in a Data Pipeline period such as ``"10 Minutes"``; None if it is not one."""
    match = _PERIOD.fullmatch(text)
    if match is None:
        return None
    return int(match[1]) * _UNIT_SECONDS[match[2].lower()]


def task_from_wire(queue: str, task: Any) -> ReceivedAttempt:
    """Translate PollForTask's ``taskObject``, checking its shape as it goes.

    Raises:
        MalformedAnswer: the task has no ``taskId``, or a member has the wrong type.
    """
    if not isinstance(task, dict):
        raise MalformedAnswer(f"taskObject is {_kind(task)}, not an object")
    task_id = task.get("taskId")
    if not isinstance(task_id, str) or not task_id:
        raise MalformedAnswer(f"taskObject has no taskId: {str(task)[:120]}")
    pipeline_id = task.get("pipelineId") or ""
    attempt_id = task.get("attemptId") or ""
    wire_objects = task.get("objects") or {}
    if not (
        isinstance(pipeline_id, str)
        and isinstance(attempt_id, str)
        and isinstance(wire_objects, dict)
    ):
        raise MalformedAnswer(
            f"taskObject: pipelineId is {_kind(pipeline_id)}, attemptId {_kind(attempt_id)}, "
            f"objects {_kind(wire_objects)} (expected str, str, object)",
            task_id=task_id,
        )
    objects: dict[str, Mapping[str, FieldValue]] = {}
    for object_id, obj in wire_objects.items():
        if not isinstance(obj, dict):
            raise MalformedAnswer(
                f"taskObject: objects[{object_id[:80]!r}] is {_kind(obj)}, not an object",
                task_id=task_id,
            )
        # Interned: the same string as the Refs to this object, here and in other tasks.
        objects[_intern(object_id)] = _fields_from_wire(obj.get("fields"), task_id, object_id)
    attempt_id = _intern(attempt_id)
    kind = resolve_field(objects, attempt_id, "type")
    timeout = resolve_field(objects, attempt_id, "reportProgressTimeout")
    return ReceivedAttempt(
        id=task_id,
        queue=queue,
        pipeline_id=_intern(pipeline_id),
        attempt_id=attempt_id,
        objects=objects,
        type=kind if isinstance(kind, str) else None,
        lease_seconds=period_seconds(timeout) if isinstance(timeout, str) else None,
    )


def poll_answer(queue: str, answer: Any) -> ReceivedAttempt | None:
    """Read PollForTask's answer: the task, or None when the hold ran out without one."""
    task = read_object(answer).get("taskObject")
    return None if task is None else task_from_wire(queue, task)


def read_expression(answer: Any) -> str:
    value = read_object(answer).get("evaluatedExpression")
    if not isinstance(value, str):
        raise MalformedAnswer(f"evaluatedExpression is {_kind(value)}, not a string")
    return value


read_canceled = read_flag("canceled")
read_terminate = read_flag("terminate")
