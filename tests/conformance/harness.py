"""Drive a public pipeline definition through the local service the way a team would.

put-pipeline-definition, validate, get (round trip), activate; then poll every worker group the
definition implies, in dependency order, and finish every task, until each activity of the run
is FINISHED. The expectations (which group a task goes to, what it waits for) are computed here
from the definition itself, independently of the service's code.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

from pipeworker.local import LocalConfig, LocalService
from pipeworker.local._deffile import to_definition_document
from tests.helpers import client_config

HERE = Path(__file__).parent
SOURCES = HERE / "SOURCES.json"
RUNNER_PRECONDITIONS = frozenset(
    {"ShellCommandPrecondition", "Exists", "DynamoDBDataExists", "DynamoDBTableExists"}
)
S3_PRECONDITIONS = frozenset({"S3KeyExists", "S3PrefixNotEmpty"})


def definitions_dir() -> Path | None:
    """Where the public definitions are: $PIPEWORKER_DP_DEFINITIONS, this folder's
    ``definitions/``, or ``shared/dp-definitions`` beside the repository; None if nowhere."""
    candidates = [
        os.environ.get("PIPEWORKER_DP_DEFINITIONS", ""),
        str(HERE / "definitions"),
        str(HERE.parents[1].parent / "shared" / "dp-definitions"),
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "samples--helloworld--helloworld.json").is_file():
            return Path(candidate)
    return None


def sources() -> list[dict[str, str]]:
    """The manifest: each definition's file name, repository, path, commit and sha256."""
    loaded: list[dict[str, str]] = json.loads(SOURCES.read_text())
    return loaded


class ServiceThread:
    """A LocalService running on its own event loop in a thread, for synchronous boto3 code."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.service = LocalService(config)

    def __enter__(self) -> ServiceThread:
        self.thread.start()
        self.call(self.service.start())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.call(self.service.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def call(self, coroutine: Any) -> Any:
        """Run *coroutine* on the service's loop and return its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=30)

    @property
    def endpoint_url(self) -> str:
        return self.service.endpoint_url

    def client(self) -> Any:
        return boto3.client(
            "datapipeline",
            region_name="us-east-1",
            endpoint_url=self.endpoint_url,
            config=client_config(read_timeout=30),
        )


# ----------------------------------------------------------------- the definition's own view


@dataclass
class Expected:
    """What the definition implies: the tasks, their groups and what each waits for."""

    tasks: dict[str, str] = field(default_factory=dict)  # component id -> worker group
    waits_for: dict[str, set[str]] = field(default_factory=dict)  # task id -> task ids


def _objects(document: Mapping[str, Any]) -> dict[str, dict[str, list[Any]]]:
    result: dict[str, dict[str, list[Any]]] = {}
    for element in document["objects"]:
        result[element["id"]] = {
            key: value if isinstance(value, list) else [value]
            for key, value in element.items()
            if key not in ("id", "name")
        }
    return result


def _effective(objects: Mapping[str, dict[str, list[Any]]], oid: str) -> dict[str, list[Any]]:
    fields = dict(objects[oid])
    seen = {oid}
    parent = fields.get("parent", [None])[0]
    while isinstance(parent, dict) and parent["ref"] in objects and parent["ref"] not in seen:
        seen.add(parent["ref"])
        for key, value in objects[parent["ref"]].items():
            fields.setdefault(key, value)
        parent = objects[parent["ref"]].get("parent", [None])[0]
    if oid != "Default" and "Default" in objects:
        for key, value in objects["Default"].items():
            fields.setdefault(key, value)
    return fields


def _refs(fields: Mapping[str, list[Any]], key: str) -> list[str]:
    return [value["ref"] for value in fields.get(key, []) if isinstance(value, dict)]


def expected_run(document: Mapping[str, Any], pipeline_id: str) -> Expected:
    """The tasks of one run by component id with their worker groups, and their waits."""
    objects = _objects(document)
    effective = {oid: _effective(objects, oid) for oid in objects}
    kind = {oid: str(fields.get("type", [""])[0]) for oid, fields in effective.items()}
    activities = [oid for oid in objects if oid != "Default" and kind[oid].endswith("Activity")]
    expected = Expected()

    def group(oid: str, fallback: str = "") -> str:
        runs_on = _refs(effective[oid], "runsOn")
        if runs_on:
            return f"{pipeline_id}/{runs_on[0]}"
        groups = effective[oid].get("workerGroup", [])
        return str(groups[0]) if groups else fallback

    producers: dict[str, list[str]] = {}
    for oid in activities:
        expected.tasks[oid] = group(oid)
        for node in _refs(effective[oid], "output"):
            producers.setdefault(node, []).append(oid)
    for oid in activities:
        waits: set[str] = set(_refs(effective[oid], "dependsOn"))
        checks = list(_refs(effective[oid], "precondition"))
        for node in _refs(effective[oid], "input"):
            waits.update(producers.get(node, []))
            checks += _refs(effective[node], "precondition") if node in effective else []
        for check in checks:
            if kind.get(check) in RUNNER_PRECONDITIONS:
                expected.tasks.setdefault(check, group(check, expected.tasks[oid]))
                waits.add(check)
        expected.waits_for[oid] = {w for w in waits if w in objects}
    return expected


def generated_values(document: Mapping[str, Any]) -> dict[str, str]:
    """A value for each parameter without a default (optional ones get none), by type."""
    values: dict[str, str] = {}
    given = document.get("values", {})
    for parameter in document.get("parameters", []):
        pid = parameter["id"]
        if "default" in parameter or pid in given:
            continue
        if str(parameter.get("optional", "false")).lower() == "true":
            continue
        allowed = parameter.get("allowedValues")
        kind = parameter.get("type", "String")
        if allowed:
            values[pid] = allowed[0] if isinstance(allowed, list) else allowed
        elif kind == "AWS::S3::ObjectKey":
            values[pid] = f"s3://pipeworker-conformance/{pid.lstrip('*')}"
        elif kind == "Integer":
            values[pid] = "1"
        elif kind == "Double":
            values[pid] = "1.0"
        else:
            values[pid] = f"conformance-{pid.lstrip('*')}"
    # Some samples use #{myX} without declaring it (nor setting a field myX): a user passes
    # --parameter-values myX=... for those, as the service's error message says.
    declared = {parameter["id"] for parameter in document.get("parameters", [])}
    field_names = {key for element in document["objects"] for key in element}
    text = json.dumps(document["objects"])
    for name in re.findall(r"#\{\s*(\*?my[A-Za-z0-9_]*)\s*\}", text):
        if name not in declared and name not in field_names and name not in given:
            values.setdefault(name, f"conformance-{name.lstrip('*')}")
    return values


# ----------------------------------------------------------------- driving a run


@dataclass
class Outcome:
    """What one drive saw."""

    pipeline_id: str
    handed_out: list[tuple[str, str]] = field(default_factory=list)  # (component, group)
    raw_expressions: list[str] = field(default_factory=list)
    order_violations: list[str] = field(default_factory=list)
    wrong_groups: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # instance id -> @status


def _fields(obj: Mapping[str, Any]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for item in obj["fields"]:
        result.setdefault(item["key"], []).append(item.get("stringValue", item.get("refValue")))
    return result


def instance_statuses(client: Any, pipeline_id: str) -> dict[str, dict[str, list[str]]]:
    ids: list[str] = []
    marker = ""
    while True:
        page = client.query_objects(pipelineId=pipeline_id, sphere="INSTANCE", marker=marker)
        ids += page["ids"]
        if not page["hasMoreResults"]:
            break
        marker = page["marker"]
    described: dict[str, dict[str, list[str]]] = {}
    for start in range(0, len(ids), 25):
        answer = client.describe_objects(pipelineId=pipeline_id, objectIds=ids[start : start + 25])
        for obj in answer["pipelineObjects"]:
            described[obj["id"]] = _fields(obj)
    return described


def put_and_activate(
    client: Any, name: str, definition: Mapping[str, Any], values: Mapping[str, str]
) -> str:
    """create, validate, put, get (round trip), activate; returns the pipeline id."""
    pipeline_id: str = client.create_pipeline(name=name[:1024], uniqueId=name)["pipelineId"]
    params = dict(definition)
    params["parameterValues"] = list(definition["parameterValues"]) + [
        {"id": key, "stringValue": value} for key, value in values.items()
    ]
    checked = client.validate_pipeline_definition(pipelineId=pipeline_id, **params)
    assert not checked["errored"], checked["validationErrors"]
    put = client.put_pipeline_definition(pipelineId=pipeline_id, **params)
    assert not put["errored"], put["validationErrors"]
    got = client.get_pipeline_definition(pipelineId=pipeline_id)
    assert _normal(got) == _normal(params), "get-pipeline-definition differs from what was put"
    client.activate_pipeline(pipelineId=pipeline_id)
    return pipeline_id


def _normal(api: Mapping[str, Any]) -> Any:
    document = to_definition_document(api)
    objects = {o["id"]: json.dumps(o, sort_keys=True) for o in document["objects"]}
    parameters = {p["id"]: json.dumps(p, sort_keys=True) for p in document.get("parameters", [])}
    return objects, parameters, document.get("values", {})


def drive(client: Any, pipeline_id: str, expected: Expected, deadline: float = 60.0) -> Outcome:
    """Poll every expected group and finish each task until every expected task is done."""
    outcome = Outcome(pipeline_id)
    done: set[str] = set()
    groups = sorted(set(expected.tasks.values()))
    stop_at = time.monotonic() + deadline
    while set(expected.tasks) - done and time.monotonic() < stop_at:
        for group in groups:
            answer = client.poll_for_task(workerGroup=group, hostname="conformance")
            task = answer.get("taskObject")
            if task is None:
                continue
            _inspect(task, group, expected, done, outcome)
            client.report_task_progress(taskId=task["taskId"])
            client.set_task_status(taskId=task["taskId"], taskStatus="FINISHED")
    described = instance_statuses(client, pipeline_id)
    first = min((fields["@scheduledStartTime"][0] for fields in described.values()), default="")
    outcome.statuses = {
        oid: fields.get("@status", [""])[0]
        for oid, fields in described.items()
        if fields["@scheduledStartTime"][0] == first  # later runs of a schedule are not driven
    }
    return outcome


def _inspect(
    task: Mapping[str, Any], group: str, expected: Expected, done: set[str], outcome: Outcome
) -> None:
    objects = task["objects"]
    attempt = objects[task["attemptId"]]
    instance_id = _fields(attempt)["@instanceParent"][0]
    component = _fields(objects[instance_id])["@componentParent"][0]
    outcome.handed_out.append((component, group))
    if expected.tasks.get(component) != group:
        outcome.wrong_groups.append(
            f"{component} came on {group!r}, expected {expected.tasks.get(component)!r}"
        )
    missing = expected.waits_for.get(component, set()) - done
    if missing:
        outcome.order_violations.append(f"{component} handed out before {sorted(missing)}")
    for obj in objects.values():
        for item in obj["fields"]:
            text = item.get("stringValue", "")
            if "#{" in text:
                outcome.raw_expressions.append(f"{obj['id']}.{item['key']} = {text[:80]!r}")
    done.add(component)


def iter_definitions() -> Iterator[tuple[dict[str, str], Path | None]]:
    folder = definitions_dir()
    for entry in sources():
        yield entry, (folder / entry["file"]) if folder else None
