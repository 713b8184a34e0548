"""The pipeline half of the API: create, define, activate, describe, deactivate, delete, tag."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeworker.local._activation import build_run
from pipeworker.local._definition import (
    Component,
    Problems,
    fields_to_wire,
    optional_parameters,
    parameter_values,
    parse_objects,
    resolve_all,
    validate_definition,
)
from pipeworker.local._errors import invalid_request, pipeline_not_found
from pipeworker.local._scheduler import Scheduler
from pipeworker.local._schedules import ScheduleClock, cadence_of
from pipeworker.local._state import Pipeline, utc_now
from pipeworker.local._taskrunner import find_pipeline

__all__ = ["PipelineApi"]

_ID_ALPHABET = string.ascii_uppercase + string.digits
PAGE_SIZE = 100


def _problems(problems: Problems, key: str) -> list[dict[str, Any]]:
    return [{"id": object_id, key: messages} for object_id, messages in problems.items()]


class PipelineApi:
    """Pipeline operations over the service state and its scheduler."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.state = scheduler.state
        self.clock = ScheduleClock(scheduler.config, self._start_run)
        scheduler.on_close.append(self.clock.close)

    def resume_schedules(self) -> None:
        """After a kept state was loaded: scheduled pipelines' clocks go on from now."""
        for pipeline in self.state.pipelines.values():
            if pipeline.state != "SCHEDULED" or not pipeline.schedule_active:
                continue
            cadence = cadence_of(pipeline)
            if cadence is not None:
                self.clock.activate(pipeline, cadence, utc_now().replace(microsecond=0))

    def create_pipeline(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreatePipeline; the same uniqueId answers the same pipeline (idempotent retries)."""
        unique_id = params["uniqueId"]
        existing = self.state.by_unique_id.get(unique_id)
        if existing is not None and existing.id in self.state.pipelines:
            if existing.name != params["name"]:
                raise invalid_request(
                    f"uniqueId {unique_id!r} is already used by pipeline {existing.id} "
                    f"named {existing.name!r}"
                )
            return {"pipelineId": existing.id}
        pipeline_id = "df-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))
        pipeline = Pipeline(
            pipeline_id,
            params["name"],
            unique_id,
            description=params.get("description", ""),
            tags={tag["key"]: tag["value"] for tag in params.get("tags", [])},
        )
        self.state.pipelines[pipeline_id] = pipeline
        self.state.by_unique_id[unique_id] = pipeline
        return {"pipelineId": pipeline_id}

    def delete_pipeline(self, params: dict[str, Any]) -> dict[str, Any]:
        """DeletePipeline: cancel everything; its tasks answer PipelineDeletedException."""
        pipeline = self.state.pipelines.get(params["pipelineId"])
        if pipeline is None:
            raise pipeline_not_found(params["pipelineId"])
        self.clock.forget(pipeline)
        for instance in pipeline.current_run:
            self.scheduler.cancel(instance)
        for task in list(self.state.tasks.values()):
            if task.attempt.instance.pipeline is pipeline:
                del self.state.tasks[task.id]
                self.state.deleted_tasks[task.id] = pipeline.id
        del self.state.pipelines[pipeline.id]
        self.state.deleted.add(pipeline.id)
        return {}

    def list_pipelines(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListPipelines, a page of 100 at a time."""
        start = _marker(params.get("marker"))
        pipelines = list(self.state.pipelines.values())
        page = pipelines[start : start + PAGE_SIZE]
        more = start + PAGE_SIZE < len(pipelines)
        result: dict[str, Any] = {
            "pipelineIdList": [{"id": p.id, "name": p.name} for p in page],
            "hasMoreResults": more,
        }
        if more:
            result["marker"] = str(start + PAGE_SIZE)
        return result

    def describe_pipelines(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribePipelines."""
        descriptions = []
        for pipeline_id in params["pipelineIds"]:
            pipeline = find_pipeline(self.state, pipeline_id)
            description: dict[str, Any] = {
                "pipelineId": pipeline.id,
                "name": pipeline.name,
                "fields": fields_to_wire(pipeline.describe_fields()),
                "tags": [{"key": k, "value": v} for k, v in pipeline.tags.items()],
            }
            if pipeline.description:
                description["description"] = pipeline.description
            descriptions.append(description)
        return {"pipelineDescriptionList": descriptions}

    def _validate(
        self, params: dict[str, Any]
    ) -> tuple[dict[str, Any], bool, dict[str, Any], list[Component]]:
        objects = params["pipelineObjects"]
        parameter_objects = params.get("parameterObjects", [])
        values = parameter_values(parameter_objects, params.get("parameterValues", []))
        components = parse_objects(objects)
        errors, warnings = validate_definition(components, values, parameter_objects)
        answer = {
            "validationErrors": _problems(errors, "errors"),
            "validationWarnings": _problems(warnings, "warnings"),
            "errored": bool(errors),
        }
        definition = {
            "pipelineObjects": objects,
            "parameterObjects": parameter_objects,
            "parameterValues": params.get("parameterValues", []),
        }
        return answer, bool(errors), definition, components

    def validate_pipeline_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        """ValidatePipelineDefinition: the checks of PutPipelineDefinition, storing nothing."""
        find_pipeline(self.state, params["pipelineId"])
        return self._validate(params)[0]

    def put_pipeline_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        """PutPipelineDefinition: stored even when errored, but then it cannot be activated."""
        pipeline = find_pipeline(self.state, params["pipelineId"])
        answer, errored, definition, components = self._validate(params)
        pipeline.definition = definition
        pipeline.errored = errored
        if not errored:
            pipeline.components = {c.id: c for c in components}
            pipeline.resolved = resolve_all(pipeline.components)
        return answer

    def get_pipeline_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetPipelineDefinition, version ``latest`` (default) or ``active``."""
        pipeline = find_pipeline(self.state, params["pipelineId"])
        version = params.get("version", "latest")
        if version not in ("latest", "active"):
            raise invalid_request("version must be 'latest' or 'active'")
        definition = pipeline.active_definition if version == "active" else pipeline.definition
        if definition is None:
            raise invalid_request(f"Pipeline {pipeline.id} has no {version} definition")
        return definition

    def activate_pipeline(self, params: dict[str, Any]) -> dict[str, Any]:
        """ActivatePipeline: start the schedule, or one run of an on-demand pipeline.

        Activating a pipeline whose run is going (or whose schedule is ticking) resumes it; a
        deactivated schedule resumes from its last run, backfilling what it missed.
        """
        pipeline = find_pipeline(self.state, params["pipelineId"])
        if pipeline.definition is None:
            raise invalid_request(f"Pipeline {pipeline.id} has no definition to activate")
        if pipeline.errored:
            raise invalid_request(
                f"Pipeline {pipeline.id} has an errored definition; fix and put it again"
            )
        definition = pipeline.definition
        values = parameter_values(
            definition["parameterObjects"],
            definition["parameterValues"],
            params.get("parameterValues", []),
        )
        if pipeline.active_definition is not definition or pipeline.state == "FINISHED":
            self.clock.forget(pipeline)
            pipeline.schedule_active = False
        resuming = pipeline.schedule_active or bool(pipeline.open_activities)
        was_inactive = pipeline.state == "INACTIVE"
        pipeline.active_definition = definition
        pipeline.state = "SCHEDULED"
        pipeline.parameters = values
        pipeline.blank_parameters = optional_parameters(definition["parameterObjects"]) - set(
            values
        )
        self.scheduler.resume_held(pipeline)
        start = params.get("startTimestamp")
        now = _start_time(start) if start is not None else utc_now().replace(microsecond=0)
        cadence = cadence_of(pipeline)
        if cadence is not None:
            if not resuming or was_inactive:
                pipeline.health = ""
                self.clock.activate(pipeline, cadence, now)
            return {}
        if resuming:
            return {}
        pipeline.health = ""
        self._start_run(pipeline, now)
        return {}

    def _start_run(self, pipeline: Pipeline, scheduled: datetime) -> None:
        # Instance ids carry the second: two runs in one second need distinct ids.
        last = pipeline.last_run_start
        if last is not None and scheduled <= last and not pipeline.schedule_active:
            scheduled = last + timedelta(seconds=1)
        if pipeline.last_run_start is None or scheduled > pipeline.last_run_start:
            pipeline.last_run_start = scheduled
        instances, errors = build_run(
            pipeline,
            scheduled,
            pipeline.parameters,
            self.scheduler.config,
            pipeline.blank_parameters,
        )
        self.scheduler.start_run(pipeline, instances, errors)

    def deactivate_pipeline(self, params: dict[str, Any]) -> dict[str, Any]:
        """DeactivatePipeline: hold waiting work; with cancelActive (default), cancel running."""
        pipeline = find_pipeline(self.state, params["pipelineId"])
        if pipeline.state in ("SCHEDULED", "FINISHED"):
            pipeline.state = "INACTIVE"
        self.clock.stop(pipeline)
        if params.get("cancelActive", True):
            for instance in pipeline.current_run:
                if instance.status == "RUNNING":
                    self.scheduler.cancel(instance)
        self.scheduler.hold(pipeline)
        return {}

    def add_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        """AddTags (at most 10 per pipeline, as on AWS)."""
        pipeline = find_pipeline(self.state, params["pipelineId"])
        tags = dict(pipeline.tags)
        tags.update({tag["key"]: tag["value"] for tag in params["tags"]})
        if len(tags) > 10:
            raise invalid_request("A pipeline can have at most 10 tags")
        pipeline.tags = tags
        return {}

    def remove_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        """RemoveTags."""
        pipeline = find_pipeline(self.state, params["pipelineId"])
        for key in params["tagKeys"]:
            pipeline.tags.pop(key, None)
        return {}


def _marker(marker: str | None) -> int:
    if not marker:
        return 0
    if not marker.isdigit():
        raise invalid_request(f"Invalid marker {marker!r}")
    return int(marker)


def _start_time(value: Any) -> datetime:
    """botocore sends timestamps as epoch seconds in JSON; accept ISO strings too."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise invalid_request(f"Invalid startTimestamp {value!r}") from exc
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)
