"""Pipeline definitions: parsing the wire form, validating it, and resolving inherited fields.

An object's effective fields are its own, then those of its ``parent`` chain, then those of the
``Default`` object, the nearest definition of a key winning. Parameters (``#{myParam}``) take their
values from ``parameterValues``, else from the parameter object's ``default`` attribute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeworker.local._evaluation import PARAMETER, period_seconds, substitute_parameters
from pipeworker.local._fieldcheck import check_formats
from pipeworker.local._values import Ref, Value
from pipeworker.services._dpdescription import DATA_PIPELINE

__all__ = [
    "DEFAULT_ID",
    "Component",
    "Problems",
    "fields_from_wire",
    "fields_to_wire",
    "instance_kind",
    "is_activity",
    "optional_parameters",
    "parameter_values",
    "parse_objects",
    "resolve_all",
    "validate_definition",
]

DEFAULT_ID = "Default"
MAX_FIELDS = DATA_PIPELINE.limits["object_fields"]
MAX_OBJECT_BYTES = DATA_PIPELINE.limits["object_bytes"]
MAX_RETRIES = DATA_PIPELINE.limits["activity_retries"]
# Fields whose references are structural, not objects a task needs to see.
STRUCTURAL_REFS = frozenset({"parent", "dependsOn", "schedule"})
# Fields naming actions the service itself fires; a runner never sees them.
ACTION_REFS = frozenset({"onFail", "onSuccess", "onLateAction"})
RESOURCE_TYPES = frozenset({"Ec2Resource", "EmrCluster"})
PRECONDITION_TYPES = frozenset(
    {
        "DynamoDBDataExists",
        "DynamoDBTableExists",
        "Exists",
        "S3KeyExists",
        "S3PrefixNotEmpty",
        "ShellCommandPrecondition",
    }
)

Problems = dict[str, list[str]]
"""Messages per object id, as PutPipelineDefinition's validationErrors/validationWarnings."""


@dataclass(frozen=True, slots=True)
class Component:
    """A pipeline object as defined: its id, name and own fields (before inheritance)."""

    id: str
    name: str
    fields: dict[str, list[Value]]


def fields_from_wire(wire: Iterable[Mapping[str, Any]]) -> dict[str, list[Value]]:
    """Turn ``[{"key", "stringValue"|"refValue"}]`` into key -> values, keeping order."""
    result: dict[str, list[Value]] = {}
    for field in wire:
        ref = field.get("refValue")
        value: Value = Ref(ref) if ref is not None else field.get("stringValue", "")
        result.setdefault(field["key"], []).append(value)
    return result


def fields_to_wire(fields: Mapping[str, Sequence[Value]]) -> list[dict[str, str]]:
    """The wire form of *fields*: one ``{"key", "stringValue"|"refValue"}`` per value."""
    wire: list[dict[str, str]] = []
    for key, values in fields.items():
        for value in values:
            if isinstance(value, Ref):
                wire.append({"key": key, "refValue": value.id})
            else:
                wire.append({"key": key, "stringValue": value})
    return wire


def parse_objects(wire: Iterable[Mapping[str, Any]]) -> list[Component]:
    """Parse PutPipelineDefinition's ``pipelineObjects``."""
    return [
        Component(item["id"], item["name"], fields_from_wire(item.get("fields", [])))
        for item in wire
    ]


def parameter_values(
    parameter_objects: Iterable[Mapping[str, Any]],
    *value_lists: Iterable[Mapping[str, Any]],
) -> dict[str, str]:
    """Parameter id -> value: each parameter's ``default``, overridden by the lists in order."""
    values: dict[str, str] = {}
    for parameter in parameter_objects:
        for attribute in parameter.get("attributes", []):
            if attribute["key"] == "default":
                values[parameter["id"]] = attribute["stringValue"]
    for value_list in value_lists:
        for item in value_list:
            values[item["id"]] = item["stringValue"]
    return values


def _first(fields: Mapping[str, Sequence[Value]], key: str) -> Value | None:
    values = fields.get(key)
    return values[0] if values else None


def is_activity(fields: Mapping[str, Sequence[Value]]) -> bool:
    """True for objects the service runs as tasks: every type named ``...Activity``."""
    kind = _first(fields, "type")
    return isinstance(kind, str) and kind.endswith("Activity")


def instance_kind(fields: Mapping[str, Sequence[Value]]) -> str | None:
    """What an activation makes of an object: ``activity``, ``datanode``, ``resource`` or
    ``precondition``; None for what AWS never instantiates (schedules, databases, data formats,
    EMR configurations, actions such as SnsAlarm)."""
    kind = _first(fields, "type")
    if not isinstance(kind, str):
        return None
    if kind.endswith("Activity"):
        return "activity"
    if kind.endswith("DataNode"):
        return "datanode"
    if kind in RESOURCE_TYPES:
        return "resource"
    if kind in PRECONDITION_TYPES:
        return "precondition"
    return None


def optional_parameters(parameter_objects: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Ids of the parameters declared ``"optional": "true"``."""
    return frozenset(
        parameter["id"]
        for parameter in parameter_objects
        for attribute in parameter.get("attributes", [])
        if attribute["key"] == "optional" and attribute["stringValue"].strip().lower() == "true"
    )


def _parent_chain(
    component: Component, components: Mapping[str, Component]
) -> tuple[list[Component], bool]:
    """The parents of *component*, nearest first, and whether the chain loops."""
    chain: list[Component] = []
    seen = {component.id}
    parent = _first(component.fields, "parent")
    while isinstance(parent, Ref) and parent.id in components:
        if parent.id in seen:
            return chain, True
        seen.add(parent.id)
        current = components[parent.id]
        chain.append(current)
        parent = _first(current.fields, "parent")
    return chain, False


def resolve_all(components: Mapping[str, Component]) -> dict[str, dict[str, list[Value]]]:
    """Every object's effective fields: own, then parents', then ``Default``'s."""
    default = components.get(DEFAULT_ID)
    resolved: dict[str, dict[str, list[Value]]] = {}
    for component in components.values():
        fields = dict(component.fields)
        chain, _ = _parent_chain(component, components)
        if default is not None and component.id != DEFAULT_ID:
            chain.append(default)
        for ancestor in chain:
            for key, values in ancestor.fields.items():
                if key != "parent" and key not in fields:
                    fields[key] = values
        resolved[component.id] = fields
    return resolved


def validate_definition(
    components: Sequence[Component],
    parameters: Mapping[str, str],
    parameter_objects: Sequence[Mapping[str, Any]],
) -> tuple[Problems, Problems]:
    """Check a definition the way the service does; return (errors, warnings) per object id.

    *parameters* are the values (defaults included); a parameter declared ``optional`` may have
    none. A ``#{myX}`` that names no parameter is a user-defined field when the object has a
    field ``myX`` (the guide's "User-Defined Fields"), else an error.
    """
    errors: Problems = {}
    warnings: Problems = {}
    by_id: dict[str, Component] = {}
    for component in components:
        if component.id in by_id:
            errors.setdefault(component.id, []).append(f"Duplicate object id {component.id!r}")
        by_id[component.id] = component
    declared = {parameter["id"] for parameter in parameter_objects}
    optional = optional_parameters(parameter_objects)
    for parameter_id in sorted(declared):
        if not parameter_id.startswith(("my", "*my")):
            errors.setdefault(parameter_id, []).append(
                f"Parameter id {parameter_id!r} must start with 'my' (or '*my' for a masked one)"
            )
    resolved = resolve_all(by_id)
    referenced: set[str] = set()
    parents = {
        value.id
        for component in by_id.values()
        for value in component.fields.get("parent", [])
        if isinstance(value, Ref)
    }
    for component in by_id.values():
        problems = _check_component(
            component, by_id, resolved[component.id], _Parameters(parameters, declared, optional)
        )
        if component.id in parents:
            # A template other objects inherit from needs no type of its own.
            problems = [p for p in problems if not p.startswith("Object has no 'type'")]
        if problems:
            errors.setdefault(component.id, []).extend(problems)
        for values in component.fields.values():
            referenced.update(value.id for value in values if isinstance(value, Ref))
        delay = _first(resolved[component.id], "retryDelay")
        delay_seconds = _seconds(delay) if isinstance(delay, str) else None
        if delay_seconds is not None and delay_seconds < 120:
            warnings.setdefault(component.id, []).append(
                "retryDelay is below the service's minimum of 2 minutes"
            )
    for component_id, message in _dependency_cycles(by_id):
        errors.setdefault(component_id, []).append(message)
    for component in by_id.values():
        if (
            component.id != DEFAULT_ID
            and component.id not in referenced
            and not is_activity(resolved[component.id])
        ):
            warnings.setdefault(component.id, []).append(
                "Object is not an activity and no other object references it"
            )
    return errors, warnings


def _seconds(text: str) -> float | None:
    try:
        return period_seconds(text, 1.0)
    except ValueError:
        return None


def object_limits(fields: Mapping[str, Sequence[Value]]) -> list[str]:
    """What breaks the service's per-object limits: 50 fields, 15,360 UTF-8 bytes."""
    problems: list[str] = []
    if len(fields) > MAX_FIELDS:
        problems.append(f"Object has {len(fields)} fields; the limit is {MAX_FIELDS}")
    size = sum(
        len(key.encode()) + len((v.id if isinstance(v, Ref) else v).encode())
        for key, values in fields.items()
        for v in values
    )
    if size > MAX_OBJECT_BYTES:
        problems.append(f"Object is {size} bytes (UTF-8); the limit is {MAX_OBJECT_BYTES}")
    return problems


@dataclass(frozen=True, slots=True)
class _Parameters:
    values: Mapping[str, str]
    declared: set[str]
    optional: frozenset[str]

    def substitute(self, text: str) -> str:
        return substitute_parameters(text, self.values, self.optional)


def _check_component(
    component: Component,
    by_id: Mapping[str, Component],
    fields: Mapping[str, Sequence[Value]],
    parameters: _Parameters,
) -> list[str]:
    problems = object_limits(component.fields)
    for key, values in component.fields.items():
        for value in values:
            if isinstance(value, Ref):
                if value.id not in by_id:
                    problems.append(f"Field {key!r} references object {value.id!r}, not defined")
            else:
                problems.extend(_check_parameters(key, value, parameters, fields))
    _, loops = _parent_chain(component, by_id)
    if loops:
        problems.append("The 'parent' chain of this object forms a cycle")
    if component.id == DEFAULT_ID:
        return problems
    if _first(fields, "type") is None:
        problems.append("Object has no 'type' field (neither its own nor inherited)")
    if is_activity(fields) and "workerGroup" not in fields and "runsOn" not in fields:
        problems.append("Activity must have either a 'runsOn' or a 'workerGroup' field")
    retries = _first(fields, "maximumRetries")
    if isinstance(retries, str) and not (retries.isdigit() and int(retries) <= MAX_RETRIES):
        problems.append(f"maximumRetries must be an integer from 0 to {MAX_RETRIES}")
    problems.extend(check_formats(_first(fields, "type"), component.fields, parameters.substitute))
    return problems


def _check_parameters(
    key: str, text: str, parameters: _Parameters, fields: Mapping[str, Sequence[Value]]
) -> list[str]:
    problems: list[str] = []
    for name in PARAMETER.findall(text):
        if name in parameters.values or name in parameters.optional:
            continue
        if name in parameters.declared:
            problems.append(f"Field {key!r} uses parameter {name!r}, which has no value")
        elif name not in fields:
            problems.append(
                f"Field {key!r} uses #{{{name}}}, which is neither a parameter nor a field of "
                'this object; declare it under "parameters" or set the field'
            )
    return problems


def _dependency_cycles(by_id: Mapping[str, Component]) -> list[tuple[str, str]]:
    """(object id, message) for each object on a ``dependsOn`` cycle."""
    state: dict[str, int] = {}
    found: list[tuple[str, str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for value in by_id[node].fields.get("dependsOn", []):
            if not isinstance(value, Ref) or value.id not in by_id:
                continue
            if state.get(value.id) == 1:
                cycle = [*path[path.index(value.id) :], value.id]
                found.append((value.id, "dependsOn forms a cycle: " + " -> ".join(cycle)))
            elif value.id not in state:
                visit(value.id, [*path, value.id])
        state[node] = 2

    for node in by_id:
        if node not in state:
            visit(node, [node])
    return found
