"""Reading pipeline objects the way the Java Task Runner reads them: fields, references, lists.

:meth:`pipeworker.Task.field` resolves the activity's own fields; the data nodes and
preconditions an activity refers to are other objects in ``task.objects``, whose fields are
found here, following their ``parent`` chain the same way.
"""

from __future__ import annotations

from typing import Any

from pipeworker import Ref, Task
from pipeworker.services._dptask import resolve_field

__all__ = ["as_list", "is_true", "object_field", "object_type", "refs"]


def as_list(value: Any) -> list[Any]:
    """A field's values as a list: absent -> [], one value -> [value]."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def refs(value: Any) -> list[str]:
    """The object ids a reference field points at, in order."""
    return [item.id for item in as_list(value) if isinstance(item, Ref)]


def is_true(value: Any) -> bool:
    """A Boolean field: ``"true"`` (any case) is true, anything else false."""
    return isinstance(value, str) and value.strip().lower() == "true"


def object_field(task: Task, object_id: str, key: str, default: Any = None) -> Any:
    """Field *key* of object *object_id*, or of the objects it inherits from (its component and
    ``parent`` chain), as the service resolves it (:func:`resolve_field`)."""
    value = resolve_field(task.objects, object_id, key)
    return default if value is None else value


def object_type(task: Task, object_id: str) -> str:
    """The ``type`` of *object_id* (``""`` when it has none or is not in the task)."""
    value = object_field(task, object_id, "type", "")
    return value if isinstance(value, str) else ""
