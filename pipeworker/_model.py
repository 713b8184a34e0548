"""Input validation driven by botocore's service models.

botocore checks only required members and minimum lengths before sending; maximum lengths, patterns
and enums are left to the server. pipeworker checks all of them in one place, from the same model
files botocore ships, so that the runner fails before sending a value AWS would reject and the local
service rejects exactly what AWS would.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from botocore.loaders import Loader
from botocore.model import ServiceModel, Shape

__all__ = ["check_value", "operation_input", "service_model", "validate_input"]


@functools.cache
def service_model(service: str) -> ServiceModel:
    """Return botocore's model of *service* (for example ``"datapipeline"``), loaded once."""
    data = Loader().load_service_model(service, "service-2")
    return ServiceModel(data, service_name=service)


def operation_input(service: str, operation: str) -> Shape | None:
    """Return the input shape of *operation*, or None when it takes no input."""
    return service_model(service).operation_model(operation).input_shape


@functools.cache
def _compile(pattern: str) -> re.Pattern[str]:
    # The models write patterns in Java's UTF-16 terms: a surrogate pair range stands for every
    # code point above the BMP. Python strings hold code points, so translate that pair once.
    translated = pattern.replace("\\uD800\\uDC00-\\uDBFF\\uDFFF", "\\U00010000-\\U0010FFFF")
    return re.compile(translated, re.DOTALL)


def check_value(shape: Shape, value: Any, path: str) -> list[str]:
    """Return what is wrong with *value* for *shape*, as messages naming *path*; empty if valid."""
    errors: list[str] = []
    _check(shape, value, path, errors)
    return errors


def validate_input(service: str, operation: str, params: Mapping[str, Any]) -> list[str]:
    """Validate a request's parameters against the model; return one message per problem."""
    shape = operation_input(service, operation)
    if shape is None:
        return [] if not params else [f"{operation} takes no parameters"]
    return check_value(shape, params, "")


def _join(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    meta = shape.metadata
    name = path or "input"
    if kind == "structure":
        if not isinstance(value, Mapping):
            errors.append(f"{name}: expected an object, got {type(value).__name__}")
            return
        for required in shape.required_members:
            if value.get(required) is None:
                errors.append(f"{_join(path, required)}: required member is missing")
        members = shape.members  # type: ignore[attr-defined]
        for key, item in value.items():
            if key not in members:
                errors.append(f"{_join(path, key)}: unknown member")
            elif item is not None:
                _check(members[key], item, _join(path, key), errors)
    elif kind == "list":
        if not isinstance(value, list):
            errors.append(f"{name}: expected a list, got {type(value).__name__}")
            return
        _check_length(len(value), meta, name, "items", errors)
        member = shape.member  # type: ignore[attr-defined]
        for index, item in enumerate(value):
            _check(member, item, f"{name}[{index}]", errors)
    elif kind == "map":
        if not isinstance(value, Mapping):
            errors.append(f"{name}: expected an object, got {type(value).__name__}")
            return
        for key, item in value.items():
            _check(shape.key, key, f"{name}.<key>", errors)  # type: ignore[attr-defined]
            _check(shape.value, item, f"{name}.{key}", errors)  # type: ignore[attr-defined]
    elif kind == "string":
        if not isinstance(value, str):
            errors.append(f"{name}: expected a string, got {type(value).__name__}")
            return
        _check_length(len(value), meta, name, "characters", errors)
        enum: list[str] = getattr(shape, "enum", [])
        if enum and value not in enum:
            errors.append(f"{name}: {value!r} is not one of {', '.join(enum)}")
        pattern = meta.get("pattern")
        if pattern and _compile(pattern).fullmatch(value) is None:
            errors.append(f"{name}: contains characters outside the pattern {pattern}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{name}: expected a boolean, got {type(value).__name__}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{name}: expected an integer, got {type(value).__name__}")
            return
        if "min" in meta and value < meta["min"]:
            errors.append(f"{name}: {value} is below the minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            errors.append(f"{name}: {value} is above the maximum {meta['max']}")
    elif kind == "timestamp" and (
        isinstance(value, bool) or not isinstance(value, int | float | str)
    ):
        errors.append(f"{name}: expected a timestamp, got {type(value).__name__}")


def _check_length(
    length: int, meta: Mapping[str, Any], name: str, unit: str, errors: list[str]
) -> None:
    if "min" in meta and length < meta["min"]:
        errors.append(f"{name}: {length} {unit}, the minimum is {meta['min']}")
    if "max" in meta and length > meta["max"]:
        errors.append(f"{name}: {length} {unit}, the maximum is {meta['max']}")
