"""The Amazon States Language's data flow: paths, payload templates and Choice rules.

Paths are the JSONPath subset every state machine uses: ``$``, ``$.a.b``, ``$['a b']``,
``$.list[0]`` and the context object ``$$.Execution.Id``. What JSONPath has beyond that (``..``,
``[*]``, filters, slices) is refused when the definition is created (:func:`path_problem`), never
evaluated wrongly. An evaluation that cannot proceed raises :class:`StatesError` with AWS's error
name (``States.Runtime``, ``States.ResultPathMatchFailure``).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

__all__ = [
    "COMPARISONS",
    "StatesError",
    "apply_template",
    "evaluate_rule",
    "path_problem",
    "read_path",
    "write_result",
]

_MISSING: Any = object()
_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")
_INTRINSIC = re.compile(r"^\s*States\.([A-Za-z0-9]+)\s*\(")
# JSONPath beyond reference paths, named in InvalidDefinition.
_FEATURES = (
    ("recursive descent '..'", r"\.\."),
    ("wildcard '[*]'", r"\[\*\]|\.\*"),
    ("filter '[?(...)]'", r"\[\?"),
    ("slice '[start:end]'", r"\[-?\d*:"),
    ("union '[a,b]'", r"\[\s*(?:-?\d+|'[^']*')\s*,"),
    ("current node '@'", r"^\$[^'\[]*@"),
)


class StatesError(Exception):
    """An error raised inside an execution: *error* is the ASL name Retry and Catch match."""

    def __init__(self, error: str, cause: str = "", *, heartbeat: bool = False) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
        self.heartbeat = heartbeat  # a States.Timeout from HeartbeatSeconds


def _steps(path: str) -> list[str | int] | None:
    """The steps of a reference path after its ``$`` or ``$$``; None if outside the subset."""
    rest = path[2:] if path.startswith("$$") else path[1:] if path.startswith("$") else None
    if rest is None:
        return None
    steps: list[str | int] = []
    position = 0
    while position < len(rest):
        match = _STEP.match(rest, position)
        if match is None:
            return None
        name, index, quoted = match.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(name if name is not None else re.sub(r"\\(.)", r"\1", quoted))
        position = match.end()
    return steps


def path_problem(path: Any, where: str) -> str | None:
    """What the local service cannot evaluate in *path*, naming the feature; None if fine."""
    if not isinstance(path, str):
        return f"{where}: a path must be a string, got {json.dumps(path)}"
    intrinsic = _INTRINSIC.match(path)
    if intrinsic:
        return f"{where}: intrinsic functions (States.{intrinsic.group(1)}) are not supported"
    if not path.startswith("$"):
        return f"{where}: {path!r} is not a path (paths start with '$')"
    # Checked before the steps: "$.a.*" would otherwise read as a key named "*".
    feature = next((name for name, pattern in _FEATURES if re.search(pattern, path)), None)
    if feature is None and _steps(path) is None:
        feature = "syntax"
    if feature is not None:
        return f"{where}: JSONPath {feature} in {path!r} is not supported"
    return None


def read_path(path: str, data: Any, context: Any = None) -> Any:
    """The value at *path* in *data* (``$$`` paths read *context*); States.Runtime if absent."""
    value = _lookup(path, data, context)
    if value is _MISSING:
        raise StatesError(
            "States.Runtime",
            f"Invalid path '{path}': The path references a value that does not exist in the input",
        )
    return value


def _lookup(path: str, data: Any, context: Any) -> Any:
    steps = _steps(path)
    if steps is None:
        raise StatesError("States.Runtime", f"Invalid path '{path}'")
    value = context if path.startswith("$$") else data
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return _MISSING
            value = value[step]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return _MISSING
    return value


def apply_template(template: Any, data: Any, context: Any) -> Any:
    """A payload template (``Parameters``, ``ResultSelector``) filled from *data*: keys ending
    in ``.$`` take the value at their path and lose the suffix."""
    if isinstance(template, dict):
        filled: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                filled[key[:-2]] = read_path(value, data, context)
            else:
                filled[key] = apply_template(value, data, context)
        return filled
    if isinstance(template, list):
        return [apply_template(item, data, context) for item in template]
    return template


def template_problems(template: Any, where: str) -> list[str]:
    """Every ``.$`` path in *template* the local service cannot evaluate."""
    problems: list[str] = []
    if isinstance(template, dict):
        for key, value in template.items():
            if key.endswith(".$"):
                problem = path_problem(value, f"{where}.{key}")
                if problem:
                    problems.append(problem)
            else:
                problems += template_problems(value, f"{where}.{key}")
    elif isinstance(template, list):
        for index, item in enumerate(template):
            problems += template_problems(item, f"{where}[{index}]")
    return problems


def write_result(result_path: str | None, state_input: Any, result: Any) -> Any:
    """The state's input with *result* placed at *result_path* (``None`` discards it)."""
    if result_path is None:
        return state_input
    steps = _steps(result_path)
    if not steps:
        return result  # "$": the result replaces the input
    output = copy.deepcopy(state_input)
    node = output
    for position, step in enumerate(steps):
        last = position == len(steps) - 1
        if not isinstance(node, dict) or isinstance(step, int):
            raise StatesError(
                "States.ResultPathMatchFailure",
                f'Unable to apply ResultPath "{result_path}" to input {json.dumps(state_input)}',
            )
        if last:
            node[step] = result
        else:
            node = node.setdefault(step, {})
    return output


# -- Choice rules ----------------------------------------------------------------------------


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _matches(value: str, pattern: str) -> bool:
    regex = "".join(
        ".*" if part == "*" else re.escape(part[1:] if part.startswith("\\") else part)
        for part in re.findall(r"\\.|\*|[^\\*]+", pattern)
    )
    return re.fullmatch(regex, value, re.DOTALL) is not None


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: bool(a == b),
    "LessThan": lambda a, b: bool(a < b),
    "GreaterThan": lambda a, b: bool(a > b),
    "LessThanEquals": lambda a, b: bool(a <= b),
    "GreaterThanEquals": lambda a, b: bool(a >= b),
}
_KINDS: dict[str, Callable[[Any], Any]] = {
    "String": lambda v: v if isinstance(v, str) else None,
    "Numeric": _number,
    "Timestamp": _timestamp,
}
COMPARISONS: frozenset[str] = frozenset(
    {f"{kind}{order}{path}" for kind in _KINDS for order in _ORDER for path in ("", "Path")}
    | {"BooleanEquals", "BooleanEqualsPath", "StringMatches"}
    | {f"Is{kind}" for kind in ("Null", "Present", "Numeric", "String", "Boolean", "Timestamp")}
)
"""Every comparison operator a Choice rule may use."""

_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsNumeric": lambda v: _number(v) is not None,
    "IsString": lambda v: isinstance(v, str),
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsTimestamp": lambda v: _timestamp(v) is not None,
}


def evaluate_rule(rule: Mapping[str, Any], data: Any, context: Any) -> bool:
    """Whether a Choice rule (a comparison, or ``And``/``Or``/``Not``) holds for *data*."""
    if "And" in rule:
        return all(evaluate_rule(item, data, context) for item in rule["And"])
    if "Or" in rule:
        return any(evaluate_rule(item, data, context) for item in rule["Or"])
    if "Not" in rule:
        return not evaluate_rule(rule["Not"], data, context)
    operator = next(key for key in rule if key in COMPARISONS)
    expected = rule[operator]
    value = _lookup(rule["Variable"], data, context)
    if operator == "IsPresent":
        return bool((value is not _MISSING) == expected)
    if value is _MISSING:
        raise StatesError(
            "States.Runtime",
            f"Invalid path '{rule['Variable']}': The choice state's condition path references "
            "an invalid value.",
        )
    if operator in _TYPE_TESTS:
        return bool(_TYPE_TESTS[operator](value) == expected)
    if operator.endswith("Path"):
        operator = operator[:-4]
        expected = read_path(expected, data, context)
    if operator == "StringMatches":
        return isinstance(value, str) and _matches(value, expected)
    if operator == "BooleanEquals":
        return isinstance(value, bool) and isinstance(expected, bool) and value == expected
    kind = next(k for k in _KINDS if operator.startswith(k))
    left, right = _KINDS[kind](value), _KINDS[kind](expected)
    if left is None or right is None or (kind == "Numeric" and math.isnan(left)):
        return False  # a value of another type never matches
    return _ORDER[operator[len(kind) :]](left, right)
