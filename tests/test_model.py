"""The model-driven validator rejects what AWS rejects and accepts what it accepts."""

import pytest

from pipeworker._model import validate_input


def test_maximum_length_and_minimum_length_are_reported_with_the_member_name() -> None:
    errors = validate_input(
        "datapipeline", "PollForTask", {"workerGroup": "w" * 1025, "hostname": ""}
    )
    assert errors == [
        "workerGroup: 1025 characters, the maximum is 1024",
        "hostname: 0 characters, the minimum is 1",
    ]


def test_enum_is_enforced() -> None:
    errors = validate_input("datapipeline", "SetTaskStatus", {"taskId": "t", "taskStatus": "DONE"})
    assert errors == ["taskStatus: 'DONE' is not one of FINISHED, FAILED, FALSE"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("plain text", True),
        ("tab\tand\nnewline", True),
        ("emoji \U0001f600", True),
        ("bell \x07", False),
    ],
)
def test_pattern_admits_astral_code_points_and_rejects_control_characters(
    value: str, ok: bool
) -> None:
    fields = [{"key": "k", "stringValue": value}]
    errors = validate_input("datapipeline", "ReportTaskProgress", {"taskId": "t", "fields": fields})
    assert (errors == []) is ok


def test_required_unknown_and_wrongly_typed_members() -> None:
    errors = validate_input("datapipeline", "ReportTaskProgress", {"fields": "x", "extra": 1})
    assert "taskId: required member is missing" in errors
    assert "fields: expected a list, got str" in errors
    assert "extra: unknown member" in errors


def test_swf_model_is_available_too() -> None:
    assert (
        validate_input("swf", "PollForActivityTask", {"domain": "d", "taskList": {"name": "q"}})
        == []
    )
    assert validate_input(
        "swf", "RecordActivityTaskHeartbeat", {"taskToken": "t", "details": "d" * 2049}
    )
