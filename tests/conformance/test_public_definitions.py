"""Every public Data Pipeline definition we collected runs on the local service, as on AWS.

The definitions (awslabs/data-pipeline-samples, the Developer Guide's examples, the AWS CLI's
example) are listed with their repository, path, commit and sha256 in ``SOURCES.json``; the files
themselves are not committed here (see :func:`~tests.conformance.harness.definitions_dir` for
where they are read from). Each goes through put, validate, get (round trip) and activate; then
every task is polled on the worker group the definition implies, in dependency order, and set
FINISHED, until every instance of the run is FINISHED. No task may carry a raw ``#{...}``.

``expectations.json`` says which files AWS or its CLI refuse as published (the local service
must refuse them too, with a message saying what to fix) and what a reader fills in, as the
sample's README or page asks, before running them.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pipeworker.local._deffile import DefinitionFileError, load_definition_file
from tests.conformance.harness import (
    HERE,
    ServiceThread,
    drive,
    expected_run,
    generated_values,
    iter_definitions,
    put_and_activate,
)

CASES = list(iter_definitions())
EXPECTATIONS: dict[str, Any] = json.loads((HERE / "expectations.json").read_text())


def _case_id(case: tuple[dict[str, str], Path | None]) -> str:
    return case[0]["file"].removesuffix(".json")


def _api_form(document: dict[str, Any]) -> dict[str, Any] | None:
    """Files already in the API's form (the samples' setup.json, sent with boto3 as-is)."""
    objects = document.get("objects", [])
    if objects and all(isinstance(o.get("fields"), list) for o in objects):
        return {
            "pipelineObjects": objects,
            "parameterObjects": document.get("parameters", []),
            "parameterValues": document.get("parameterValues", []),
        }
    return None


def _load(path: Path, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    document: dict[str, Any] = json.loads(text)
    api = _api_form(document)
    if api is not None:
        values = {v["id"]: v["stringValue"] for v in api["parameterValues"]}
        return api, {"values": values, "parameters": [], "objects": []}
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / path.name
        copy.write_text(text)
        return load_definition_file(copy), document


def _run(service: ServiceThread, name: str, definition: dict[str, Any], values: Any) -> None:
    document = values.pop("_document")
    client = service.client()
    try:
        pipeline_id = put_and_activate(client, name, definition, values)
        expected = expected_run(_document_of(definition, document), pipeline_id)
        outcome = drive(client, pipeline_id, expected)
    finally:
        client.close()
    assert not outcome.raw_expressions, outcome.raw_expressions
    assert not outcome.wrong_groups, outcome.wrong_groups
    assert not outcome.order_violations, outcome.order_violations
    handed = {component for component, _ in outcome.handed_out}
    assert handed == set(expected.tasks), f"tasks never handed out: {set(expected.tasks) - handed}"
    unfinished = {oid: s for oid, s in outcome.statuses.items() if s != "FINISHED"}
    assert not unfinished, unfinished


def _document_of(definition: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    if document.get("objects"):
        return document
    from pipeworker.local._deffile import to_definition_document

    return to_definition_document(definition)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_public_definition_runs(
    case: tuple[dict[str, str], Path | None], service_thread: ServiceThread
) -> None:
    entry, path = case
    if path is None or not path.is_file():
        pytest.skip("public definitions not present (see tests/conformance/SOURCES.json)")
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{path} is not the listed file"
    expectation = EXPECTATIONS.get(entry["file"], {})
    text = data.decode("utf-8-sig")
    name = entry["file"].removesuffix(".json")
    if "refused_by_cli" in expectation:
        with pytest.raises(DefinitionFileError, match=expectation["refused_by_cli"]):
            load_definition_file(path)
        return
    if "refused" in expectation:
        definition, document = _load(path, text)
        client = service_thread.client()
        try:
            created = client.create_pipeline(name=name, uniqueId=name + "-as-published")
            put = client.put_pipeline_definition(
                pipelineId=created["pipelineId"],
                **{**definition, "parameterValues": _values(definition, document, {})},
            )
        finally:
            client.close()
        assert put["errored"]
        messages = [m for error in put["validationErrors"] for m in error["errors"]]
        assert any(expectation["refused"] in m for m in messages), messages
        if "then_replace" not in expectation:
            return
        for old, new in expectation["then_replace"].items():
            assert old in text
            text = text.replace(old, new)
    definition, document = _load(path, text)
    values = dict(generated_values(document)) if document.get("objects") else {}
    values.update(expectation.get("values", {}))
    _run(service_thread, name, definition, {**values, "_document": document})


def _values(
    definition: dict[str, Any], document: dict[str, Any], extra: dict[str, str]
) -> list[dict[str, str]]:
    values = {**generated_values(document), **extra} if document.get("objects") else extra
    return list(definition["parameterValues"]) + [
        {"id": key, "stringValue": value} for key, value in values.items()
    ]


def test_the_collection_is_large_enough() -> None:
    """The suite covers at least 40 public definitions, each with its source and commit."""
    entries = [entry for entry, _ in CASES]
    assert len(entries) >= 40
    for entry in entries:
        assert entry["repository"]
        assert entry["path"]
        assert len(entry["commit"]) == 40
    refusals = {"refused", "refused_by_cli"}
    refused = [e for e in entries if refusals & set(EXPECTATIONS.get(e["file"], {}))]
    assert len(entries) - len(refused) >= 40, "fewer than 40 definitions run as published"
