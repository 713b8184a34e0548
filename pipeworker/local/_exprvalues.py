"""The values of the Data Pipeline expression language: scalars, lists, and their conversions.

Numbers render as Java does (``1.0E10``), field text reads as a number or a DateTime when the
context wants one, and a list broadcasts through an operation, up to :data:`MAX_LIST` values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from itertools import product

from pipeworker.local._exprparse import ExpressionError
from pipeworker.local._values import format_datetime, parse_datetime

__all__ = [
    "MAX_LIST",
    "FieldText",
    "ObjectRef",
    "Scalar",
    "Value",
    "as_datetime",
    "as_int",
    "as_number",
    "as_str",
    "broadcast",
    "describe",
    "java_double",
    "java_long",
    "render",
]

MAX_LIST = 10_000

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


class FieldText(str):
    """Text that came from a field: a number or a DateTime when the context wants one."""

    __slots__ = ()


class ObjectRef(str):
    """A reference to another object; renders as the object's id."""

    __slots__ = ()


Scalar = str | int | float | datetime
Value = Scalar | list[Scalar]


def render(value: Value) -> str:
    if isinstance(value, list):
        return ",".join(render(item) for item in value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, bool):  # pragma: no cover - no expression yields a bool
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return java_double(value)


def java_double(value: float) -> str:
    """Render a float as Java's ``Double.toString`` does (``0.5``, ``4.0``, ``1.0E7``)."""
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        return repr(value)
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    mantissa = text[0] + "." + (text[1:] or "0")
    return ("-" if sign else "") + f"{mantissa}E{len(text) + exponent - 1}"


def describe(value: Value) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    if isinstance(value, ObjectRef):
        return f"a reference to object {str(value)!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, datetime):
        return f"the DateTime {format_datetime(value)}"
    return f"the number {render(value)}"


def as_number(value: Scalar) -> int | float | None:
    if isinstance(value, datetime):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, FieldText) and not isinstance(value, ObjectRef):
        text = value.strip()
        if len(text) <= 40 and _NUMBER.fullmatch(text):
            if "." in text:
                return float(text)
            number = int(text)
            # Beyond a Java long it is an identifier made of digits, not a number.
            return number if _LONG_MIN <= number <= _LONG_MAX else None
    return None


def java_long(value: int) -> int:
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise ExpressionError("integer overflow: the result does not fit in 64 bits")
    return value


def as_datetime(value: Scalar, what: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and not isinstance(value, ObjectRef) and len(value) <= 64:
        try:
            return parse_datetime(value)
        except ValueError:
            pass
    raise ExpressionError(
        f"{what} must be a DateTime (like 2011-05-24T17:10:00), not {describe(value)}"
    )


def as_int(value: Scalar, what: str) -> int:
    number = as_number(value)
    if number is None and isinstance(value, str) and not isinstance(value, ObjectRef):
        number = as_number(FieldText(value))
    if isinstance(number, int):
        return number
    raise ExpressionError(f"{what} must be an integer, not {describe(value)}")


def as_str(value: Scalar, what: str) -> str:
    if isinstance(value, str):
        return str(value)
    raise ExpressionError(f"{what} must be a string, not {describe(value)}")


def broadcast(args: list[Value]) -> Iterator[tuple[Scalar, ...]] | None:
    """Argument combinations when some argument is a list (multi-valued field), else None."""
    if not any(isinstance(arg, list) for arg in args):
        return None
    pools = [arg if isinstance(arg, list) else [arg] for arg in args]
    size = math.prod(len(pool) for pool in pools)
    if size > MAX_LIST:
        raise ExpressionError(
            f"expression builds a list of {size} values (the limit is {MAX_LIST})"
        )
    return product(*pools)


# ---------------------------------------------------------------- evaluation
