"""Checking a state machine definition against the subset of the States Language run locally.

The subset: Task states on activity ARNs (``HeartbeatSeconds``, ``TimeoutSeconds``, ``Retry``,
``Catch``, ``ResultSelector``), Pass, Choice (comparisons, ``And``/``Or``/``Not``, ``Default``),
Wait (``Seconds``, ``SecondsPath``, ``Timestamp``, ``TimestampPath``), Succeed and Fail, with
``InputPath``, ``Parameters``, ``ResultPath`` and ``OutputPath``. Everything else (Map, Parallel,
intrinsic functions, other resources, JSONata, variables) is refused with ``InvalidDefinition``
naming the feature, so a definition the local service accepts is one it runs as AWS would.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pipeworker.local._aslpath import COMPARISONS, path_problem, template_problems

__all__ = ["ACTIVITY_ARN", "check_definition"]

ACTIVITY_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:activity:[^:\s]+")

_COMMON = {"Type", "Comment"}
_IO = {"InputPath", "OutputPath"}
_FLOW = {"Next", "End"}
_FIELDS: dict[str, set[str]] = {
    "Pass": _COMMON | _IO | _FLOW | {"Parameters", "Result", "ResultPath"},
    "Task": _COMMON
    | _IO
    | _FLOW
    | {"Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"}
    | {"TimeoutSeconds", "HeartbeatSeconds"},
    "Choice": _COMMON | _IO | {"Choices", "Default"},
    "Wait": _COMMON | _IO | _FLOW | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": _COMMON | _IO,
    "Fail": _COMMON | {"Error", "Cause", "ErrorPath", "CausePath"},
}
# Real States Language fields outside the subset, with the feature each belongs to.
_UNSUPPORTED_FIELDS = {
    "Assign": "variables (Assign)",
    "Output": "JSONata (Output)",
    "Arguments": "JSONata (Arguments)",
    "QueryLanguage": "JSONata (QueryLanguage)",
    "TimeoutSecondsPath": "TimeoutSecondsPath",
    "HeartbeatSecondsPath": "HeartbeatSecondsPath",
    "Credentials": "cross-account tasks (Credentials)",
}
_UNSUPPORTED_TYPES = {"Map", "Parallel"}
_TOP_LEVEL = {"Comment", "StartAt", "States", "TimeoutSeconds", "Version"}


def check_definition(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """Parse and check a definition; return it and every problem found (empty when runnable)."""
    try:
        definition = json.loads(text)
    except ValueError as exc:
        return None, [f"INVALID_JSON_DESCRIPTION: {exc}"]
    if not isinstance(definition, dict):
        return None, ["SCHEMA_VALIDATION_FAILED: the definition must be a JSON object"]
    problems: list[str] = []
    for key in definition:
        if key == "QueryLanguage" and definition[key] == "JSONPath":
            continue
        if key not in _TOP_LEVEL:
            feature = _UNSUPPORTED_FIELDS.get(key)
            problems.append(
                f"UNSUPPORTED_FEATURE: {feature} is not supported by the local service at /"
                if feature
                else f"SCHEMA_VALIDATION_FAILED: The field '{key}' is not supported at /"
            )
    states = definition.get("States")
    if not isinstance(states, dict) or not states:
        return definition, [
            *problems,
            "SCHEMA_VALIDATION_FAILED: States must be a non-empty object",
        ]
    start = definition.get("StartAt")
    if start not in states:
        problems.append(f"MISSING_TRANSITION_TARGET: StartAt {start!r} is not a state at /StartAt")
    _positive(definition, "TimeoutSeconds", "/", problems)
    for name, state in states.items():
        problems += _check_state(name, state, states)
    if not problems:
        problems += _unreachable(definition)
    return definition, problems


def _check_state(name: str, state: Any, states: dict[str, Any]) -> list[str]:
    where = f"/States/{name}"
    if not isinstance(state, dict):
        return [f"SCHEMA_VALIDATION_FAILED: a state must be an object at {where}"]
    kind = state.get("Type")
    if kind in _UNSUPPORTED_TYPES:
        return [
            f"UNSUPPORTED_FEATURE: {kind} states are not supported by the local service at {where}"
        ]
    if kind not in _FIELDS:
        return [f"SCHEMA_VALIDATION_FAILED: {kind!r} is not a valid state Type at {where}"]
    problems: list[str] = []
    for key in state:
        if key in _FIELDS[kind]:
            continue
        if key == "QueryLanguage" and state[key] == "JSONPath":
            continue
        feature = _UNSUPPORTED_FIELDS.get(key)
        problems.append(
            f"UNSUPPORTED_FEATURE: {feature} is not supported by the local service at {where}"
            if feature
            else f"SCHEMA_VALIDATION_FAILED: The field '{key}' is not supported by {kind} "
            f"states at {where}"
        )
    for key in ("InputPath", "OutputPath", "ResultPath", "SecondsPath", "TimestampPath"):
        if state.get(key) is not None:
            problem = path_problem(state[key], f"{where}/{key}")
            if problem:
                problems.append(f"SCHEMA_VALIDATION_FAILED: {problem}")
    if isinstance(state.get("ResultPath"), str) and state["ResultPath"].startswith("$$"):
        problems.append(f"SCHEMA_VALIDATION_FAILED: ResultPath cannot use $$ at {where}")
    for key in ("Parameters", "ResultSelector"):
        if key in state:
            problems += [
                f"UNSUPPORTED_FEATURE: {p}"
                if "not supported" in p
                else f"SCHEMA_VALIDATION_FAILED: {p}"
                for p in template_problems(state[key], f"{where}/{key}")
            ]
    if kind in ("Pass", "Task", "Wait"):
        has_next, has_end = "Next" in state, state.get("End") is True
        if has_next == has_end:
            problems.append(f"SCHEMA_VALIDATION_FAILED: exactly one of Next or End at {where}")
    if "Next" in state and state["Next"] not in states:
        problems.append(
            f"MISSING_TRANSITION_TARGET: Missing 'Next' target: {state['Next']} at {where}"
        )
    if kind == "Task":
        problems += _check_task(state, where, states)
    elif kind == "Choice":
        problems += _check_choice(state, where, states)
    elif kind == "Wait":
        waits = [k for k in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if k in state]
        if len(waits) != 1:
            problems.append(
                f"SCHEMA_VALIDATION_FAILED: a Wait state needs exactly one of Seconds, "
                f"SecondsPath, Timestamp, TimestampPath at {where}"
            )
        elif "Seconds" in state:
            seconds = state["Seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
                problems.append(
                    f"SCHEMA_VALIDATION_FAILED: Seconds must be an integer >= 0 at {where}"
                )
    return problems


def _check_task(state: dict[str, Any], where: str, states: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    resource = state.get("Resource")
    if not isinstance(resource, str) or ACTIVITY_ARN.fullmatch(resource) is None:
        problems.append(
            f"UNSUPPORTED_FEATURE: resource {resource!r} is not supported: the local service "
            f"runs Task states on activity ARNs (arn:aws:states:REGION:ACCOUNT:activity:NAME) "
            f"at {where}/Resource"
        )
    _positive(state, "TimeoutSeconds", where, problems)
    _positive(state, "HeartbeatSeconds", where, problems)
    timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
    if isinstance(timeout, int) and isinstance(heartbeat, int) and heartbeat >= timeout:
        problems.append(
            f"SCHEMA_VALIDATION_FAILED: HeartbeatSeconds must be smaller than TimeoutSeconds "
            f"at {where}"
        )
    for field in ("Retry", "Catch"):
        items = state.get(field, [])
        if not isinstance(items, list):
            problems.append(f"SCHEMA_VALIDATION_FAILED: {field} must be a list at {where}")
            continue
        for index, item in enumerate(items):
            at = f"{where}/{field}/{index}"
            if not isinstance(item, dict):
                problems.append(f"SCHEMA_VALIDATION_FAILED: must be an object at {at}")
                continue
            errors = item.get("ErrorEquals")
            if (
                not isinstance(errors, list)
                or not errors
                or not all(isinstance(e, str) for e in errors)
            ):
                problems.append(
                    f"SCHEMA_VALIDATION_FAILED: ErrorEquals must be a non-empty list at {at}"
                )
            elif "States.ALL" in errors and (len(errors) > 1 or index != len(items) - 1):
                problems.append(
                    f"SCHEMA_VALIDATION_FAILED: States.ALL must appear alone, in the last "
                    f"{field} entry at {at}"
                )
            if field == "Retry":
                problems += _check_retrier(item, at)
            else:
                allowed = {"ErrorEquals", "Next", "ResultPath", "Comment"}
                problems += [
                    f"SCHEMA_VALIDATION_FAILED: The field '{k}' is not supported in Catch at {at}"
                    for k in item
                    if k not in allowed
                ]
                if item.get("Next") not in states:
                    problems.append(f"MISSING_TRANSITION_TARGET: Missing 'Next' target at {at}")
                if item.get("ResultPath") is not None:
                    problem = path_problem(item["ResultPath"], f"{at}/ResultPath")
                    if problem:
                        problems.append(f"SCHEMA_VALIDATION_FAILED: {problem}")
    return problems


def _check_retrier(item: dict[str, Any], at: str) -> list[str]:
    allowed = {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds"}
    problems = [
        f"SCHEMA_VALIDATION_FAILED: The field '{k}' is not supported in Retry at {at}"
        for k in item
        if k not in allowed | {"JitterStrategy", "Comment"}
    ]
    if item.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
        problems.append(f"SCHEMA_VALIDATION_FAILED: JitterStrategy must be FULL or NONE at {at}")
    _positive(item, "IntervalSeconds", at, problems)
    _positive(item, "MaxDelaySeconds", at, problems)
    attempts = item.get("MaxAttempts", 3)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        problems.append(f"SCHEMA_VALIDATION_FAILED: MaxAttempts must be an integer >= 0 at {at}")
    rate = item.get("BackoffRate", 2.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 1:
        problems.append(f"SCHEMA_VALIDATION_FAILED: BackoffRate must be a number >= 1.0 at {at}")
    return problems


def _check_choice(state: dict[str, Any], where: str, states: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        return [f"SCHEMA_VALIDATION_FAILED: Choices must be a non-empty list at {where}"]
    if "Default" in state and state["Default"] not in states:
        problems.append(f"MISSING_TRANSITION_TARGET: Missing 'Default' target at {where}")
    for index, rule in enumerate(choices):
        at = f"{where}/Choices/{index}"
        if not isinstance(rule, dict) or rule.get("Next") not in states:
            problems.append(f"MISSING_TRANSITION_TARGET: a choice rule needs a valid Next at {at}")
            continue
        problems += _check_rule({k: v for k, v in rule.items() if k != "Next"}, at)
    return problems


def _check_rule(rule: Any, at: str) -> list[str]:
    if not isinstance(rule, dict):
        return [f"SCHEMA_VALIDATION_FAILED: a choice rule must be an object at {at}"]
    rule = {k: v for k, v in rule.items() if k != "Comment"}
    if "Condition" in rule:
        return [
            "UNSUPPORTED_FEATURE: JSONata (Condition) is not supported by the local service "
            f"at {at}"
        ]
    for combinator in ("And", "Or"):
        if combinator in rule:
            items = rule[combinator]
            if len(rule) != 1 or not isinstance(items, list) or not items:
                return [
                    f"SCHEMA_VALIDATION_FAILED: {combinator} needs a non-empty list alone at {at}"
                ]
            return [
                p
                for i, item in enumerate(items)
                for p in _check_rule(item, f"{at}/{combinator}/{i}")
            ]
    if "Not" in rule:
        if len(rule) != 1:
            return [f"SCHEMA_VALIDATION_FAILED: Not must stand alone at {at}"]
        return _check_rule(rule["Not"], f"{at}/Not")
    operators = [k for k in rule if k in COMPARISONS]
    unknown = [k for k in rule if k not in COMPARISONS and k != "Variable"]
    if unknown:
        return [f"SCHEMA_VALIDATION_FAILED: unknown choice operator {unknown[0]!r} at {at}"]
    if len(operators) != 1 or "Variable" not in rule:
        return [f"SCHEMA_VALIDATION_FAILED: a rule needs Variable and one comparison at {at}"]
    problems = []
    for key in ["Variable", *(o for o in operators if o.endswith("Path"))]:
        problem = path_problem(rule[key], f"{at}/{key}")
        if problem:
            problems.append(f"SCHEMA_VALIDATION_FAILED: {problem}")
    return problems


def _positive(mapping: dict[str, Any], key: str, where: str, problems: list[str]) -> None:
    value = mapping.get(key)
    if key in mapping and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        problems.append(f"SCHEMA_VALIDATION_FAILED: {key} must be a positive integer at {where}")


def _unreachable(definition: dict[str, Any]) -> list[str]:
    states = definition["States"]
    seen: set[str] = set()
    pending = [definition["StartAt"]]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        targets = [state.get("Next"), state.get("Default")]
        targets += [c.get("Next") for c in state.get("Catch", []) + state.get("Choices", [])]
        pending += [t for t in targets if isinstance(t, str)]
    return [
        f"UNREACHABLE_STATE: State '{name}' is not reachable at /States/{name}"
        for name in states
        if name not in seen
    ]
