"""The one door to the expression evaluator and duration parser the service uses.

The evaluator lives in ``_expressions``; this module only adapts it: parameter substitution
(``#{myParam}``) happens before evaluation, and durations are scaled by ``time_scale``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from pipeworker.local._expressions import ExpressionError, evaluate, has_expression, parse_period
from pipeworker.local._values import Lookup

__all__ = [
    "PARAMETER",
    "ExpressionError",
    "evaluate_text",
    "has_expression",
    "period_seconds",
    "substitute_parameters",
]

# Parameter ids start with "my", or "*my" for a masked one (the Developer Guide's custom
# templates), so this cannot catch a function call. A user-defined field ("myX" on an object) has
# the same shape: what is not a parameter is left for the evaluator to read as a field.
PARAMETER = re.compile(r"#\{\s*(\*?my[A-Za-z0-9_]*)\s*\}")


def substitute_parameters(
    text: str, values: Mapping[str, str], blank: frozenset[str] = frozenset()
) -> str:
    """Replace every ``#{myParam}`` whose parameter has a value; leave the rest untouched.

    Parameters in *blank* (optional ones given no value) become the empty string.
    """
    if "#{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        return "" if name in blank else match.group(0)

    return PARAMETER.sub(replace, text)


def evaluate_text(text: str, object_id: str, lookup: Lookup, now: datetime | None = None) -> str:
    """Evaluate every ``#{...}`` of *text* for *object_id*; raises ExpressionError."""
    if "#{" not in text:
        return text
    return evaluate(text, object_id, lookup, now=now)


def period_seconds(text: str, scale: float) -> float:
    """Seconds in a period like ``"10 Minutes"``, multiplied by *scale*; raises ValueError."""
    return parse_period(text).total_seconds() * scale
