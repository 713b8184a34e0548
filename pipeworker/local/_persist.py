"""A kept state: the local service's pipelines, instances, attempts and leases in SQLite.

With ``LocalConfig(state_path=...)`` (``python -m pipeworker.local --state FILE``) every call that
changes something is written to the file before its answer is sent: a WAL-mode database with
``synchronous=NORMAL``, so an answered call survives SIGTERM and kill -9 (not a power cut). On
start the service reads the file back: what was FINISHED stays FINISHED, a task handed out keeps
its taskId and the rest of its lease, waiting work is offered again, retries and schedules go on.

What a timer changed between two calls (a lease running out, a schedule's new run) is saved with
the next call; after a crash in between it is simply done again. Memory stays the default.
Not kept: task runners' heartbeats and fault settings; fired actions' late timers.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pipeworker.local._definition import parse_objects, resolve_all
from pipeworker.local._state import (
    TERMINAL,
    Attempt,
    Instance,
    Pipeline,
    ServiceState,
    Task,
)
from pipeworker.local._values import Ref, Value, format_datetime, parse_datetime

__all__ = ["GroupSaver", "StateStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS definitions (
    pipeline TEXT NOT NULL, version TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (pipeline, version));
CREATE TABLE IF NOT EXISTS runs (
    pipeline TEXT NOT NULL, stamp TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (pipeline, stamp));
CREATE TABLE IF NOT EXISTS objects (
    pipeline TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (pipeline, id));
CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS actions (
    pipeline TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (pipeline, seq));
CREATE TABLE IF NOT EXISTS deleted (id TEXT PRIMARY KEY);
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _encode(fields: Mapping[str, Sequence[Value]]) -> dict[str, list[Any]]:
    """Fields as JSON: a string stays a string, a reference is ``{"r": id}`` (compact, fast)."""
    return {
        key: [value if type(value) is str else {"r": value.id} for value in values]  # type: ignore[union-attr]
        for key, values in fields.items()
    }


def _decode(data: Mapping[str, list[Any]]) -> dict[str, list[Value]]:
    return {
        key: [value if isinstance(value, str) else Ref(value["r"]) for value in values]
        for key, values in data.items()
    }


def _when(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment is not None else None


def _moment(text: str | None) -> datetime | None:
    return parse_datetime(text) if text else None


class StateStore:
    """Saves changes after each call and loads everything back at start."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._definitions: dict[str, tuple[int, int]] = {}
        self._runs: set[tuple[str, str]] = set()
        self._actions: dict[str, int] = {}
        self._deleted: set[str] = set()
        self._meta: dict[str, tuple[Any, ...]] = {}

    def close(self) -> None:
        """Close the database (every change is already written)."""
        self.db.close()

    # --- saving ------------------------------------------------------------------------------

    def save(self, state: ServiceState, touched: Iterable[str] = ()) -> None:
        """Write every pipeline that changed (and those in *touched*) in one transaction."""
        touched = set(touched)
        for pipeline in state.pipelines.values():
            if pipeline.changed is None:
                pipeline.changed = set()  # created since: track it from now on
                touched.add(pipeline.id)
        pipelines = [p for p in state.pipelines.values() if p.changed or p.id in touched]
        gone = state.deleted - self._deleted
        if not pipelines and not gone:
            return
        now_wall, now_loop = time.time(), asyncio.get_running_loop().time()
        db = self.db
        db.execute("BEGIN")
        try:
            for pipeline_id in gone:
                for table in ("pipelines", "definitions", "runs", "objects", "tasks", "actions"):
                    key = "id" if table == "pipelines" else "pipeline"
                    db.execute(f"DELETE FROM {table} WHERE {key} = ?", (pipeline_id,))
                db.execute("INSERT OR IGNORE INTO deleted VALUES (?)", (pipeline_id,))
            for pipeline in pipelines:
                self._save_pipeline(pipeline, now_wall, now_loop)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._deleted |= gone
        for pipeline in pipelines:
            if pipeline.changed:
                pipeline.changed = set()

    def _save_pipeline(self, pipeline: Pipeline, now_wall: float, now_loop: float) -> None:
        db = self.db
        mark = _fingerprint(pipeline)
        if self._meta.get(pipeline.id) != mark:
            self._meta[pipeline.id] = mark
            db.execute(
                "INSERT OR REPLACE INTO pipelines VALUES (?, ?)", (pipeline.id, _meta(pipeline))
            )
        marks = (id(pipeline.definition), id(pipeline.active_definition))
        if self._definitions.get(pipeline.id) != marks:
            self._definitions[pipeline.id] = marks
            for version, body in (
                ("latest", pipeline.definition),
                ("active", pipeline.active_definition),
            ):
                if body is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO definitions VALUES (?, ?, ?)",
                        (pipeline.id, version, _dumps(body)),
                    )
        rows = []
        task_rows = []
        for item in pipeline.changed or ():
            if isinstance(item, Instance):
                rows.append((pipeline.id, item.id, "instance", _instance(item)))
                stamp = str(item.fields.get("@scheduledStartTime", [""])[0])
                if (pipeline.id, stamp) not in self._runs:
                    self._runs.add((pipeline.id, stamp))
                    runs = {oid: [name, _encode(f)] for oid, (name, f) in item.components.items()}
                    db.execute(
                        "INSERT OR REPLACE INTO runs VALUES (?, ?, ?)",
                        (pipeline.id, stamp, _dumps(runs)),
                    )
            elif isinstance(item, Attempt):
                rows.append((pipeline.id, item.id, "attempt", _attempt(item)))
                if item.task is not None:
                    task_rows.append(
                        (item.task.id, pipeline.id, _task(item.task, now_wall, now_loop))
                    )
        db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", rows)
        db.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?)", task_rows)
        saved = self._actions.get(pipeline.id, 0)
        fired = pipeline.fired_actions
        if len(fired) > saved:
            db.executemany(
                "INSERT OR REPLACE INTO actions VALUES (?, ?, ?)",
                [(pipeline.id, seq, _dumps(fired[seq])) for seq in range(saved, len(fired))],
            )
            self._actions[pipeline.id] = len(fired)

    # --- loading -----------------------------------------------------------------------------

    def load(self, state: ServiceState) -> None:
        """Fill an empty *state* from the file (tracking changes from now on)."""
        db = self.db
        now_wall, now_loop = time.time(), asyncio.get_running_loop().time()
        self._deleted = {row[0] for row in db.execute("SELECT id FROM deleted")}
        state.deleted |= self._deleted
        for pipeline_id, body in db.execute("SELECT id, body FROM pipelines"):
            pipeline = _pipeline(pipeline_id, json.loads(body))
            state.pipelines[pipeline.id] = pipeline
            state.by_unique_id[pipeline.unique_id] = pipeline
        for pipeline_id, version, body in db.execute("SELECT * FROM definitions"):
            pipeline = state.pipelines[pipeline_id]
            setattr(
                pipeline,
                "definition" if version == "latest" else "active_definition",
                json.loads(body),
            )
        for pipeline in state.pipelines.values():
            if (
                pipeline.definition is not None
                and pipeline.definition == pipeline.active_definition
            ):
                pipeline.active_definition = pipeline.definition
            source = pipeline.definition if not pipeline.errored else pipeline.active_definition
            if source is not None:
                pipeline.components = {c.id: c for c in parse_objects(source["pipelineObjects"])}
                pipeline.resolved = resolve_all(pipeline.components)
            self._definitions[pipeline.id] = (
                id(pipeline.definition),
                id(pipeline.active_definition),
            )
        runs: dict[tuple[str, str], dict[str, tuple[str, dict[str, list[Value]]]]] = {}
        for pipeline_id, stamp, body in db.execute("SELECT * FROM runs"):
            runs[(pipeline_id, stamp)] = {
                oid: (name, _decode(wire)) for oid, (name, wire) in json.loads(body).items()
            }
            self._runs.add((pipeline_id, stamp))
        depends: list[tuple[Instance, list[str]]] = []
        attempts: list[tuple[Pipeline, dict[str, Any], str]] = []
        for pipeline_id, object_id, kind, body in db.execute(
            "SELECT * FROM objects ORDER BY rowid"
        ):
            pipeline = state.pipelines[pipeline_id]
            data = json.loads(body)
            if kind == "attempt":
                attempts.append((pipeline, data, object_id))
                continue
            instance = _restore_instance(pipeline, object_id, data)
            instance.components = runs.get((pipeline_id, data["run"]), {})
            pipeline.instances[object_id] = instance
            depends.append((instance, data["dependsOn"]))
        for instance, ids in depends:
            for dependency_id in ids:
                dependency = instance.pipeline.instances.get(dependency_id)
                if dependency is not None:
                    instance.depends_on.append(dependency)
                    dependency.dependents.append(instance)
        for pipeline, data, object_id in attempts:
            owner = pipeline.instances[data["instance"]]
            attempt = Attempt(object_id, _decode(data["fields"]), owner)
            attempt.status = data["status"]
            owner.attempts.append(attempt)
            pipeline.attempts[object_id] = attempt
        for task_id, pipeline_id, body in db.execute("SELECT * FROM tasks"):
            data = json.loads(body)
            attempt = state.pipelines[pipeline_id].attempts[data["attempt"]]
            task = Task(
                task_id,
                attempt,
                deadline=now_loop + (data["deadline"] - now_wall),
                acknowledged=data["acknowledged"],
                cancel_requested=data["cancelRequested"],
                final_status=data["finalStatus"],
                started=now_loop + (data["started"] - now_wall),
            )
            attempt.task = task
            if task.final_status is None and attempt.status == "RUNNING":
                state.tasks[task_id] = task
            else:
                state.finished_tasks[task_id] = task
        for pipeline_id, _, body in db.execute("SELECT * FROM actions ORDER BY pipeline, seq"):
            state.pipelines[pipeline_id].fired_actions.append(json.loads(body))
        for pipeline in state.pipelines.values():
            self._actions[pipeline.id] = len(pipeline.fired_actions)
            _rebuild_runs(pipeline)
            pipeline.changed = set()


def _fingerprint(pipeline: Pipeline) -> tuple[Any, ...]:
    """What the pipeline row holds, cheaply compared: rewritten only when it moved."""
    return (
        pipeline.state,
        pipeline.health,
        pipeline.errored,
        pipeline.last_run_start,
        pipeline.schedule_active,
        pipeline.schedule_made,
        pipeline.schedule_first,
        id(pipeline.parameters),
        pipeline.blank_parameters,
        frozenset(pipeline.paused_components),
        tuple(pipeline.tags.items()),
        pipeline.description,
    )


class GroupSaver:
    """Saves once per loop iteration for every call that ended in it (a group commit): each
    call's answer waits for the transaction holding its changes."""

    def __init__(self, store: StateStore, state: ServiceState) -> None:
        self.store = store
        self.state = state
        self._pending: asyncio.Future[None] | None = None
        self._touched: set[str] = set()

    async def save(self, touched: Iterable[str]) -> None:
        """Save what the calls of this iteration changed; return once it is written."""
        self._touched.update(touched)
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._pending)

    def _flush(self) -> None:
        future, self._pending = self._pending, None
        touched, self._touched = self._touched, set()
        assert future is not None
        try:
            self.store.save(self.state, touched)
        except Exception as exc:  # the calls waiting on it answer with the error
            future.set_exception(exc)
            return
        future.set_result(None)


def _meta(pipeline: Pipeline) -> str:
    return _dumps(
        {
            "name": pipeline.name,
            "uniqueId": pipeline.unique_id,
            "description": pipeline.description,
            "tags": pipeline.tags,
            "created": _when(pipeline.created),
            "state": pipeline.state,
            "errored": pipeline.errored,
            "paused": sorted(pipeline.paused_components),
            "lastRunStart": _when(pipeline.last_run_start),
            "health": pipeline.health,
            "parameters": pipeline.parameters,
            "blank": sorted(pipeline.blank_parameters),
            "scheduleActive": pipeline.schedule_active,
            "scheduleFirst": _when(pipeline.schedule_first),
            "scheduleMade": pipeline.schedule_made,
        }
    )


def _pipeline(pipeline_id: str, data: dict[str, Any]) -> Pipeline:
    pipeline = Pipeline(
        pipeline_id,
        data["name"],
        data["uniqueId"],
        description=data["description"],
        tags=data["tags"],
        state=data["state"],
        errored=data["errored"],
        paused_components=set(data["paused"]),
        last_run_start=_moment(data["lastRunStart"]),
        health=data["health"],
        parameters=data["parameters"],
        blank_parameters=frozenset(data["blank"]),
        schedule_active=data["scheduleActive"],
        schedule_first=_moment(data["scheduleFirst"]),
        schedule_made=data["scheduleMade"],
    )
    created = _moment(data["created"])
    if created is not None:
        pipeline.created = created
    return pipeline


def _instance(instance: Instance) -> str:
    return _dumps(
        {
            "name": instance.name,
            "fields": _encode(instance.fields),
            "component": instance.component_id,
            "kind": instance.kind,
            "isActivity": instance.is_activity,
            "status": instance.status,
            "workerGroup": instance.worker_group,
            "maxRetries": instance.max_retries,
            "retryDelay": instance.retry_delay,
            "reportProgressTimeout": instance.report_progress_timeout,
            "attemptTimeout": instance.attempt_timeout,
            "triesFailed": instance.tries_failed,
            "retryAt": instance.retry_at,
            "dependsOn": [dependency.id for dependency in instance.depends_on],
            "run": str(instance.fields.get("@scheduledStartTime", [""])[0]),
        }
    )


def _restore_instance(pipeline: Pipeline, object_id: str, data: dict[str, Any]) -> Instance:
    instance = Instance(
        object_id,
        data["name"],
        _decode(data["fields"]),
        pipeline=pipeline,
        component_id=data["component"],
        is_activity=data["isActivity"],
        kind=data["kind"],
    )
    instance.status = data["status"]
    instance.worker_group = data["workerGroup"]
    instance.max_retries = data["maxRetries"]
    instance.retry_delay = data["retryDelay"]
    instance.report_progress_timeout = data["reportProgressTimeout"]
    instance.attempt_timeout = data["attemptTimeout"]
    instance.tries_failed = data["triesFailed"]
    instance.retry_at = data["retryAt"]
    return instance


def _attempt(attempt: Attempt) -> str:
    return _dumps(
        {
            "fields": _encode(attempt.fields),
            "instance": attempt.instance.id,
            "status": attempt.status,
        }
    )


def _task(task: Task, now_wall: float, now_loop: float) -> str:
    return _dumps(
        {
            "attempt": task.attempt.id,
            "deadline": now_wall + (task.deadline - now_loop),
            "started": now_wall + (task.started - now_loop),
            "acknowledged": task.acknowledged,
            "cancelRequested": task.cancel_requested,
            "finalStatus": task.final_status,
        }
    )


def _rebuild_runs(pipeline: Pipeline) -> None:
    """The bookkeeping derived from instances: open tasks, current run, per-run sets."""
    by_run: dict[str, list[Instance]] = {}
    for instance in pipeline.instances.values():
        by_run.setdefault(str(instance.fields.get("@scheduledStartTime", [""])[0]), []).append(
            instance
        )
    live = [
        stamp
        for stamp, items in by_run.items()
        if any(i.is_activity and i.status not in TERMINAL for i in items)
    ]
    current = live or sorted(by_run)[-1:]
    for stamp in current:
        for instance in by_run[stamp]:
            (pipeline.current_run if instance.is_activity else pipeline.current_objects).append(
                instance
            )
            if instance.is_activity and instance.status not in TERMINAL:
                pipeline.open_activities.add(instance.id)
                pipeline.open_by_run.setdefault(stamp, set()).add(instance.id)
