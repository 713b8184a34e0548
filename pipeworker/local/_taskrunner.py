"""The five task-runner operations: PollForTask, ReportTaskProgress, SetTaskStatus,
ReportTaskRunnerHeartbeat and EvaluateExpression.

Each takes the request's (already validated) parameters and returns the response body.
"""

from __future__ import annotations

from typing import Any

from pipeworker.local._activation import pipeline_lookup
from pipeworker.local._definition import ACTION_REFS, fields_to_wire, object_limits
from pipeworker.local._errors import (
    ApiError,
    invalid_request,
    pipeline_deleted,
    pipeline_not_found,
    task_not_found,
)
from pipeworker.local._evaluation import ExpressionError, evaluate_text
from pipeworker.local._longpoll import CONNECTION_ALIVE
from pipeworker.local._scheduler import Scheduler
from pipeworker.local._state import Pipeline, Runner, ServiceState, Task, utc_now
from pipeworker.local._values import Ref, Value

__all__ = ["TaskRunnerApi", "find_pipeline"]

# Keys a progress report may not overwrite: the service's own bookkeeping.
_RESERVED_PREFIX = "@"


def find_pipeline(state: ServiceState, pipeline_id: str) -> Pipeline:
    """The pipeline *pipeline_id*, or PipelineDeleted/PipelineNotFound."""
    pipeline = state.pipelines.get(pipeline_id)
    if pipeline is not None:
        return pipeline
    if pipeline_id in state.deleted:
        raise pipeline_deleted(pipeline_id)
    raise pipeline_not_found(pipeline_id)


class TaskRunnerApi:
    """The task-runner half of the API, over a Scheduler."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.state = scheduler.state

    def _task(self, task_id: str) -> Task:
        task = self.state.tasks.get(task_id) or self.state.finished_tasks.get(task_id)
        if task is not None:
            return task
        pipeline_id = self.state.deleted_tasks.get(task_id)
        if pipeline_id is not None:
            raise pipeline_deleted(pipeline_id)
        raise task_not_found(task_id)

    async def poll_for_task(self, params: dict[str, Any]) -> dict[str, Any]:
        """PollForTask: hold until a task for the exact worker group is runnable."""
        task = await self.scheduler.wait_for_task(
            params["workerGroup"], params.get("hostname", ""), CONNECTION_ALIVE.get()
        )
        if task is None:
            return {}
        return {"taskObject": self.task_object(task)}

    def task_object(self, task: Task) -> dict[str, Any]:
        """The TaskObject: the attempt, its instance and every object they reference.

        Only evaluated fields reach a runner: referenced instances carry their evaluated fields
        and other components (schedules, databases, data formats) the copy evaluated for the
        run. Actions (``onFail``, ``onSuccess``, ``onLateAction``) are the service's business.
        """
        attempt = task.attempt
        instance = attempt.instance
        pipeline = instance.pipeline
        objects: dict[str, Any] = {}
        pending: list[tuple[str, str, dict[str, list[Value]]]] = [
            (attempt.id, attempt.name, attempt.fields),
            (instance.id, instance.name, instance.fields),
        ]
        while pending:
            object_id, name, fields = pending.pop()
            if object_id in objects:
                continue
            shown = {key: values for key, values in fields.items() if key not in ACTION_REFS}
            objects[object_id] = {"id": object_id, "name": name, "fields": fields_to_wire(shown)}
            for key, values in shown.items():
                if key == "dependsOn" or key.startswith("@"):
                    continue
                for value in values:
                    if isinstance(value, Ref) and value.id not in objects:
                        found = pipeline.instances.get(value.id)
                        if found is not None:
                            pending.append((found.id, found.name, found.fields))
                        elif value.id in instance.components:
                            component_name, component = instance.components[value.id]
                            pending.append((value.id, component_name, component))
        return {
            "taskId": task.id,
            "pipelineId": pipeline.id,
            "attemptId": attempt.id,
            "objects": objects,
        }

    def report_task_progress(self, params: dict[str, Any]) -> dict[str, Any]:
        """ReportTaskProgress: acknowledge or extend the lease; answer ``canceled``."""
        task = self._task(params["taskId"])
        if task.final_status is not None:
            raise task_not_found(task.id)
        if task.cancel_requested:
            return {"canceled": True}
        attempt = task.attempt
        updated = dict(attempt.fields)
        for field in params.get("fields") or ():
            key = field["key"]
            if key.startswith(_RESERVED_PREFIX):
                continue
            ref = field.get("refValue")
            updated[key] = [Ref(ref) if ref is not None else field.get("stringValue", "")]
        problems = object_limits({k: v for k, v in updated.items() if not k.startswith("@")})
        if problems:
            # As the service: the attempt object would break its limits; nothing is applied
            # (the lease is not renewed either).
            raise invalid_request(f"Fields not accepted for {attempt.id}: {'; '.join(problems)}")
        attempt.fields = updated
        attempt.stamp("reportProgressTime")
        self.scheduler.progress(task)
        return {"canceled": False}

    def set_task_status(self, params: dict[str, Any]) -> dict[str, Any]:
        """SetTaskStatus: FINISHED, FAILED or FALSE; a repeat of the same status succeeds."""
        task = self._task(params["taskId"])
        status = params["taskStatus"]
        if task.final_status is not None:
            if task.final_status == status:
                return {}
            raise invalid_request(
                f"Task {task.id!r} already has status {task.final_status}; cannot set {status}"
            )
        error_id = params.get("errorId")
        if error_id and error_id.startswith("Service_"):
            raise invalid_request("errorId must not start with 'Service_' (reserved by AWS)")
        task.final_status = status
        self.state.remember_finished(task)
        if task.cancel_requested:
            return {}  # cancelled meanwhile: the instance's status was decided by the cancel
        if status == "FINISHED":
            self.scheduler.finished(task)
        else:
            error = {
                key: params[key]
                for key in ("errorId", "errorMessage", "errorStackTrace")
                if params.get(key)
            }
            self.scheduler.failed(task, status, error)
        return {}

    def report_task_runner_heartbeat(self, params: dict[str, Any]) -> dict[str, Any]:
        """ReportTaskRunnerHeartbeat: remember the runner; ``terminate`` if it was told to stop."""
        runner_id = params["taskrunnerId"]
        runner = self.state.runners.get(runner_id)
        if runner is None:
            runner = self.state.runners[runner_id] = Runner(runner_id)
        runner.worker_group = params.get("workerGroup", runner.worker_group)
        runner.hostname = params.get("hostname", runner.hostname)
        runner.last_heartbeat = utc_now()
        return {"terminate": runner_id in self.state.terminating}

    def evaluate_expression(self, params: dict[str, Any]) -> dict[str, Any]:
        """EvaluateExpression in the context of a component, instance or attempt."""
        pipeline = find_pipeline(self.state, params["pipelineId"])
        object_id = params["objectId"]
        lookup = pipeline_lookup(pipeline)
        if lookup(object_id) is None:
            raise invalid_request(f"Object {object_id!r} does not exist in pipeline {pipeline.id}")
        try:
            return {"evaluatedExpression": evaluate_text(params["expression"], object_id, lookup)}
        except ExpressionError as exc:
            raise invalid_request(f"Unable to evaluate expression: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            # The evaluator's own bugs must not become a 500 for the caller.
            raise ApiError(
                "InvalidRequestException", f"Unable to evaluate expression: {exc}"
            ) from exc
