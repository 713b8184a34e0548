"""Turning a definition into one run's instances, the way ActivatePipeline does.

What AWS instantiates becomes an instance ``@<id>_<scheduledStartTime>``: every activity, and the
data nodes, resources and preconditions the activities use. Schedules, databases, data formats,
EMR configurations and actions (``SnsAlarm``, ``Terminate``) are never instances; a task carries
them as components whose fields are evaluated for the run, and actions are fired by the service
(see ``_actions``), never shown to a runner.

References between instances are rewritten to point at the instances. Parameters are substituted
(a masked ``*myX`` like any other; an optional parameter without a value is the empty string, and
a field that was only that parameter is left out) and ``#{...}`` expressions are evaluated in each
object's own context, so a task carries evaluated values only.

Worker groups: an activity with ``runsOn`` goes to its resource's group, whatever ``workerGroup``
says (AWS: "If you provide a runsOn value and workerGroup exists, workerGroup is ignored"). A
resource's group is :func:`resource_worker_group`, ``<pipelineId>/<resourceId>``: resource ids
repeat across pipelines (``EC2ResourceObj``), so each pipeline's resources get their own group.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta

from pipeworker.local._config import LocalConfig
from pipeworker.local._definition import (
    ACTION_REFS,
    DEFAULT_ID,
    PRECONDITION_TYPES,
    instance_kind,
)
from pipeworker.local._evaluation import (
    PARAMETER,
    ExpressionError,
    evaluate_text,
    period_seconds,
    substitute_parameters,
)
from pipeworker.local._state import Instance, Pipeline
from pipeworker.local._values import Fields, Lookup, Ref, Value, format_datetime

__all__ = [
    "RUNNER_PRECONDITIONS",
    "build_run",
    "pipeline_lookup",
    "resource_worker_group",
]

RUNNER_PRECONDITIONS = PRECONDITION_TYPES - {"S3KeyExists", "S3PrefixNotEmpty"}
"""Precondition types a task runner checks (as tasks); the service checks the S3 ones itself."""


def resource_worker_group(pipeline_id: str, resource_id: str) -> str:
    """The worker group of the tasks that ``runsOn`` resource *resource_id* of *pipeline_id*."""
    return f"{pipeline_id}/{resource_id}"


def pipeline_lookup(pipeline: Pipeline) -> Lookup:
    """The evaluator's lookup: instances and attempts by id, else components (resolved).

    An object's ``name`` reads as a field too, so an alarm's ``#{node.name}`` works.
    """

    def lookup(object_id: str) -> Fields | None:
        found = pipeline.object_fields(object_id)
        if found is None:
            found = pipeline.resolved.get(object_id)
        if found is None or "name" in found:
            return found
        return {**found, "name": [_name(pipeline, object_id)]}

    return lookup


def _name(pipeline: Pipeline, object_id: str) -> str:
    instance = pipeline.instances.get(object_id)
    if instance is not None:
        return instance.name
    attempt = pipeline.attempts.get(object_id)
    if attempt is not None:
        return attempt.name
    component = pipeline.components.get(object_id)
    return component.name if component is not None else object_id


def _refs(fields: Mapping[str, list[Value]], skip: frozenset[str]) -> list[str]:
    return [
        value.id
        for key, values in fields.items()
        if key not in skip
        for value in values
        if isinstance(value, Ref)
    ]


_NOT_USED = frozenset({"parent", "dependsOn"}) | ACTION_REFS


def _reachable(resolved: Mapping[str, Mapping[str, list[Value]]]) -> tuple[list[str], list[str]]:
    """(objects to instantiate, components a task may see), in definition order.

    Activities are instantiated, then whatever instantiable object they use, transitively
    (an input data node's precondition too); other objects they reach are components.
    """
    kinds = {oid: instance_kind(fields) for oid, fields in resolved.items()}
    start = [oid for oid, kind in kinds.items() if kind == "activity" and oid != DEFAULT_ID]
    seen = set(start)
    stack = list(start)
    while stack:
        for target in _refs(resolved[stack.pop()], _NOT_USED):
            if target in resolved and target != DEFAULT_ID and target not in seen:
                seen.add(target)
                stack.append(target)
    instances = [oid for oid in resolved if oid in seen and kinds[oid] is not None]
    components = [oid for oid in resolved if oid in seen and kinds[oid] is None]
    return instances, components


def _end_time(
    fields: Mapping[str, list[Value]],
    resolved: Mapping[str, Mapping[str, list[Value]]],
    start: datetime,
) -> datetime:
    schedule = fields.get("schedule", [None])[0]
    if isinstance(schedule, Ref) and schedule.id in resolved:
        period = resolved[schedule.id].get("period")
        if period and isinstance(period[0], str):
            try:
                return start + timedelta(seconds=period_seconds(period[0], 1.0))
            except ValueError:
                pass
    return start


def _substituted(
    values: list[Value],
    ids: Mapping[str, str],
    parameters: Mapping[str, str],
    blank: frozenset[str],
) -> list[Value]:
    result: list[Value] = []
    for value in values:
        if isinstance(value, Ref):
            result.append(Ref(ids.get(value.id, value.id)))
            continue
        whole = PARAMETER.fullmatch(value.strip())
        if whole and whole.group(1) in blank and whole.group(1) not in parameters:
            continue  # only an optional parameter without a value: as if the field were unset
        result.append(substitute_parameters(value, parameters, blank))
    return result


def build_run(
    pipeline: Pipeline,
    scheduled: datetime,
    parameters: Mapping[str, str],
    config: LocalConfig,
    blank: frozenset[str] = frozenset(),
) -> tuple[list[Instance], dict[str, str]]:
    """Create one run's instances; return them and the expression errors per instance id."""
    resolved = pipeline.resolved
    stamp = format_datetime(scheduled)
    order, component_ids = _reachable(resolved)
    ids = {oid: f"@{oid}_{stamp}" for oid in order}
    run_times: dict[str, list[Value]] = {
        "@scheduledStartTime": [stamp],
        "@scheduledEndTime": [format_datetime(_end_time(resolved[DEFAULT_ID], resolved, scheduled))]
        if DEFAULT_ID in resolved
        else [stamp],
    }
    instances: dict[str, Instance] = {}
    for oid in order:
        kind = instance_kind(resolved[oid]) or ""
        fields: dict[str, list[Value]] = {}
        for key, values in resolved[oid].items():
            if key == "parent" or (key == "workerGroup" and kind in ("resource", "datanode")):
                # workerGroup is no field of resources or data nodes: not inherited from Default.
                continue
            kept = _substituted(values, ids, parameters, blank)
            if kept:
                fields[key] = kept
        fields["@componentParent"] = [Ref(oid)]
        fields["@scheduledStartTime"] = [stamp]
        fields["@scheduledEndTime"] = [
            format_datetime(_end_time(resolved[oid], resolved, scheduled))
        ]
        runs_as_task = kind == "activity" or (
            kind == "precondition" and fields.get("type", [""])[0] in RUNNER_PRECONDITIONS
        )
        instance = Instance(
            ids[oid],
            pipeline.components[oid].name,
            fields,
            pipeline=pipeline,
            component_id=oid,
            is_activity=runs_as_task,
            kind=kind,
        )
        instance.stamp("@actualStartTime")
        instances[instance.id] = instance
    pipeline.instances.update(instances)
    components = _components(pipeline, component_ids, ids, parameters, blank, run_times)
    errors = _evaluate(pipeline, instances)
    for instance in instances.values():
        instance.components = components
        if instance.is_activity:
            _configure(instance, instances, config)
    _data_dependencies(instances)
    return list(instances.values()), errors


def _components(
    pipeline: Pipeline,
    component_ids: list[str],
    ids: Mapping[str, str],
    parameters: Mapping[str, str],
    blank: frozenset[str],
    run_times: Mapping[str, list[Value]],
) -> dict[str, tuple[str, dict[str, list[Value]]]]:
    """The run's components with evaluated fields; a field that cannot be evaluated out of an
    instance's context (``#{node.x}``) is left out rather than shown raw."""
    substituted: dict[str, dict[str, list[Value]]] = {}
    for oid in component_ids:
        fields: dict[str, list[Value]] = {}
        for key, values in pipeline.resolved[oid].items():
            if key == "parent" or key in ACTION_REFS:
                continue
            kept = _substituted(values, ids, parameters, blank)
            if kept:
                fields[key] = kept
        substituted[oid] = fields
    base = pipeline_lookup(pipeline)

    def lookup(object_id: str) -> Fields | None:
        if object_id in substituted:
            return {**run_times, **substituted[object_id]}
        return base(object_id)

    result: dict[str, tuple[str, dict[str, list[Value]]]] = {}
    for oid, fields in substituted.items():
        evaluated: dict[str, list[Value]] = {}
        for key, values in fields.items():
            try:
                evaluated[key] = [
                    evaluate_text(v, oid, lookup) if isinstance(v, str) else v for v in values
                ]
            except ExpressionError:
                continue
        result[oid] = (pipeline.components[oid].name, evaluated)
    return result


def _evaluate(pipeline: Pipeline, instances: Mapping[str, Instance]) -> dict[str, str]:
    lookup = pipeline_lookup(pipeline)
    errors: dict[str, str] = {}
    for instance in instances.values():
        for key, values in instance.fields.items():
            if key in ACTION_REFS:
                continue
            for index, value in enumerate(values):
                if isinstance(value, str) and "#{" in value:
                    try:
                        values[index] = evaluate_text(value, instance.id, lookup)
                    except ExpressionError as exc:
                        errors.setdefault(instance.id, f"Field {key!r}: {exc}")
    return errors


def _single(fields: Mapping[str, list[Value]], key: str) -> str | None:
    values = fields.get(key)
    return values[0] if values and isinstance(values[0], str) else None


def _configure(instance: Instance, instances: Mapping[str, Instance], config: LocalConfig) -> None:
    """Read the task's runtime settings: worker group, retries, timeouts, dependencies."""
    fields = instance.fields
    resource = fields.get("runsOn", [None])[0]
    if isinstance(resource, Ref):
        target = instances.get(resource.id)
        component = target.component_id if target is not None else resource.id
        instance.worker_group = resource_worker_group(instance.pipeline.id, component)
    else:
        instance.worker_group = _single(fields, "workerGroup") or ""
    retries = _single(fields, "maximumRetries")
    if retries is not None and retries.isdigit():
        instance.max_retries = int(retries)
    for key, attribute in (
        ("retryDelay", "retry_delay"),
        ("reportProgressTimeout", "report_progress_timeout"),
        ("attemptTimeout", "attempt_timeout"),
    ):
        text = _single(fields, key)
        if text is not None:
            with contextlib.suppress(ValueError):
                setattr(instance, attribute, period_seconds(text, config.time_scale))
    if _single(fields, "retryDelay") is None:
        instance.retry_delay = 600.0 * config.time_scale
    for value in fields.get("dependsOn", []):
        if isinstance(value, Ref) and value.id in instances:
            _depend(instance, instances[value.id])


def _depend(instance: Instance, dependency: Instance) -> None:
    # A node that is both an activity's input and its output waits for the activity, not the
    # other way round (no two-object cycle).
    if dependency is instance or dependency in instance.depends_on:
        return
    if instance in dependency.depends_on:
        return
    instance.depends_on.append(dependency)
    dependency.dependents.append(instance)


def _data_dependencies(instances: Mapping[str, Instance]) -> None:
    """An output data node waits for the activities that produce it; an activity waits for its
    inputs (so for their producers) and for its preconditions and its inputs' preconditions."""
    for instance in instances.values():
        if instance.kind != "activity":
            continue
        for value in instance.fields.get("output", []):
            node = instances.get(value.id) if isinstance(value, Ref) else None
            if node is not None and node.kind == "datanode":
                _depend(node, instance)
    for instance in instances.values():
        if instance.kind != "activity":
            continue
        for key in ("input", "precondition"):
            for value in instance.fields.get(key, []):
                used = instances.get(value.id) if isinstance(value, Ref) else None
                if used is None:
                    continue
                _depend(instance, used)
                if key == "precondition" and used.kind == "precondition":
                    used.fields.setdefault("node", [Ref(instance.id)])  # what it guards
                if used.kind == "datanode":
                    for check in used.fields.get("precondition", []):
                        found = instances.get(check.id) if isinstance(check, Ref) else None
                        if found is not None:
                            _depend(used, found)
                            # A runner's check (Exists) reads the data node it guards from here.
                            found.fields.setdefault("node", [Ref(used.id)])
    for instance in instances.values():
        if instance.kind == "precondition" and instance.is_activity and not instance.worker_group:
            # A check with no runsOn or workerGroup of its own runs where the activity runs.
            instance.worker_group = _activity_group(instance)


def _activity_group(instance: Instance) -> str:
    pending = list(instance.dependents)
    seen: set[str] = set()
    while pending:
        current = pending.pop(0)
        if current.id in seen:
            continue
        seen.add(current.id)
        if current.kind == "activity" and current.worker_group:
            return current.worker_group
        pending.extend(current.dependents)
    return ""
