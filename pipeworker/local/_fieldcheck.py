"""Field formats PutPipelineDefinition checks: dates, periods, counts and enumerations.

AWS refuses a definition whose ``startDateTime`` is ``"yyyy-mm-ddT00:00:00"`` or whose ``period``
is ``"period"`` (the placeholders of templates people forget to fill in), so the local service
does too. Values are checked after parameter substitution, as the service sees them; a value that
still holds an expression (``#{...}``) is only known at run time and is not checked here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from pipeworker.local._evaluation import period_seconds
from pipeworker.local._values import Ref, Value

__all__ = ["PERIOD_FIELDS", "check_formats"]

PERIOD_FIELDS = (
    "period",
    "retryDelay",
    "attemptTimeout",
    "reportProgressTimeout",
    "lateAfterTimeout",
    "terminateAfter",
    "preconditionTimeout",
)
"""Fields whose value is a Data Pipeline period (``"15 minutes"``, ``"1 Day"``)."""

_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_ENUMS: dict[str, tuple[str, ...]] = {
    "scheduleType": ("cron", "timeseries", "ondemand"),
    "failureAndRerunMode": ("cascade", "none"),
    "startAt": ("first_activation_date_time",),
}


def _is_period(text: str) -> bool:
    try:
        period_seconds(text, 1.0)
    except ValueError:
        return False
    return True


def _is_datetime(text: str) -> bool:
    if not _DATETIME.fullmatch(text.strip()):
        return False
    from datetime import datetime

    try:
        datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


def _check_value(key: str, text: str) -> str | None:
    """What is wrong with *text* as the value of *key*, or None."""
    checks: dict[str, tuple[Callable[[str], bool], str]] = {
        "startDateTime": (_is_datetime, "a date and time in UTC like '2026-01-31T00:00:00'"),
        "endDateTime": (_is_datetime, "a date and time in UTC like '2026-01-31T00:00:00'"),
        "occurrences": (lambda t: t.strip().isdigit() and int(t) > 0, "a positive integer"),
    }
    for name in PERIOD_FIELDS:
        checks[name] = (_is_period, "a period such as '15 minutes', '1 hour' or '1 day'")
    if key in checks:
        valid, expected = checks[key]
        return None if valid(text) else f"{key} {text!r} is not {expected}"
    if key in _ENUMS:
        allowed = _ENUMS[key]
        if text.strip().lower() not in allowed:
            shown = ", ".join(a.upper() if key == "startAt" else a for a in allowed)
            return f"{key} {text!r} is not one of {shown}"
    return None


def check_formats(
    kind: Value | None,
    fields: Mapping[str, Sequence[Value]],
    substitute: Callable[[str], str],
) -> list[str]:
    """Problems with the formats of an object's own *fields*, parameters substituted.

    *kind* is the object's (possibly inherited) type; a ``Schedule`` must also say when it starts
    and how often it runs.
    """
    problems: list[str] = []
    for key, values in fields.items():
        for value in values:
            if isinstance(value, Ref):
                continue
            text = substitute(value)
            if "#{" in text:
                continue
            problem = _check_value(key, text)
            if problem is not None:
                problems.append(problem)
    if kind == "Schedule":
        problems.extend(_check_schedule(fields))
    return problems


def _check_schedule(fields: Mapping[str, Sequence[Value]]) -> list[str]:
    problems: list[str] = []
    if "period" not in fields:
        problems.append("A Schedule needs a 'period', such as '1 day'")
    starts = [key for key in ("startDateTime", "startAt") if key in fields]
    if not starts:
        problems.append(
            "A Schedule needs 'startDateTime' or 'startAt': 'FIRST_ACTIVATION_DATE_TIME'"
        )
    elif len(starts) == 2:
        problems.append("A Schedule takes only one of 'startDateTime' and 'startAt'")
    return problems
