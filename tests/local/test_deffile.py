"""The put-pipeline-definition file format: parsing, errors that say what to fix, round trips."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeworker.local._deffile import (
    DefinitionFileError,
    load_definition_file,
    parse_definition,
    to_definition_document,
)

# The developer guide's parameterised ShellCommandActivity template, trimmed.
TEMPLATE: dict[str, Any] = {
    "objects": [
        {
            "id": "ShellCommandActivityObj",
            "input": {"ref": "S3InputLocation"},
            "name": "ShellCommandActivityObj",
            "runsOn": {"ref": "EC2ResourceObj"},
            "command": "#{myShellCmd}",
            "output": {"ref": "S3OutputLocation"},
            "type": "ShellCommandActivity",
            "stage": "true",
        },
        {"id": "Default", "scheduleType": "CRON", "failureAndRerunMode": "CASCADE"},
        {
            "id": "Schedule_15mins",
            "occurrences": "4",
            "name": "Every 15 minutes",
            "startAt": "FIRST_ACTIVATION_DATE_TIME",
            "type": "Schedule",
            "period": "15 Minutes",
        },
        {
            "id": "Both",
            "dependsOn": [{"ref": "Default"}, {"ref": "Schedule_15mins"}],
            "*password": "my-password",
        },
    ],
    "parameters": [
        {
            "id": "myShellCmd",
            "description": "Shell command to run",
            "type": "String",
            "default": 'grep -rc "GET" ${INPUT1_STAGING_DIR}/* > ${OUTPUT1_STAGING_DIR}/output.txt',
        },
        {
            "id": "myChoice",
            "type": "String",
            "allowedValues": ["a", "b"],
            "isArray": "true",
        },
    ],
    "values": {"myS3OutputLoc": "myOutputLocation", "myChoice": ["a", "b"]},
}


def test_objects_become_api_objects_with_sorted_fields_and_default_names() -> None:
    api = parse_definition(TEMPLATE)
    first, default, schedule, both = api["pipelineObjects"]
    assert first == {
        "id": "ShellCommandActivityObj",
        "name": "ShellCommandActivityObj",
        "fields": [
            {"key": "command", "stringValue": "#{myShellCmd}"},
            {"key": "input", "refValue": "S3InputLocation"},
            {"key": "output", "refValue": "S3OutputLocation"},
            {"key": "runsOn", "refValue": "EC2ResourceObj"},
            {"key": "stage", "stringValue": "true"},
            {"key": "type", "stringValue": "ShellCommandActivity"},
        ],
    }
    assert default["name"] == "Default"  # the CLI names an unnamed object after its id
    assert schedule["name"] == "Every 15 minutes"
    assert both["fields"] == [
        {"key": "*password", "stringValue": "my-password"},
        {"key": "dependsOn", "refValue": "Default"},
        {"key": "dependsOn", "refValue": "Schedule_15mins"},
    ]


def test_parameters_and_values() -> None:
    api = parse_definition(TEMPLATE)
    assert api["parameterObjects"][1] == {
        "id": "myChoice",
        "attributes": [
            {"key": "allowedValues", "stringValue": "a"},
            {"key": "allowedValues", "stringValue": "b"},
            {"key": "isArray", "stringValue": "true"},
            {"key": "type", "stringValue": "String"},
        ],
    }
    assert api["parameterValues"] == [
        {"id": "myS3OutputLoc", "stringValue": "myOutputLocation"},
        {"id": "myChoice", "stringValue": "a"},
        {"id": "myChoice", "stringValue": "b"},
    ]


def test_absent_sections_are_empty_lists() -> None:
    api = parse_definition({"objects": []})
    assert api == {"pipelineObjects": [], "parameterObjects": [], "parameterValues": []}


def test_the_document_is_not_modified() -> None:
    document = json.loads(json.dumps(TEMPLATE))
    parse_definition(document)
    assert document == TEMPLATE


def test_round_trip_file_to_api_to_file() -> None:
    document = to_definition_document(parse_definition(TEMPLATE))
    named = [{"name": obj["id"], **obj} for obj in TEMPLATE["objects"]]
    assert document["objects"] == named
    assert document["parameters"] == TEMPLATE["parameters"]
    assert document["values"] == TEMPLATE["values"]
    assert parse_definition(document) == parse_definition(TEMPLATE)


def test_to_definition_document_leaves_out_empty_sections() -> None:
    api = {
        "pipelineObjects": [{"id": "A", "name": "A", "fields": []}],
        "parameterObjects": [],
        "parameterValues": [],
    }
    assert to_definition_document(api) == {"objects": [{"id": "A", "name": "A"}]}


def test_load_definition_file(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(TEMPLATE), encoding="utf-8")
    assert load_definition_file(path) == parse_definition(TEMPLATE)
    assert load_definition_file(f"file://{path}") == parse_definition(TEMPLATE)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must hold a JSON object"),
        ({}, 'no "objects" list'),
        ({"objects": {}}, '"objects" must be a list, not a JSON object'),
        ({"objects": ["x"]}, "object #1 must be a JSON object, not a string"),
        ({"objects": [{"type": "Schedule"}]}, 'object #1 has no "id"; every object needs one'),
        ({"objects": [{"id": 7}]}, '"id" must be a non-empty string, not the number 7'),
        ({"objects": [{"id": ""}]}, '"id" must be a non-empty string'),
        ({"objects": [{"id": "A", "name": None}]}, '"name" must be a non-empty string, not null'),
        (
            {"objects": [{"id": "A"}, {"id": "B"}, {"id": "A"}]},
            "object 'A': the id is used twice (objects #1 and #3)",
        ),
        (
            {"objects": [{"id": "S", "occurrences": 4}]},
            "object 'S', field 'occurrences': the number 4 is not allowed; "
            'write it as a string: "4"',
        ),
        (
            {"objects": [{"id": "S", "stage": True}]},
            "object 'S', field 'stage': the boolean true is not allowed; "
            'write it as a string: "true"',
        ),
        ({"objects": [{"id": "S", "x": 1.5}]}, 'write it as a string: "1.5"'),
        ({"objects": [{"id": "S", "x": None}]}, "field 'x': the value must be a string"),
        ({"objects": [{"id": "S", "x": [["a"]]}]}, "field 'x': lists cannot be nested"),
        ({"objects": [{"id": "S", "x": ["a", 2]}]}, "field 'x': the number 2 is not allowed"),
        (
            {"objects": [{"id": "S", "x": {"ref": "A", "extra": 1}}]},
            'a reference must have only the key "ref"',
        ),
        ({"objects": [{"id": "S", "x": {"ref": 3}}]}, '"ref" must name an object id as a string'),
        ({"objects": [{"id": "S", "x": {"id": "A"}}]}, "not a JSON object"),
        ({"objects": [{"id": "S", "": "v"}]}, "object 'S' has a field with an empty name"),
        ({"objects": [], "parameters": {}}, '"parameters" must be a list'),
        ({"objects": [], "parameters": [{"type": "String"}]}, 'parameter #1 has no "id"'),
        (
            {"objects": [], "parameters": [{"id": "myP"}, {"id": "myP"}]},
            "parameter 'myP' is defined twice",
        ),
        (
            {"objects": [], "parameters": [{"id": "myP", "optional": False}]},
            "parameter 'myP', attribute 'optional': the boolean false is not allowed",
        ),
        (
            {"objects": [], "parameters": [{"id": "myP", "default": {"ref": "A"}}]},
            "attribute 'default': the value must be a string or a list of strings",
        ),
        ({"objects": [], "values": []}, '"values" must be a JSON object'),
        ({"objects": [], "values": {"myP": 3}}, "value of parameter 'myP': the number 3"),
    ],
)
def test_malformed_documents_say_what_to_fix(document: Any, message: str) -> None:
    with pytest.raises(DefinitionFileError) as caught:
        parse_definition(document, source="x.json")
    assert str(caught.value).startswith("x.json: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"objects": [', "not valid JSON: Expecting value at line 1, column 14"),
        (b'{"objects": [{"id": "A",}]}', "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        (
            b'{"objects": [{"id": "A", "schedule": "x", "schedule": "y"}]}',
            "object 'A': the key 'schedule' appears more than once",
        ),
        (b'{"objects": [], "objects": []}', "the top level: the key 'objects' appears more"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_files_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(DefinitionFileError) as caught:
        load_definition_file(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DefinitionFileError, match="cannot read the file"):
        load_definition_file(tmp_path / "missing.json")


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"objects": [{"id": "A"}]}).encode())
    assert load_definition_file(path)["pipelineObjects"] == [{"id": "A", "name": "A", "fields": []}]


_TEXT = st.text(min_size=1, max_size=12)
_VALUE = st.one_of(_TEXT, st.builds(lambda ref: {"ref": ref}, _TEXT))
_FIELDS = st.dictionaries(
    _TEXT.filter(lambda key: key not in ("id", "name")),
    st.one_of(_VALUE, st.lists(_VALUE, min_size=2, max_size=3)),
    max_size=5,
)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(_TEXT, _FIELDS, max_size=5),
    st.dictionaries(_TEXT, st.one_of(_TEXT, st.lists(_TEXT, min_size=2, max_size=3)), max_size=3),
)
def test_round_trip_property(objects: dict[str, dict[str, Any]], values: dict[str, Any]) -> None:
    document = {
        "objects": [
            {"id": object_id, "name": object_id, **fields} for object_id, fields in objects.items()
        ],
        "values": values,
    }
    api = parse_definition(document)
    back = to_definition_document(api)
    assert parse_definition(back) == api
    assert back["objects"] == [
        {
            "id": obj["id"],
            "name": obj["name"],
            **{k: obj[k] for k in sorted(obj) if k not in ("id", "name")},
        }
        for obj in document["objects"]
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=20,
    )
)
def test_any_json_either_parses_or_raises_definition_file_error(document: Any) -> None:
    for candidate in (document, {"objects": document}, {"objects": [document]}):
        with contextlib.suppress(DefinitionFileError):
            parse_definition(candidate)
