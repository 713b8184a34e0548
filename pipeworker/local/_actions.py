"""The service's hooks: actions it fires (``onSuccess``, ``onFail``, ``onLateAction``) and the
preconditions it waits on (see ``_preconditions``).

AWS fires them itself (an ``SnsAlarm`` publishes, a ``Terminate`` cancels); no runner ever sees
them. Locally nothing is sent: each firing is recorded with what it would have sent (the
action's fields evaluated with ``node`` as the object that fired it, as in the guide's
``#{node.@scheduledStartTime}``), readable with :meth:`LocalService.fired_actions` or the
local-only call ``PipeworkerLocal.DescribeFiredActions``. A ``Terminate`` also cancels the late
object, as on AWS.

``onFail`` fires when an object ends FAILED or TIMEDOUT (not for a cascaded failure);
``onLateAction`` when it has not finished ``lateAfterTimeout`` after its scheduled start
(scaled by ``time_scale``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pipeworker.local._activation import pipeline_lookup
from pipeworker.local._evaluation import (
    ExpressionError,
    evaluate_text,
    period_seconds,
    substitute_parameters,
)
from pipeworker.local._hooks import Hooks
from pipeworker.local._preconditions import PreconditionChecks
from pipeworker.local._scheduler import Scheduler
from pipeworker.local._state import TERMINAL, Instance, Pipeline, now_text, utc_now
from pipeworker.local._values import Fields, Ref, Value, parse_datetime

__all__ = ["ActionHooks", "describe"]

_EVENTS = {"FINISHED": "onSuccess", "FAILED": "onFail", "TIMEDOUT": "onFail"}


class ActionHooks(Hooks):
    """Fires actions on outcomes and arms the late timers of each run."""

    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__(scheduler)
        self._late: dict[str, asyncio.TimerHandle] = {}
        self.preconditions = PreconditionChecks(scheduler)

    def check_precondition(self, instance: Instance) -> None:
        self.preconditions.check_s3(instance)

    def precondition_false(self, instance: Instance) -> None:
        self.preconditions.not_met(instance)

    def run_started(self, pipeline: Pipeline, instances: list[Instance]) -> None:
        """Arm ``onLateAction`` timers for the run's objects that have one."""
        loop = asyncio.get_running_loop()
        scale = self.scheduler.config.time_scale
        for instance in instances:
            timeout = instance.fields.get("lateAfterTimeout", [None])[0]
            if not isinstance(timeout, str) or "onLateAction" not in instance.fields:
                continue
            try:
                late = period_seconds(timeout, scale)
                start = parse_datetime(str(instance.fields["@scheduledStartTime"][0]))
            except ValueError:
                continue
            due = (start + timedelta(seconds=late) - utc_now()).total_seconds()
            self._late[instance.id] = loop.call_later(max(due, 0.0), self._late_due, instance)

    def _late_due(self, instance: Instance) -> None:
        self._late.pop(instance.id, None)
        if instance.status in TERMINAL:
            return
        for action in self.fire(instance, "onLateAction"):
            if action["type"] == "Terminate":
                self.scheduler.cancel(instance)

    def finished(self, instance: Instance, status: str) -> None:
        self.preconditions.forget(instance)
        timer = self._late.pop(instance.id, None)
        if timer is not None:
            timer.cancel()
        event = _EVENTS.get(status)
        if event is not None:
            self.fire(instance, event)

    def close(self) -> None:
        """Stop every late timer and precondition check (the service stops)."""
        self.preconditions.close()
        for timer in self._late.values():
            timer.cancel()
        self._late.clear()

    def fire(self, instance: Instance, event: str) -> list[dict[str, Any]]:
        """Record every action *instance*'s *event* field names; return the records."""
        pipeline = instance.pipeline
        fired: list[dict[str, Any]] = []
        for value in instance.fields.get(event, []):
            if not isinstance(value, Ref) or value.id not in pipeline.resolved:
                continue
            record = _record(pipeline, instance, value.id, event)
            pipeline.fired_actions.append(record)
            fired.append(record)
        return fired


def _record(pipeline: Pipeline, instance: Instance, action_id: str, event: str) -> dict[str, Any]:
    fields: dict[str, list[Value]] = {
        key: [
            substitute_parameters(v, pipeline.parameters, pipeline.blank_parameters)
            if isinstance(v, str)
            else v
            for v in values
        ]
        for key, values in pipeline.resolved[action_id].items()
        if key != "parent"
    }
    fields["node"] = [Ref(instance.id)]
    base = pipeline_lookup(pipeline)

    def lookup(object_id: str) -> Fields | None:
        return fields if object_id == action_id else base(object_id)

    sent: dict[str, str] = {}
    problems: list[str] = []
    for key, values in fields.items():
        if key in ("node", "type") or key.startswith("@") or not values:
            continue
        value = values[0]
        if isinstance(value, Ref):
            continue
        try:
            sent[key] = evaluate_text(value, action_id, lookup)
        except ExpressionError as exc:
            sent[key] = value
            problems.append(f"{key}: {exc}")
    kind = fields.get("type", [""])[0]
    record: dict[str, Any] = {
        "actionId": action_id,
        "type": kind if isinstance(kind, str) else "",
        "event": event,
        "objectId": instance.id,
        "objectStatus": instance.status,
        "firedAt": now_text(),
        "fields": sent,
    }
    if problems:
        record["evaluationErrors"] = problems
    return record


def describe(pipeline: Pipeline) -> Mapping[str, Any]:
    """The answer of ``PipeworkerLocal.DescribeFiredActions``."""
    return {"pipelineId": pipeline.id, "actions": list(pipeline.fired_actions)}
