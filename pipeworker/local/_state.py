"""The service's in-memory state: pipelines, their instances and attempts, tasks and runners.

Runtime fields a user reads back (``@status``, ``@actualStartTime``, ...) live in each object's
``fields`` next to the definition's, so DescribeObjects, QueryObjects and the expression lookup all
read one place.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeworker.local._definition import Component
from pipeworker.local._values import Fields, Value, format_datetime

__all__ = [
    "FAILED_LIKE",
    "TERMINAL",
    "Attempt",
    "Instance",
    "Pipeline",
    "Runner",
    "ServiceState",
    "Task",
    "now_text",
    "utc_now",
]

TERMINAL = frozenset({"FINISHED", "FAILED", "CANCELED", "CASCADE_FAILED", "TIMEDOUT"})
"""Instance statuses after which nothing runs unless a user asks for a rerun."""
FAILED_LIKE = TERMINAL - {"FINISHED"}
"""Statuses of a dependency that make its dependents CASCADE_FAILED."""


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


_now_cache: list[Any] = [-1, ""]


def now_text() -> str:
    """The current time as the service writes it; formatted once per second (a hot path)."""
    second = int(time.time())
    if _now_cache[0] != second:
        _now_cache[0] = second
        _now_cache[1] = format_datetime(datetime.fromtimestamp(second, UTC))
    return str(_now_cache[1])


class _Object:
    """Shared by instances and attempts: an id, a name and fields with ``@status`` among them."""

    __slots__ = ("fields", "id", "name", "status")

    def __init__(self, object_id: str, name: str, fields: dict[str, list[Value]]) -> None:
        self.id = object_id
        self.name = name
        self.fields = fields
        self.status = ""

    def touch(self) -> None:
        """Note a change, for a service that keeps its state (``LocalConfig.state_path``)."""

    def set_status(self, status: str) -> None:
        self.status = status
        self.fields["@status"] = [status]
        self.touch()

    def set(self, key: str, value: Value | None) -> None:
        """Set a single-valued field; None removes it."""
        if value is None:
            self.fields.pop(key, None)
        else:
            self.fields[key] = [value]
        self.touch()

    def stamp(self, key: str, moment: datetime | None = None) -> None:
        """Set a date field to *moment* (now by default), in the service's date format."""
        self.fields[key] = [format_datetime(moment) if moment else now_text()]
        self.touch()


class Instance(_Object):
    """One run of a component in one activation: an activity to execute, or an object it uses."""

    __slots__ = (
        "attempt_timeout",
        "attempts",
        "component_id",
        "components",
        "dependents",
        "depends_on",
        "in_queue",
        "is_activity",
        "kind",
        "max_retries",
        "pipeline",
        "report_progress_timeout",
        "retry_at",
        "retry_delay",
        "retry_handle",
        "tries_failed",
        "worker_group",
    )

    def __init__(
        self,
        object_id: str,
        name: str,
        fields: dict[str, list[Value]],
        *,
        pipeline: Pipeline,
        component_id: str,
        is_activity: bool,
        kind: str = "activity",
    ) -> None:
        super().__init__(object_id, name, fields)
        self.pipeline = pipeline
        self.component_id = component_id
        self.is_activity = is_activity
        # activity, precondition (both run as tasks), datanode or resource.
        self.kind = kind
        # The run's other objects (schedules, databases, data formats...) as a runner may see
        # them: fields evaluated for this run. Shared by every instance of the run.
        self.components: dict[str, tuple[str, dict[str, list[Value]]]] = {}
        self.worker_group = ""
        self.depends_on: list[Instance] = []
        self.dependents: list[Instance] = []
        self.attempts: list[Attempt] = []
        self.max_retries = 2
        self.retry_delay = 600.0
        self.report_progress_timeout: float | None = None
        self.attempt_timeout: float | None = None
        self.tries_failed = 0
        self.in_queue = False
        self.retry_handle: asyncio.TimerHandle | None = None
        self.retry_at = 0.0  # wall-clock time of the pending retry, for a kept state

    def touch(self) -> None:
        changed = self.pipeline.changed
        if changed is not None:
            changed.add(self)

    @property
    def current(self) -> Attempt | None:
        """The latest attempt, if any."""
        return self.attempts[-1] if self.attempts else None


class Attempt(_Object):
    """One try of an activity instance; handed to a runner as a task."""

    __slots__ = ("instance", "task")

    def __init__(self, object_id: str, fields: dict[str, list[Value]], instance: Instance) -> None:
        super().__init__(object_id, object_id, fields)
        self.instance = instance
        self.task: Task | None = None

    def touch(self) -> None:
        changed = self.instance.pipeline.changed
        if changed is not None:
            changed.add(self)


@dataclass(eq=False, slots=True)
class Task:
    """A lease of an attempt to a runner, named by its taskId."""

    id: str
    attempt: Attempt
    deadline: float
    acknowledged: bool = False
    cancel_requested: bool = False
    final_status: str | None = None
    timer: asyncio.TimerHandle | None = None
    started: float = 0.0


@dataclass(eq=False, slots=True)
class Pipeline:
    """A pipeline: its description, its definition, and the instances its activations made."""

    id: str
    name: str
    unique_id: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    created: datetime = field(default_factory=utc_now)
    state: str = "PENDING"
    # The definition as sent (answered back verbatim by GetPipelineDefinition) and as parsed.
    definition: dict[str, Any] | None = None
    active_definition: dict[str, Any] | None = None
    components: dict[str, Component] = field(default_factory=dict)
    resolved: dict[str, dict[str, list[Value]]] = field(default_factory=dict)
    errored: bool = False
    instances: dict[str, Instance] = field(default_factory=dict)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    paused_components: set[str] = field(default_factory=set)
    current_run: list[Instance] = field(default_factory=list)
    # The current run's instances that are no tasks: data nodes, resources, S3 preconditions.
    current_objects: list[Instance] = field(default_factory=list)
    # Parameter values of the active run, and the optional parameters that have none.
    parameters: dict[str, str] = field(default_factory=dict)
    blank_parameters: frozenset[str] = frozenset()
    # Actions (onFail, onSuccess, onLateAction) fired, oldest first: what they would have sent.
    fired_actions: list[dict[str, Any]] = field(default_factory=list)
    # The schedule's progress: its first run's time and how many runs it has made.
    schedule_first: datetime | None = None
    schedule_made: int = 0
    # With a kept state: the instances and attempts changed since the last save.
    changed: set[Any] | None = None
    # Ids of the runs' tasks not yet in a terminal status: "is it over?" in O(1); by run too
    # (keyed by the run's scheduled start), as scheduled runs overlap.
    open_activities: set[str] = field(default_factory=set)
    open_by_run: dict[str, set[str]] = field(default_factory=dict)
    # True while the schedule has runs to come (SCHEDULED stays SCHEDULED).
    schedule_active: bool = False
    last_run_start: datetime | None = None
    health: str = ""

    def describe_fields(self) -> dict[str, list[Value]]:
        """The fields DescribePipelines answers."""
        fields: dict[str, list[Value]] = {
            "@id": [self.id],
            "name": [self.name],
            "uniqueId": [self.unique_id],
            "@pipelineState": [self.state],
            "@creationTime": [format_datetime(self.created)],
            "@sphere": ["PIPELINE"],
            "@userId": ["000000000000"],
            "@accountId": ["000000000000"],
            "pipelineCreator": ["000000000000"],
        }
        if self.description:
            fields["description"] = [self.description]
        if self.last_run_start is not None:
            fields["@latestRunTime"] = [format_datetime(self.last_run_start)]
        if self.health:
            fields["@healthStatus"] = [self.health]
        return fields

    def object_fields(self, object_id: str) -> Fields | None:
        """An instance's or attempt's fields by id (the evaluator's lookup); None if unknown.

        An attempt inherits its instance's fields (through ``@instanceParent``), as on the service,
        so an expression evaluated on a task's attempt sees ``@scheduledStartTime`` and the rest.
        """
        instance = self.instances.get(object_id)
        if instance is not None:
            return instance.fields
        attempt = self.attempts.get(object_id)
        if attempt is None:
            return None
        return {**attempt.instance.fields, **attempt.fields}


@dataclass(eq=False, slots=True)
class Runner:
    """A task runner known from its heartbeats."""

    id: str
    worker_group: str = ""
    hostname: str = ""
    last_heartbeat: datetime = field(default_factory=utc_now)
    terminate: bool = False


class ServiceState:
    """Everything the service knows; one per LocalService."""

    # How many finished taskIds to remember so a retried SetTaskStatus still succeeds.
    FINISHED_TASKS_KEPT = 100_000

    def __init__(self) -> None:
        self.pipelines: dict[str, Pipeline] = {}
        self.by_unique_id: dict[str, Pipeline] = {}
        self.deleted: set[str] = set()
        self.tasks: dict[str, Task] = {}
        self.finished_tasks: OrderedDict[str, Task] = OrderedDict()
        self.deleted_tasks: dict[str, str] = {}
        self.runners: dict[str, Runner] = {}
        self.terminating: set[str] = set()

    def remember_finished(self, task: Task) -> None:
        """Keep a finished task for idempotent retries, forgetting the oldest beyond the cap."""
        self.tasks.pop(task.id, None)
        self.finished_tasks[task.id] = task
        if len(self.finished_tasks) > self.FINISHED_TASKS_KEPT:
            self.finished_tasks.popitem(last=False)
