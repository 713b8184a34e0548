"""Turning a definition into one run's instances, the way ActivatePipeline does.

Every activity becomes an instance ``@<id>_<scheduledStartTime>``; so does every object an activity
uses (data nodes, resources, preconditions), and references between them are rewritten to point at
the instances. Parameters are substituted and ``#{...}`` expressions evaluated in each instance's
own context, so a task carries resolved values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta

from pipeworker.local._config import LocalConfig
from pipeworker.local._definition import DEFAULT_ID, STRUCTURAL_REFS, is_activity
from pipeworker.local._evaluation import (
    ExpressionError,
    evaluate_text,
    period_seconds,
    substitute_parameters,
)
from pipeworker.local._state import Instance, Pipeline
from pipeworker.local._values import Fields, Lookup, Ref, Value, format_datetime

__all__ = ["build_run", "pipeline_lookup"]


def pipeline_lookup(pipeline: Pipeline) -> Lookup:
    """The evaluator's lookup: instances and attempts by id, else components (resolved)."""

    def lookup(object_id: str) -> Fields | None:
        found = pipeline.object_fields(object_id)
        if found is not None:
            return found
        return pipeline.resolved.get(object_id)

    return lookup


def _needed(resolved: Mapping[str, Mapping[str, list[Value]]]) -> list[str]:
    """Activities and every object they use through non-structural references, in order."""
    needed = {oid for oid, fields in resolved.items() if oid != DEFAULT_ID and is_activity(fields)}
    stack = list(needed)
    while stack:
        for key, values in resolved[stack.pop()].items():
            if key in STRUCTURAL_REFS:
                continue
            for value in values:
                if (
                    isinstance(value, Ref)
                    and value.id in resolved
                    and value.id != DEFAULT_ID
                    and value.id not in needed
                ):
                    needed.add(value.id)
                    stack.append(value.id)
    return [oid for oid in resolved if oid in needed]


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


def build_run(
    pipeline: Pipeline, scheduled: datetime, parameters: Mapping[str, str], config: LocalConfig
) -> tuple[list[Instance], dict[str, str]]:
    """Create one run's instances; return them and the expression errors per instance id."""
    resolved = pipeline.resolved
    stamp = format_datetime(scheduled)
    order = _needed(resolved)
    ids = {oid: f"@{oid}_{stamp}" for oid in order}
    instances: dict[str, Instance] = {}
    for oid in order:
        fields: dict[str, list[Value]] = {}
        for key, values in resolved[oid].items():
            if key == "parent":
                continue
            fields[key] = [
                Ref(ids.get(value.id, value.id))
                if isinstance(value, Ref)
                else substitute_parameters(value, parameters)
                for value in values
            ]
        fields["@componentParent"] = [Ref(oid)]
        fields["@scheduledStartTime"] = [stamp]
        fields["@scheduledEndTime"] = [
            format_datetime(_end_time(resolved[oid], resolved, scheduled))
        ]
        instance = Instance(
            ids[oid],
            pipeline.components[oid].name,
            fields,
            pipeline=pipeline,
            component_id=oid,
            is_activity=is_activity(fields),
        )
        instances[instance.id] = instance
    pipeline.instances.update(instances)
    errors = _evaluate(pipeline, instances)
    for instance in instances.values():
        if instance.is_activity:
            _configure(instance, instances, config)
    return list(instances.values()), errors


def _evaluate(pipeline: Pipeline, instances: Mapping[str, Instance]) -> dict[str, str]:
    lookup = pipeline_lookup(pipeline)
    errors: dict[str, str] = {}
    for instance in instances.values():
        for key, values in instance.fields.items():
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
    """Read the activity's runtime settings: worker group, retries, timeouts, dependencies."""
    fields = instance.fields
    group = _single(fields, "workerGroup")
    if group is None:
        # With only runsOn, the runner on that resource polls; locally the resource's own
        # workerGroup stands for it, else the resource's id.
        resource = fields.get("runsOn", [None])[0]
        if isinstance(resource, Ref):
            target = instances.get(resource.id)
            group = (_single(target.fields, "workerGroup") if target else None) or (
                target.component_id if target else resource.id
            )
    instance.worker_group = group or ""
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
            dependency = instances[value.id]
            instance.depends_on.append(dependency)
            dependency.dependents.append(instance)
