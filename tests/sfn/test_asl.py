"""The States Language subset, rule by rule: Choice comparisons, paths, ResultPath, and how Retry
and Catch match and count, through executions on the local service where timing matters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeworker.local._aslpath import (
    StatesError,
    apply_template,
    evaluate_rule,
    path_problem,
    read_path,
    write_result,
)

from .conftest import Sfn, machine, task_state

DATA = {
    "name": "cat.png",
    "size": 12.5,
    "count": 3,
    "ok": True,
    "none": None,
    "when": "2026-11-30T12:00:00Z",
    "list": [{"a": 1}, {"a": 2}],
    "odd key": "x",
    "limit": 10,
}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"Variable": "$.name", "StringEquals": "cat.png"}, True),
        ({"Variable": "$.name", "StringLessThan": "dog"}, True),
        ({"Variable": "$.name", "StringGreaterThanEquals": "cat.png"}, True),
        ({"Variable": "$.name", "StringMatches": "*.png"}, True),
        ({"Variable": "$.name", "StringMatches": "cat\\*"}, False),
        ({"Variable": "$.size", "NumericGreaterThan": 12}, True),
        ({"Variable": "$.count", "NumericEquals": 3}, True),
        ({"Variable": "$.count", "NumericLessThanPath": "$.limit"}, True),
        ({"Variable": "$.count", "NumericEquals": "3"}, False),  # another type never matches
        ({"Variable": "$.ok", "NumericEquals": 1}, False),  # a boolean is not a number
        ({"Variable": "$.ok", "BooleanEquals": True}, True),
        ({"Variable": "$.when", "TimestampLessThan": "2026-12-01T00:00:00Z"}, True),
        ({"Variable": "$.when", "TimestampEquals": "2026-11-30T13:00:00+01:00"}, True),
        ({"Variable": "$.none", "IsNull": True}, True),
        ({"Variable": "$.size", "IsNumeric": True}, True),
        ({"Variable": "$.when", "IsTimestamp": True}, True),
        ({"Variable": "$.name", "IsString": False}, False),
        ({"Variable": "$.missing", "IsPresent": False}, True),
        ({"Variable": "$.list[1].a", "NumericEquals": 2}, True),
        ({"Variable": "$['odd key']", "StringEquals": "x"}, True),
        ({"Variable": "$$.State.Name", "StringEquals": "Route"}, True),
        (
            {
                "And": [
                    {"Variable": "$.count", "NumericGreaterThan": 1},
                    {"Not": {"Variable": "$.ok", "BooleanEquals": False}},
                    {
                        "Or": [
                            {"Variable": "$.name", "StringEquals": "x"},
                            {"Variable": "$.ok", "IsBoolean": True},
                        ]
                    },
                ]
            },
            True,
        ),
    ],
)
def test_choice_rules(rule: dict[str, Any], expected: bool) -> None:
    assert evaluate_rule(rule, DATA, {"State": {"Name": "Route"}}) is expected


def test_a_missing_variable_is_a_runtime_error_except_for_is_present() -> None:
    with pytest.raises(StatesError) as info:
        evaluate_rule({"Variable": "$.missing", "StringEquals": "x"}, DATA, {})
    assert info.value.error == "States.Runtime"


def test_paths_templates_and_result_paths() -> None:
    assert read_path("$", DATA, {}) is DATA
    assert read_path("$.list[0]", DATA, {}) == {"a": 1}
    template = {
        "first.$": "$.list[0].a",
        "fixed": {"deep.$": "$.name"},
        "items": ["a", {"n.$": "$.count"}],
    }
    assert apply_template(template, DATA, {}) == {
        "first": 1,
        "fixed": {"deep": "cat.png"},
        "items": ["a", {"n": 3}],
    }
    assert write_result("$.out.value", {"in": 1}, 2) == {"in": 1, "out": {"value": 2}}
    assert write_result(None, {"in": 1}, 2) == {"in": 1}
    assert write_result("$", {"in": 1}, 2) == 2
    with pytest.raises(StatesError) as info:
        write_result("$.in.deeper", {"in": 1}, 2)
    assert info.value.error == "States.ResultPathMatchFailure"
    with pytest.raises(StatesError):
        read_path("$.nope", DATA, {})


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("$.a", None),
        ("$['a b'][3].c", None),
        ("$$.Execution.Input", None),
        ("a.b", "is not a path"),
        ("$..a", "recursive descent '..'"),
        ("$.a[*]", "wildcard '[*]'"),
        ("$.a[?(@.b > 1)]", "filter"),
        ("$.a[1:2]", "slice"),
        ("$.a[0,1]", "union"),
        ("$.a.*", "wildcard"),
        ("$['a,b']", None),
        ("$['a.b']", None),
        ("States.JsonMerge($.a, $.b, false)", "States.JsonMerge"),
    ],
)
def test_paths_outside_the_subset_are_named(path: str, problem: str | None) -> None:
    found = path_problem(path, "/States/X")
    assert (found is None) if problem is None else (found is not None and problem in found)


async def test_retry_counts_attempts_per_retrier_and_then_catch_takes_over(sfn: Sfn) -> None:
    arn = await sfn.activity("always-fails")
    definition = machine(
        Work=task_state(
            arn,
            Retry=[
                {"ErrorEquals": ["Other"], "MaxAttempts": 5},
                {
                    "ErrorEquals": ["States.TaskFailed"],
                    "IntervalSeconds": 1,
                    "MaxAttempts": 2,
                    "BackoffRate": 1.5,
                },
            ],
            Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
        ),
        Caught={"Type": "Pass", "End": True},
    )
    state_machine = await sfn.machine("retries", definition)
    execution = await sfn.start(state_machine)
    for _ in range(3):  # the first attempt and two retries
        token = (await sfn.get_activity_task(activityArn=arn))["taskToken"]
        await sfn.send_task_failure(taskToken=token, error="Broken", cause="again")
    (described,) = await sfn.finished(execution)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"Error": "Broken", "Cause": "again"}
    history = await sfn.history(execution)
    assert sum(e["type"] == "ActivityScheduled" for e in history) == 3


async def test_states_all_never_catches_a_runtime_error(sfn: Sfn) -> None:
    arn = await sfn.activity("runtime")
    definition = machine(
        Work=task_state(
            arn, InputPath="$.absent", Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
        ),
        Caught={"Type": "Succeed"},
    )
    state_machine = await sfn.machine("runtime", definition)
    (described,) = await sfn.finished(await sfn.start(state_machine, {"present": 1}))
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")


async def test_task_failed_does_not_match_a_timeout_and_max_attempts_zero_never_retries(
    sfn: Sfn,
) -> None:
    arn = await sfn.activity("timeouts")
    definition = machine(
        Work=task_state(
            arn,
            TimeoutSeconds=1,
            Retry=[
                {"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 5},
                {"ErrorEquals": ["States.Timeout"], "MaxAttempts": 0},
            ],
        )
    )
    state_machine = await sfn.machine("timeouts", definition)
    execution = await sfn.start(state_machine)
    (described,) = await sfn.finished(execution)
    assert (described["status"], described["error"]) == ("FAILED", "States.Timeout")
    history = await sfn.history(execution)
    assert sum(e["type"] == "ActivityScheduled" for e in history) == 1


async def test_an_execution_timeout_ends_it_timed_out(sfn: Sfn) -> None:
    definition = {
        **machine(Wait={"Type": "Wait", "Seconds": 100, "End": True}),
        "TimeoutSeconds": 2,
    }
    state_machine = await sfn.machine("too-long", definition)
    execution = await sfn.start(state_machine)
    (described,) = await sfn.finished(execution)
    assert (described["status"], described["error"]) == ("TIMED_OUT", "States.Timeout")
    assert (await sfn.history(execution))[-1]["type"] == "ExecutionTimedOut"
