"""What a Data Pipeline handler sees: :class:`Task`, its fields and :class:`Ref` s.

Data Pipeline's own shape lives here, not in the core: the objects a task comes with, field
inheritance (``@instanceParent``, ``@componentParent``, ``parent``), references between objects,
and what one ReportTaskProgress may carry. :mod:`pipeworker.services.datapipeline` (how the worker
talks to the service) and ``pipeworker`` re-export the public names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from pipeworker import _retry
from pipeworker.exceptions import ValidationError
from pipeworker.services._dpdescription import DATA_PIPELINE
from pipeworker.services.base import ReceivedTask
from pipeworker.task import _DONE, BaseTask

__all__ = [
    "MAX_PROGRESS_BYTES",
    "MAX_PROGRESS_FIELDS",
    "FieldValue",
    "ReceivedAttempt",
    "Ref",
    "Task",
    "check_progress_fields",
    "resolve_field",
]

# What one object may hold (the whole ReportTaskProgress request lands on the attempt object).
MAX_PROGRESS_FIELDS = DATA_PIPELINE.limits["object_fields"]
MAX_PROGRESS_BYTES = DATA_PIPELINE.limits["object_bytes"]


@dataclass(frozen=True, slots=True)
class Ref:
    """A field value that refers to another object of the same pipeline, by id."""

    id: str


FieldValue = str | Ref | list[str | Ref]
"""A field as a handler sees it: one value, or a list when the field holds several."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedAttempt(ReceivedTask):
    """A Data Pipeline task as PollForTask delivered it.

    Attributes:
        pipeline_id: the pipeline the task belongs to.
        attempt_id: the object of this attempt; fields and expressions start from it.
        objects: every object the task came with, by id, fields as Python values.
    """

    pipeline_id: str
    attempt_id: str
    objects: Mapping[str, Mapping[str, FieldValue]]


# Where a Data Pipeline object inherits from: the attempt's instance, the instance's component,
# and the user's own `parent` chain (which the `Default` object usually ends).
_INHERIT_FROM = ("@instanceParent", "@componentParent", "parent")


def resolve_field(
    objects: Mapping[str, Mapping[str, FieldValue]], start: str, key: str
) -> FieldValue | None:
    """Find field *key* on object *start* or, failing that, on the objects it inherits from.

    Breadth-first: the object's own fields, then its instance's, its component's and each
    ``parent`` in turn. Objects missing from *objects* are skipped; cycles are harmless.
    """
    pending = [start]
    seen: set[str] = set()
    while pending:
        object_id = pending.pop(0)
        if object_id in seen:
            continue
        seen.add(object_id)
        fields = objects.get(object_id)
        if fields is None:
            continue
        if key in fields:
            return fields[key]
        for link in _INHERIT_FROM:
            target = fields.get(link)
            for ref in target if isinstance(target, list) else [target]:
                if isinstance(ref, Ref):
                    pending.append(ref.id)
    return None


@cache
def _field_shapes() -> tuple[Any, Any]:
    # botocore's model, loaded the first time a handler reports fields.
    from pipeworker._model import operation_input

    shape = operation_input("datapipeline", "ReportTaskProgress")
    assert shape is not None
    members = shape.members["fields"].member.members  # type: ignore[attr-defined]
    return members["key"], members["stringValue"]


def check_progress_fields(fields: Mapping[str, str | Ref]) -> list[str]:
    """What ReportTaskProgress would reject in *fields* (count, size, lengths, characters)."""
    from pipeworker._model import check_value

    key_shape, value_shape = _field_shapes()
    problems: list[str] = []
    if len(fields) > MAX_PROGRESS_FIELDS:
        problems.append(
            f"{len(fields)} fields in one report; an object holds at most {MAX_PROGRESS_FIELDS}"
        )
    size = sum(
        len(key.encode("utf-8", "replace"))
        + len((value.id if isinstance(value, Ref) else value).encode("utf-8", "replace"))
        for key, value in fields.items()
    )
    if size > MAX_PROGRESS_BYTES:
        problems.append(
            f"the fields take {size:,} UTF-8 bytes; an object holds at most {MAX_PROGRESS_BYTES:,}"
        )
    for key, value in fields.items():
        problems += check_value(key_shape, key, f"field name {key[:40]!r}")
        text = value.id if isinstance(value, Ref) else value
        shape = key_shape if isinstance(value, Ref) else value_shape
        problems += check_value(shape, text, f"field {key[:40]!r}")
    return problems


class Task(BaseTask):
    """One task given to a handler.

    Attributes:
        id: the service's token for the task (Data Pipeline's ``taskId``).
        pipeline_id: the pipeline the task belongs to.
        attempt_id: the id of this attempt's object (``@MyActivity_..._Attempt=1``).
        worker_group: the worker group (queue) the task was polled from.
        type: the activity's type, for example ``"ShellCommandActivity"``, if it has one.
        objects: every object that came with the task, by id; each maps field keys to a string,
            a :class:`~pipeworker.Ref` to another object, or a list when the field holds several.
    """

    __slots__ = ()

    @property
    def _attempt(self) -> ReceivedAttempt:
        return cast(ReceivedAttempt, self._received)

    @property
    def pipeline_id(self) -> str:
        return self._attempt.pipeline_id

    @property
    def attempt_id(self) -> str:
        return self._attempt.attempt_id

    @property
    def worker_group(self) -> str:
        return self._received.queue

    @property
    def type(self) -> str | None:
        return self._received.type

    @property
    def objects(self) -> Mapping[str, Mapping[str, FieldValue]]:
        return self._attempt.objects

    def field(self, key: str, default: Any = None) -> Any:
        """Return the activity's field *key*, following inheritance; *default* if it has none.

        The attempt's own fields come first, then its instance's, its component's and each
        ``parent`` in turn, as the service resolves them.
        """
        attempt = self._attempt
        value = resolve_field(attempt.objects, attempt.attempt_id, key)
        return default if value is None else value

    async def evaluate(self, expression: str) -> str:
        """Evaluate *expression* (``"#{@scheduledStartTime}"``) on this task's object.

        Raises:
            ValidationError: the expression is longer than the service accepts.
            ServiceError: the service could not evaluate it, after retries where that helps.
        """
        return await _retry.call(
            _retry.EVALUATE, lambda: self._connection.evaluate(self._received, expression)
        )

    def evaluate_sync(self, expression: str, timeout: float | None = None) -> str:
        """:meth:`evaluate` for sync handlers: blocks the handler's thread, never the event loop.

        Raises:
            RuntimeError: called on the event loop's own thread (use ``await evaluate()`` there).
            TimeoutError: no answer within *timeout* seconds.
        """
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("evaluate_sync() blocks: in an async handler use await evaluate()")
        future = asyncio.run_coroutine_threadsafe(self.evaluate(expression), self._loop)
        return future.result(timeout)

    def heartbeat(self, details: Mapping[str, object] | None = None) -> Awaitable[None]:
        """Send the fields in *details* with the next progress report (see
        :meth:`report_progress`); the verb every service's task shares.

        Raises:
            ValidationError: *details* is not a mapping of field names, or holds a key or value
                the service would reject; nothing is queued.
        """
        if details is None:
            return _DONE
        if not isinstance(details, Mapping) or not all(isinstance(k, str) for k in details):
            raise ValidationError(
                "heartbeat(): Data Pipeline's details are fields, a mapping of names to values, "
                f"not {type(details).__name__}"
            )
        return self.report_progress(**details)

    def report_progress(self, **fields: object) -> Awaitable[None]:
        """Send *fields* with the next progress report (strings, or :class:`Ref` s).

        Other values are sent as ``str(value)``. Later calls add to (and overwrite keys of) the
        fields not yet sent. The fields are taken at once, so sync handlers (in their thread) may
        call it without ``await``; async handlers write ``await task.report_progress(...)``.

        Raises:
            ValidationError: a key or value the service would reject; nothing is queued.
        """
        converted = {
            key: value if isinstance(value, str | Ref) else str(value)
            for key, value in fields.items()
        }
        # The whole request is checked (what is pending and what is added), so a report that the
        # service would refuse for its size is refused here, in the handler that made it.
        merged = {**self._pending, **converted} if self._pending else converted
        problems = check_progress_fields(merged)
        if problems:
            raise ValidationError(f"report_progress(): {'; '.join(problems)}")
        # One assignment of a new dict: safe against the loop taking the pending fields while
        # a handler thread adds to them.
        self._pending = merged
        return _DONE

    def __repr__(self) -> str:
        return f"<Task {self._received.id!r} attempt={self._attempt.attempt_id!r}>"

    def log_extra(self) -> dict[str, str]:
        """The task's ids, for ``extra=`` in log calls: ``task_id``, ``pipeline_id``,
        ``attempt_id`` and ``worker_group``."""
        attempt = self._attempt
        return {
            "task_id": attempt.id,
            "pipeline_id": attempt.pipeline_id,
            "attempt_id": attempt.attempt_id,
            "worker_group": attempt.queue,
        }
