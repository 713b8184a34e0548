"""Every implemented operation rejects what botocore's model forbids, the way AWS does.

Requests are sent raw (aiohttp, no botocore), since botocore itself refuses some of them before
sending. For each operation a complete valid request is built from the model; each mutation breaks
exactly one rule (missing required member, too long, too short, outside the pattern, not in the
enum, too many items) and must come back as HTTP 400 ``ValidationException`` naming the member.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.model import Shape

from pipeworker._model import operation_input, service_model, validate_input

Path = tuple[str | int, ...]


def example(shape: Shape) -> Any:
    """A valid value of *shape* with every member present."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        return {name: example(member) for name, member in shape.members.items()}  # type: ignore[attr-defined]
    if kind == "list":
        return [example(shape.member)]  # type: ignore[attr-defined]
    if kind == "map":
        return {"k": example(shape.value)}  # type: ignore[attr-defined]
    if kind == "string":
        enum = getattr(shape, "enum", [])
        return enum[0] if enum else "a" * max(meta.get("min", 1), 1)
    if kind in ("integer", "long"):
        return max(meta.get("min", 1), 1)
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return 1_700_000_000
    raise AssertionError(f"no example for {kind}")


def mutations(shape: Shape, path: Path, label: str) -> Iterator[tuple[str, Path, Any]]:
    """(description, path, replacement) for each rule of *shape* and its members; a replacement
    of ``...`` means "remove the member"."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            child = f"{label}.{name}" if label else name
            if name in shape.required_members:
                yield f"{child} missing", (*path, name), ...
            yield from mutations(member, (*path, name), child)
    elif kind == "list":
        member = shape.member  # type: ignore[attr-defined]
        if "max" in meta:
            yield f"{label} too many items", path, [example(member)] * (meta["max"] + 1)
        yield from mutations(member, (*path, 0), f"{label}[0]")
    elif kind == "string":
        enum = getattr(shape, "enum", [])
        if enum:
            yield f"{label} not in enum", path, "NOT_A_VALUE"
            return
        if "max" in meta:
            yield f"{label} too long", path, "a" * (meta["max"] + 1)
        if meta.get("min", 0) > 0:
            yield f"{label} too short", path, "a" * (meta["min"] - 1)
        if "pattern" in meta:
            # U+0001 is outside the pattern Data Pipeline uses for nearly every string.
            yield f"{label} outside the pattern", path, "a\u0001b"


def apply(request: Any, path: Path, replacement: Any) -> Any:
    mutated = copy.deepcopy(request)
    target = mutated
    for key in path[:-1]:
        target = target[key]
    if replacement is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = replacement
    return mutated


def cases() -> Iterator[Any]:
    model = service_model("datapipeline")
    for operation in model.operation_names:
        shape = operation_input("datapipeline", operation)
        if shape is None:
            continue
        request = example(shape)
        assert validate_input("datapipeline", operation, request) == [], operation
        for description, path, replacement in mutations(shape, (), ""):
            mutated = apply(request, path, replacement)
            if validate_input("datapipeline", operation, mutated):
                yield pytest.param(operation, mutated, path, id=f"{operation}: {description}")


CASES = list(cases())


def test_the_walk_covers_every_operation_and_kind_of_rule() -> None:
    operations = {case.values[0] for case in CASES}
    assert operations == set(service_model("datapipeline").operation_names)
    ids = " ".join(str(case.id) for case in CASES)
    for rule in ("missing", "too long", "too short", "outside the pattern", "not in enum"):
        assert rule in ids


async def test_out_of_model_inputs_are_rejected(raw: Any) -> None:
    # One test walking every case keeps the suite fast (one service, one HTTP session).
    failures = []
    for case in CASES:
        operation, request, path = case.values
        status, body = await raw(f"DataPipeline.{operation}", request)
        member = ".".join(str(p) for p in path if not isinstance(p, int))
        if (
            status != 400
            or body.get("__type", "").rsplit("#", 1)[-1] != "ValidationException"
            or member.rsplit(".", 1)[-1] not in body.get("message", "")
        ):
            failures.append((case.id, status, body))
    assert not failures, failures[:5]
    assert len(CASES) > 100
