"""What an SWF activity handler sees: :class:`ActivityTask` and the names it carries.

Kept apart from :mod:`pipeworker.services.swf` (how the worker talks to SWF), as ``task.py`` is
from the supervisor; :mod:`pipeworker.services.swf` re-exports all three names.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, NamedTuple

from pipeworker.exceptions import ValidationError
from pipeworker.services._swfdescription import SWF_DESCRIPTION
from pipeworker.task import _DONE, BaseTask

__all__ = ["HEARTBEAT_DETAILS_LIMIT", "ActivityTask", "ActivityType", "WorkflowExecution"]

HEARTBEAT_DETAILS_LIMIT = SWF_DESCRIPTION.limits["heartbeat_details"]


class ActivityType(NamedTuple):
    """An SWF activity type: its name and version."""

    name: str
    version: str


class WorkflowExecution(NamedTuple):
    """The workflow execution an activity task belongs to."""

    workflow_id: str
    run_id: str


class ActivityTask(BaseTask):
    """An SWF activity task, as a handler sees it.

    Attributes:
        token: the task token every call about the task carries (also :attr:`id`).
        activity_id: the id the decider gave the activity.
        activity_type: its :class:`ActivityType` (name, version).
        workflow_execution: the :class:`WorkflowExecution` (workflow_id, run_id) it belongs to.
        input: the input the decider scheduled it with, or None.
        task_list: the task list it was polled from.
        started_event_id: the ActivityTaskStarted event's id in the workflow history.
    """

    __slots__ = ()

    @property
    def token(self) -> str:
        return self._received.id

    @property
    def activity_id(self) -> str:
        return str(self._attrs.get("activityId", ""))

    @property
    def activity_type(self) -> ActivityType:
        kind = self._attrs.get("activityType") or {}
        return ActivityType(kind.get("name", ""), kind.get("version", ""))

    @property
    def workflow_execution(self) -> WorkflowExecution:
        execution = self._attrs.get("workflowExecution") or {}
        return WorkflowExecution(execution.get("workflowId", ""), execution.get("runId", ""))

    @property
    def input(self) -> str | None:
        value = self._attrs.get("input")
        return value if isinstance(value, str) else None

    @property
    def task_list(self) -> str:
        return self._received.queue

    @property
    def started_event_id(self) -> int | None:
        value = self._attrs.get("startedEventId")
        return value if isinstance(value, int) else None

    def heartbeat(self, details: Any = None) -> Awaitable[None]:
        """Send *details* with the next heartbeat (a str as-is, anything else as JSON).

        Coalescing: only the latest details are sent, at the next beat of the worker's cadence.
        The details are taken at once, so sync handlers may call it without ``await``.

        Raises:
            ValidationError: the details are longer than 2,048 characters; nothing is queued.
        """
        if details is None:
            return _DONE
        text = details if isinstance(details, str) else json.dumps(details, separators=(",", ":"))
        if len(text) > HEARTBEAT_DETAILS_LIMIT:
            raise ValidationError(
                f"heartbeat(): details are {len(text)} characters, "
                f"the maximum is {HEARTBEAT_DETAILS_LIMIT}"
            )
        self._pending = {"details": text}
        return _DONE

    def log_extra(self) -> dict[str, str]:
        """The task's ids, for ``extra=`` in log calls: ``task_id``, ``queue`` (the task list),
        ``workflow_id`` and ``activity_id``."""
        return {
            **super().log_extra(),
            "workflow_id": self.workflow_execution.workflow_id,
            "activity_id": self.activity_id,
        }

    def __repr__(self) -> str:
        kind = self.activity_type
        return f"<ActivityTask {self.activity_id!r} {kind.name}/{kind.version}>"
