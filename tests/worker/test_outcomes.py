"""A handler's result becomes a status the service accepts, within its limits."""

from __future__ import annotations

import pytest

from pipeworker import Outcome, PreconditionNotMet, Ref, TaskFailed
from pipeworker._model import validate_input
from pipeworker._supervisor import outcome_of
from pipeworker.services._dptask import ReceivedAttempt, resolve_field
from pipeworker.services.base import truncate_head, truncate_tail
from pipeworker.services.datapipeline import (
    check_progress_fields,
    period_seconds,
    status_params,
    task_from_wire,
)


def raised(error: Exception) -> Exception:
    try:
        raise error
    except Exception as caught:
        return caught


def test_returning_is_finished() -> None:
    assert outcome_of(None) == Outcome("FINISHED")
    assert status_params("t", outcome_of(None)) == {"taskId": "t", "taskStatus": "FINISHED"}


def test_task_failed_carries_its_id_and_message_and_no_trace() -> None:
    outcome = outcome_of(raised(TaskFailed("SourceMissing", "no file s3://b/k")))
    assert status_params("t", outcome) == {
        "taskId": "t",
        "taskStatus": "FAILED",
        "errorId": "SourceMissing",
        "errorMessage": "no file s3://b/k",
    }


def test_unexpected_exception_reports_type_message_and_trace() -> None:
    params = status_params("t", outcome_of(raised(KeyError("table"))))
    assert params["errorId"] == "KeyError"
    assert params["errorMessage"] == "'table'"
    assert "Traceback" in params["errorStackTrace"]
    assert params["errorStackTrace"].endswith("KeyError: 'table'\n")


def test_precondition_not_met_is_false() -> None:
    params = status_params("t", outcome_of(raised(PreconditionNotMet("no data yet"))))
    assert params == {"taskId": "t", "taskStatus": "FALSE"}


def test_error_id_never_starts_with_the_reserved_prefix() -> None:
    params = status_params("t", Outcome.failed("Service_Timeout", "x"))
    assert not params["errorId"].startswith("Service_")
    assert params["errorId"].endswith("Service_Timeout")


def test_long_texts_are_cut_to_the_limits_keeping_the_end_of_the_trace() -> None:
    trace = "Traceback\n" + "  frame\n" * 500 + "ValueError: the real cause\n"
    params = status_params("t", Outcome.failed("E" * 2000, "m" * 5000, trace))
    assert len(params["errorId"]) == 1024
    assert len(params["errorMessage"]) == 1024
    assert params["errorMessage"].endswith("[truncated]...")
    assert len(params["errorStackTrace"]) == 1024
    assert params["errorStackTrace"].startswith("...[truncated]...")
    assert params["errorStackTrace"].endswith("ValueError: the real cause\n")
    assert validate_input("datapipeline", "SetTaskStatus", params) == []


def test_characters_the_service_rejects_are_replaced() -> None:
    params = status_params("t", Outcome.failed("Bad\x00Id", "bell\x07", "trace\x1b[0m"))
    assert validate_input("datapipeline", "SetTaskStatus", params) == []
    assert params["errorMessage"] == "bell\ufffd"


@pytest.mark.parametrize("limit", [0, 5, 17, 18, 100])
def test_truncation_respects_any_limit(limit: int) -> None:
    text = "x" * 200
    assert len(truncate_head(text, limit)) == limit
    assert len(truncate_tail(text, limit)) == limit
    assert truncate_head("short", 100) == "short"


def test_task_objects_become_python_values_with_inheritance() -> None:
    wire = {
        "taskId": "task-1",
        "pipelineId": "df-1",
        "attemptId": "@A_1_Attempt=1",
        "objects": {
            "@A_1_Attempt=1": {
                "id": "@A_1_Attempt=1",
                "name": "A",
                "fields": [
                    {"key": "@instanceParent", "refValue": "@A_1"},
                    {"key": "@status", "stringValue": "RUNNING"},
                ],
            },
            "@A_1": {
                "id": "@A_1",
                "name": "A",
                "fields": [
                    {"key": "type", "stringValue": "ShellCommandActivity"},
                    {"key": "command", "stringValue": "echo hi"},
                    {"key": "dependsOn", "refValue": "B"},
                    {"key": "dependsOn", "refValue": "C"},
                    {"key": "parent", "refValue": "Default"},
                ],
            },
            "Default": {"id": "Default", "fields": [{"key": "role", "stringValue": "r"}]},
        },
    }
    task = task_from_wire("wg-1", wire)
    assert task == ReceivedAttempt(
        id="task-1",
        queue="wg-1",
        pipeline_id="df-1",
        attempt_id="@A_1_Attempt=1",
        objects=task.objects,
        type="ShellCommandActivity",
    )
    assert task.objects["@A_1"]["dependsOn"] == [Ref("B"), Ref("C")]
    assert resolve_field(task.objects, task.attempt_id, "command") == "echo hi"
    assert resolve_field(task.objects, task.attempt_id, "@status") == "RUNNING"
    assert resolve_field(task.objects, task.attempt_id, "role") == "r"
    assert resolve_field(task.objects, task.attempt_id, "missing") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10 Minutes", 600), ("1 hour", 3600), ("30 seconds", 30), ("2 Days", 172800), ("soon", None)],
)
def test_report_progress_timeout_sets_a_tasks_own_lease(text: str, seconds: float | None) -> None:
    wire = {
        "taskId": "t",
        "attemptId": "a",
        "objects": {"a": {"fields": [{"key": "reportProgressTimeout", "stringValue": text}]}},
    }
    assert period_seconds(text) == seconds
    assert task_from_wire("wg", wire).lease_seconds == seconds


def test_progress_fields_are_checked_against_the_model_before_sending() -> None:
    assert check_progress_fields({"rows": "42", "target": Ref("Out")}) == []
    problems = check_progress_fields({"k" * 300: "v", "big": "x" * 10241, "bell": "\x07"})
    assert problems == [
        f"field name {'k' * 40!r}: 300 characters, the maximum is 256",
        "field 'big': 10241 characters, the maximum is 10240",
        problems[2],
    ]
    assert problems[2].startswith("field 'bell': contains characters outside the pattern")
