"""The pipeline definition file: what ``aws datapipeline put-pipeline-definition`` reads.

A file is a JSON object::

    {
      "objects": [
        {"id": "Default", "name": "Default", "scheduleType": "ondemand"},
        {"id": "Copy", "type": "ShellCommandActivity", "command": "echo #{myText}",
         "dependsOn": [{"ref": "Prepare"}, {"ref": "Check"}]}
      ],
      "parameters": [{"id": "myText", "type": "String", "default": "hello"}],
      "values": {"myText": "hi"}
    }

Each object has an ``id``, an optional ``name`` (the id when absent) and fields: a field's value is
a string, ``{"ref": "OtherId"}``, or a list of those for several values. This module turns a file
into PutPipelineDefinition's parameters and back, as the AWS CLI does (fields sorted by key, one
API field per value), but it checks what the CLI leaves to botocore or the service and says what
to fix: a number or boolean is refused, as botocore refuses it in the CLI, with the quoted form
to write instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "DefinitionFileError",
    "command_line_parameters",
    "load_definition_file",
    "load_parameter_objects_file",
    "load_parameter_values_file",
    "parse_definition",
    "to_definition_document",
    "with_parameters",
]

_EXAMPLE = '{"objects": [{"id": "Default", "scheduleType": "ondemand"}]}'


class DefinitionFileError(ValueError):
    """A pipeline definition file is malformed; the message names the file, object and field."""


class _Pairs(dict[str, Any]):
    """A JSON object that remembers which keys it had more than once."""

    duplicates: tuple[str, ...] = ()


def _pairs_hook(pairs: list[tuple[str, Any]]) -> _Pairs:
    result = _Pairs(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicates: list[str] = []
        for key, _ in pairs:
            if key in seen:
                duplicates.append(key)
            seen.add(key)
        result.duplicates = tuple(duplicates)
    return result


def _read_json(path: str | os.PathLike[str]) -> tuple[str, Any]:
    """The file's name (without ``file://``) and its JSON; every way it can fail is a
    DefinitionFileError saying what to fix."""
    name = os.fspath(path)
    if name.startswith("file://"):
        name = name[len("file://") :]
    try:
        with open(name, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise DefinitionFileError(f"{name}: cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionFileError(
            f"{name}: not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        ) from exc
    try:
        return name, json.loads(text, object_pairs_hook=_pairs_hook)
    except json.JSONDecodeError as exc:
        raise DefinitionFileError(
            f"{name}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    except RecursionError:
        raise DefinitionFileError(f"{name}: JSON nested too deeply") from None
    except ValueError as exc:
        # Python refuses to convert integers of more than 4,300 digits (int_max_str_digits).
        raise DefinitionFileError(
            f"{name}: not a usable JSON file: {str(exc).split(';')[0]}; values in a definition "
            "are strings, so write the number in quotes"
        ) from None


def load_parameter_values_file(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Read ``--parameter-values-uri``'s file, ``{"values": {"myParam": "value"}}``.

    Returns:
        PutPipelineDefinition's ``parameterValues``.

    Raises:
        DefinitionFileError: When the file cannot be read or is not of that shape.
    """
    name, values = _member(path, "values", "parameter values", '{"values": {"myParam": "value"}}')
    return _values(values, name)


def load_parameter_objects_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read ``--parameter-objects``' file, ``{"parameters": [{"id": "myParam", ...}]}``.

    Returns:
        PutPipelineDefinition's ``parameterObjects``.

    Raises:
        DefinitionFileError: When the file cannot be read or is not of that shape.
    """
    name, parameters = _member(
        path,
        "parameters",
        "parameter objects",
        '{"parameters": [{"id": "myParam", "type": "String"}]}',
    )
    return _parameters(parameters, name)


def _member(path: str | os.PathLike[str], key: str, what: str, example: str) -> tuple[str, Any]:
    """The file's name and its JSON object's *key*; else an error showing *example*."""
    name, document = _read_json(path)
    if not isinstance(document, Mapping) or key not in document:
        raise DefinitionFileError(
            f"{name}: a {what} file is a JSON object like {example}, "
            f'not {_kind(document)} without "{key}"'
        )
    return name, document[key]


def load_definition_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a definition file and return PutPipelineDefinition's parameters.

    Args:
        path: The JSON file (``file://`` prefixes, as the CLI takes them, are accepted).

    Returns:
        ``{"pipelineObjects": [...], "parameterObjects": [...], "parameterValues": [...]}``.

    Raises:
        DefinitionFileError: When the file cannot be read, is not JSON, or is not a definition.
    """
    name, document = _read_json(path)
    return parse_definition(document, source=name)


def parse_definition(
    document: Mapping[str, Any], *, source: str = "<definition>"
) -> dict[str, Any]:
    """Turn a definition document (the file's JSON) into PutPipelineDefinition's parameters.

    Args:
        document: The parsed JSON.
        source: Where it came from, for error messages.

    Returns:
        ``{"pipelineObjects": [{"id", "name", "fields": [{"key", "stringValue" | "refValue"}]}],
        "parameterObjects": [{"id", "attributes": [{"key", "stringValue"}]}],
        "parameterValues": [{"id", "stringValue"}]}``; absent sections give empty lists.

    Raises:
        DefinitionFileError: Naming the object and field to fix.
    """
    if not isinstance(document, Mapping):
        raise DefinitionFileError(
            f"{source}: the file must hold a JSON object like {_EXAMPLE}, not {_kind(document)}"
        )
    _check_duplicates(document, f"{source}: the top level")
    if "objects" not in document:
        raise DefinitionFileError(
            f'{source}: no "objects" list; a definition looks like {_EXAMPLE}'
        )
    return {
        "pipelineObjects": _objects(document["objects"], source),
        "parameterObjects": _parameters(document.get("parameters", []), source),
        "parameterValues": _values(document.get("values", {}), source),
    }


def _entries(
    items: Any, source: str, key: str, what: str
) -> Iterator[tuple[int, str, str, Mapping[str, Any]]]:
    """Each JSON object of the *key* list: its number, its id, where it is (for messages), and
    the object itself."""
    if not isinstance(items, list):
        raise DefinitionFileError(f'{source}: "{key}" must be a list, not {_kind(items)}')
    for index, element in enumerate(items, start=1):
        where = f"{source}: {what} #{index}"
        if not isinstance(element, Mapping):
            raise DefinitionFileError(f"{where} must be a JSON object, not {_kind(element)}")
        identifier = _identifier(element, where, what)
        yield index, identifier, f"{source}: {what} {identifier!r}", element


def _objects(objects: Any, source: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    for index, object_id, where, element in _entries(objects, source, "objects", "object"):
        if object_id in first_seen:
            raise DefinitionFileError(
                f"{where}: the id is used twice (objects #{first_seen[object_id]} and #{index}); "
                "ids must be unique"
            )
        first_seen[object_id] = index
        _check_duplicates(element, where)
        name = element.get("name", object_id)
        if not isinstance(name, str) or not name:
            raise DefinitionFileError(
                f'{where}: "name" must be a non-empty string, not {_kind(name)}'
            )
        fields: list[dict[str, str]] = []
        for key in sorted(element):
            if key in ("id", "name"):
                continue
            if not key:
                raise DefinitionFileError(f"{where} has a field with an empty name")
            for value in _field_values(element[key], f"{where}, field {key!r}", refs=True):
                fields.append({"key": key, **value})
        result.append({"id": object_id, "name": name, "fields": fields})
    return result


def _parameters(parameters: Any, source: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _, parameter_id, where, element in _entries(parameters, source, "parameters", "parameter"):
        if parameter_id in seen:
            raise DefinitionFileError(f"{where} is defined twice; parameter ids must be unique")
        seen.add(parameter_id)
        _check_duplicates(element, where)
        attributes: list[dict[str, str]] = []
        for key in sorted(element):
            if key == "id":
                continue
            for value in _field_values(element[key], f"{where}, attribute {key!r}", refs=False):
                attributes.append({"key": key, **value})
        result.append({"id": parameter_id, "attributes": attributes})
    return result


def _values(values: Any, source: str) -> list[dict[str, str]]:
    if not isinstance(values, Mapping):
        raise DefinitionFileError(
            f'{source}: "values" must be a JSON object like {{"myParam": "value"}}, '
            f"not {_kind(values)}"
        )
    _check_duplicates(values, f'{source}: "values"')
    result: list[dict[str, str]] = []
    for key, value in values.items():
        for item in _field_values(value, f"{source}: value of parameter {key!r}", refs=False):
            result.append({"id": key, **item})
    return result


def _identifier(element: Mapping[str, Any], where: str, what: str) -> str:
    if "id" not in element:
        shown = json.dumps(element, default=str)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise DefinitionFileError(f'{where} has no "id"; every {what} needs one: {shown}')
    value = element["id"]
    if not isinstance(value, str) or not value:
        raise DefinitionFileError(f'{where}: "id" must be a non-empty string, not {_kind(value)}')
    return value


def _field_values(value: Any, where: str, *, refs: bool) -> list[dict[str, str]]:
    items = value if isinstance(value, list) else [value]
    result: list[dict[str, str]] = []
    for item in items:
        if isinstance(item, str):
            result.append({"stringValue": item})
        elif refs and isinstance(item, Mapping) and list(item) == ["ref"]:
            target = item["ref"]
            if not isinstance(target, str) or not target:
                raise DefinitionFileError(
                    f'{where}: "ref" must name an object id as a string, not {_kind(target)}'
                )
            result.append({"refValue": target})
        else:
            raise DefinitionFileError(f"{where}: {_advice(item, value, refs=refs)}")
    return result


def _advice(item: Any, whole: Any, *, refs: bool) -> str:
    allowed = (
        'a string, {"ref": "ObjectId"}, or a list of those'
        if refs
        else "a string or a list of strings"
    )
    if isinstance(item, bool):
        return (
            f"{_kind(item)} is not allowed; write it as a string: {json.dumps(str(item).lower())}"
        )
    if isinstance(item, int | float):
        text = json.dumps(item)
        quoted = json.dumps(text) if len(text) <= 40 else "its digits in quotes"
        return f"{_kind(item)} is not allowed; write it as a string: {quoted}"
    if isinstance(item, list):
        return f"lists cannot be nested; the value must be {allowed}"
    if refs and isinstance(item, Mapping) and "ref" in item:
        keys = json.dumps(list(item))
        return f'a reference must have only the key "ref", like {{"ref": "ObjectId"}}, not {keys}'
    return f"the value must be {allowed}, not {_kind(item)}" + (
        " (inside the list)" if whole is not item else ""
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"the number {_number(value)}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a JSON object"
    return type(value).__name__


def _number(value: float) -> str:
    text = json.dumps(value)
    # A message stays one readable line, even for a number of thousands of digits.
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"


def _check_duplicates(element: Mapping[str, Any], where: str) -> None:
    duplicates = getattr(element, "duplicates", ())
    if duplicates:
        key = duplicates[0]
        raise DefinitionFileError(
            f"{where}: the key {key!r} appears more than once; JSON keeps only the last. "
            f'For several values use one key with a list, like "{key}": ["a", "b"]'
        )


def to_definition_document(api: Mapping[str, Any]) -> dict[str, Any]:
    """Turn GetPipelineDefinition's output (or PutPipelineDefinition's input) into a file document.

    A key given several times becomes a list, as ``aws datapipeline get-pipeline-definition``
    prints it. ``parameters`` and ``values`` appear only when there are some.

    Args:
        api: A mapping with ``pipelineObjects`` and optionally ``parameterObjects`` and
            ``parameterValues``; it is not modified.

    Returns:
        ``{"objects": [...], "parameters": [...], "values": {...}}``.
    """
    objects: list[dict[str, Any]] = []
    for element in api.get("pipelineObjects") or []:
        current: dict[str, Any] = {"id": element["id"], "name": element.get("name", element["id"])}
        for field in element.get("fields") or []:
            if "refValue" in field:
                _add(current, field["key"], {"ref": field["refValue"]})
            else:
                _add(current, field["key"], field.get("stringValue", ""))
        objects.append(current)
    document: dict[str, Any] = {"objects": objects}
    parameters: list[dict[str, Any]] = []
    for element in api.get("parameterObjects") or []:
        parameter: dict[str, Any] = {"id": element["id"]}
        for attribute in element.get("attributes") or []:
            _add(parameter, attribute["key"], attribute["stringValue"])
        parameters.append(parameter)
    if parameters:
        document["parameters"] = parameters
    values: dict[str, Any] = {}
    for element in api.get("parameterValues") or []:
        _add(values, element["id"], element["stringValue"])
    if values:
        document["values"] = values
    return document


def _add(target: dict[str, Any], key: str, value: Any) -> None:
    if key not in target:
        target[key] = value
    elif isinstance(target[key], list):
        target[key].append(value)
    else:
        target[key] = [target[key], value]


def command_line_parameters(
    values: Sequence[str] = (),
    values_uri: str | None = None,
    objects: str | None = None,
) -> dict[str, Any]:
    """The PutPipelineDefinition parameters the AWS CLI's options give (none given: empty).

    Args:
        values: ``--parameter-values`` items, ``KEY=VALUE`` each.
        values_uri: ``--parameter-values-uri``, a ``{"values": {...}}`` file.
        objects: ``--parameter-objects``, a ``{"parameters": [...]}`` file.

    Raises:
        DefinitionFileError: a value is not ``KEY=VALUE``, a file is unreadable or malformed, or
            both *values* and *values_uri* are given (the CLI refuses that too).
    """
    if values and values_uri is not None:
        raise DefinitionFileError(
            "give --parameter-values or --parameter-values-uri, not both (as the AWS CLI)"
        )
    result: dict[str, Any] = {}
    if objects is not None:
        result["parameterObjects"] = load_parameter_objects_file(objects)
    if values_uri is not None:
        result["parameterValues"] = load_parameter_values_file(values_uri)
    if values:
        pairs = []
        for item in values:
            key, equals, value = item.partition("=")
            if not equals or not key.strip():
                raise DefinitionFileError(
                    f"--parameter-values {item!r}: write each as KEY=VALUE, like "
                    "myS3LogsPath=s3://bucket/logs"
                )
            pairs.append({"id": key.strip(), "stringValue": value})
        result["parameterValues"] = pairs
    return result


def with_parameters(definition: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """*definition* with *given* parameter objects (replacing) and values (overriding by id)."""
    merged = dict(definition)
    if "parameterObjects" in given:
        merged["parameterObjects"] = given["parameterObjects"]
    if "parameterValues" in given:
        overridden = {item["id"] for item in given["parameterValues"]}
        merged["parameterValues"] = [
            item for item in definition.get("parameterValues", []) if item["id"] not in overridden
        ] + list(given["parameterValues"])
    return merged
