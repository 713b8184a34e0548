"""Reading and steering objects: DescribeObjects, QueryObjects and SetStatus."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pipeworker.local._activation import pipeline_lookup
from pipeworker.local._definition import fields_to_wire
from pipeworker.local._errors import invalid_request
from pipeworker.local._evaluation import ExpressionError, evaluate_text
from pipeworker.local._scheduler import Scheduler
from pipeworker.local._state import Pipeline
from pipeworker.local._taskrunner import find_pipeline
from pipeworker.local._values import Ref, Value, parse_datetime

__all__ = ["QueryApi"]

DEFAULT_LIMIT = 100
COMPONENT_STATUSES = ("PAUSE", "RESUME")
INSTANCE_STATUSES = ("TRY_CANCEL", "RERUN", "MARK_FINISHED")


def _sphere(
    pipeline: Pipeline, sphere: str
) -> list[tuple[str, str, Mapping[str, Sequence[Value]]]]:
    if sphere == "COMPONENT":
        return [
            (c.id, c.name, pipeline.resolved.get(c.id, c.fields)) for c in _components(pipeline)
        ]
    source = pipeline.instances if sphere == "INSTANCE" else pipeline.attempts
    return [(o.id, o.name, o.fields) for o in source.values()]


def _components(pipeline: Pipeline) -> Iterable[Any]:
    return pipeline.components.values()


def _comparable(text: str) -> datetime | str:
    try:
        return parse_datetime(text)
    except ValueError:
        return text


def _matcher(
    selector: Mapping[str, Any],
) -> Callable[[str, str, Mapping[str, Sequence[Value]]], bool]:
    field = selector["fieldName"]
    operator = selector["operator"]
    kind = operator["type"]
    values = operator.get("values", [])
    needed = 2 if kind == "BETWEEN" else 1
    if len(values) < needed:
        raise invalid_request(f"Operator {kind} on {field!r} needs {needed} value(s)")
    bounds = [_comparable(value) for value in values]

    def field_values(
        object_id: str, name: str, fields: Mapping[str, Sequence[Value]]
    ) -> Sequence[Value]:
        if field == "name":
            return [name]
        if field == "@id":
            return [object_id]
        return fields.get(field, ())

    def compare(low: datetime | str, value: datetime | str) -> bool:
        # Dates compare as dates; anything else (or a mix) as text.
        if isinstance(low, datetime) and isinstance(value, datetime):
            return low <= value
        return str(low) <= str(value)

    def matches(object_id: str, name: str, fields: Mapping[str, Sequence[Value]]) -> bool:
        for value in field_values(object_id, name, fields):
            if kind == "REF_EQ":
                if isinstance(value, Ref) and value.id in values:
                    return True
                continue
            if isinstance(value, Ref):
                continue
            if kind == "EQ":
                if value in values:
                    return True
                continue
            item = _comparable(value)
            if (
                (kind == "LE" and compare(item, bounds[0]))
                or (kind == "GE" and compare(bounds[0], item))
                or (kind == "BETWEEN" and compare(bounds[0], item) and compare(item, bounds[1]))
            ):
                return True
        return False

    return matches


class QueryApi:
    """DescribeObjects, QueryObjects and SetStatus over a Scheduler."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.state = scheduler.state

    def describe_objects(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeObjects: components as defined; instances and attempts with runtime fields."""
        pipeline = find_pipeline(self.state, params["pipelineId"])
        evaluate = params.get("evaluateExpressions", False)
        lookup = pipeline_lookup(pipeline)
        described = []
        for object_id in params["objectIds"]:
            found = pipeline.instances.get(object_id) or pipeline.attempts.get(object_id)
            if found is not None:
                name, fields = found.name, found.fields
            elif object_id in pipeline.components:
                component = pipeline.components[object_id]
                name, fields = component.name, component.fields
            else:
                raise invalid_request(f"Object {object_id!r} does not exist in {pipeline.id}")
            if evaluate:
                fields = {
                    key: [_evaluated(v, object_id, lookup) for v in vs]
                    for key, vs in fields.items()
                }
            described.append({"id": object_id, "name": name, "fields": fields_to_wire(fields)})
        return {"pipelineObjects": described, "hasMoreResults": False}

    def query_objects(self, params: dict[str, Any]) -> dict[str, Any]:
        """QueryObjects: ids in a sphere whose fields match every selector, a page at a time."""
        pipeline = find_pipeline(self.state, params["pipelineId"])
        selectors = (params.get("query") or {}).get("selectors", [])
        matchers = [_matcher(selector) for selector in selectors]
        limit = params.get("limit", DEFAULT_LIMIT)
        if limit < 1:
            raise invalid_request("limit must be at least 1")
        marker = params.get("marker") or "0"
        if not marker.isdigit():
            raise invalid_request(f"Invalid marker {marker!r}")
        start = int(marker)
        ids = [
            object_id
            for object_id, name, fields in _sphere(pipeline, params["sphere"])
            if all(match(object_id, name, fields) for match in matchers)
        ]
        page = ids[start : start + limit]
        more = start + limit < len(ids)
        result: dict[str, Any] = {"ids": page, "hasMoreResults": more}
        if more:
            result["marker"] = str(start + limit)
        return result

    def set_status(self, params: dict[str, Any]) -> dict[str, Any]:
        """SetStatus: PAUSE/RESUME components; TRY_CANCEL/RERUN/MARK_FINISHED instances."""
        pipeline = find_pipeline(self.state, params["pipelineId"])
        status = params["status"]
        ids = params["objectIds"]
        if status in COMPONENT_STATUSES:
            for object_id in ids:
                if object_id not in pipeline.components:
                    raise invalid_request(
                        f"{status} applies to components; {object_id!r} is not one"
                    )
            if status == "PAUSE":
                pipeline.paused_components.update(ids)
                self.scheduler.hold(pipeline)
            else:
                pipeline.paused_components.difference_update(ids)
                self.scheduler.resume_held(pipeline)
            return {}
        if status not in INSTANCE_STATUSES:
            valid = ", ".join(COMPONENT_STATUSES + INSTANCE_STATUSES)
            raise invalid_request(f"Invalid status {status!r}; use one of {valid}")
        instances = []
        for object_id in ids:
            instance = pipeline.instances.get(object_id)
            if instance is None or not instance.is_activity:
                raise invalid_request(
                    f"{status} applies to activity instances; {object_id!r} is not one"
                )
            instances.append(instance)
        action = {
            "TRY_CANCEL": self.scheduler.cancel,
            "RERUN": self.scheduler.rerun,
            "MARK_FINISHED": self.scheduler.mark_finished,
        }[status]
        for instance in instances:
            action(instance)
        return {}


def _evaluated(value: Value, object_id: str, lookup: Any) -> Value:
    if isinstance(value, Ref) or "#{" not in value:
        return value
    try:
        return evaluate_text(value, object_id, lookup)
    except ExpressionError:
        return value
