"""The Data Pipeline expression language: ``#{...}`` substitution, functions and periods.

Semantics follow the AWS Data Pipeline developer guide (Expressions; Mathematical, String and
Date and Time Functions). Where the guide is silent, the choices are:

- A field value is text. It acts as a number in ``+ - * / ^`` when it looks like one (``"5"``),
  as a DateTime where a function wants one (``"2011-05-24T17:10:00"``), and it keeps its exact
  text when rendered (``"007"`` stays ``"007"``). ``+`` concatenates as soon as either side is a
  quoted string literal or a non-numeric text, as the guide's String Functions page says.
- A field's own ``#{...}`` are evaluated first, in the context of the object that holds it, so
  ``#{input.directoryPath}`` sees the input's evaluated path. A field reaching itself is an error.
- A field with several values is a list; operators and functions map over lists, and a list renders
  as its items joined by commas. ``id``/``@id`` default to the object's id; ``name`` falls back to
  ``*name`` (encrypted fields) when only that exists.
- Integer arithmetic is Java's ``long`` (division truncates toward zero); leaving its range,
  dividing by zero and float overflow are errors rather than silent wrap-around or infinities.
- A DateTime result renders with :func:`format_datetime` (UTC, ``YYYY-MM-DDTHH:MM:SS``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from pipeworker.local._exprparse import (
    Call,
    Chain,
    ExpressionError,
    FieldPath,
    Neg,
    Node,
    Num,
    Str,
    add_period,
    parse_expression,
    parse_period,
)
from pipeworker.local._exprvalues import (
    MAX_LIST,
    FieldText,
    ObjectRef,
    Scalar,
    Value,
    as_datetime,
    as_int,
    as_number,
    as_str,
    broadcast,
    describe,
    java_long,
    render,
)
from pipeworker.local._values import (
    Lookup,
    Ref,
    format_joda,
    in_time_zone,
    shift_datetime,
)

__all__ = [
    "FUNCTIONS",
    "ExpressionError",
    "add_period",
    "evaluate",
    "has_expression",
    "parse_period",
]

MAX_DEPTH = 120
"""Budget for nested evaluation (calls, operators and field references that hold expressions)."""

MAX_EXPRESSIONS = 100_000
"""Most ``#{...}`` evaluated by one call, counting those inside referenced fields."""

MAX_OUTPUT = 32 * 1024 * 1024
"""Most characters one call may produce, counting intermediate strings."""
"""Largest list an expression may build by mapping over multi-valued fields."""

_FIELD_COST = 8


class _Context:
    def __init__(self, lookup: Lookup, now: datetime) -> None:
        self.lookup = lookup
        self.now = now
        self.depth = 0
        self.expressions = 0
        self.output = 0
        self.memo: dict[tuple[str, str], Value] = {}
        self.active: list[tuple[str, str]] = []

    def charge(self, size: int) -> None:
        self.output += size
        if self.output > MAX_OUTPUT:
            raise ExpressionError(
                f"expression produces too much text (more than {MAX_OUTPUT} characters)"
            )

    def enter(self, cost: int = 1) -> None:
        self.depth += cost
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                "expression nested too deeply (counting the fields it refers to); "
                "simplify it or the fields it uses"
            )


def has_expression(text: str) -> bool:
    """Whether *text* contains a ``#{...}`` expression to evaluate."""
    return "#{" in text


def evaluate(text: str, object_id: str, lookup: Lookup, *, now: datetime | None = None) -> str:
    """Substitute every ``#{...}`` in *text*, evaluated in the context of object *object_id*.

    Args:
        text: A field value or an EvaluateExpression string.
        object_id: The object whose fields unqualified names refer to.
        lookup: Finds an object's inheritance-resolved fields (runtime fields included).
        now: The current time for functions that need it; defaults to ``datetime.now(UTC)``.

    Returns:
        *text* with each expression replaced by its rendered value.

    Raises:
        ExpressionError: On a syntax error, an unknown field, object or function, or a wrong
            argument; the message names the problem and where it is.
    """
    ctx = _Context(lookup, now if now is not None else datetime.now(UTC))
    if lookup(object_id) is None:
        raise ExpressionError(f"object {object_id!r} does not exist")
    return _render_template(ctx, text, object_id)


def _render_template(ctx: _Context, text: str, object_id: str) -> str:
    if "#{" not in text:
        return text
    parts: list[str] = []
    pos = 0
    while True:
        start = text.find("#{", pos)
        if start < 0:
            parts.append(text[pos:])
            break
        parts.append(text[pos:start])
        ctx.expressions += 1
        if ctx.expressions > MAX_EXPRESSIONS:
            raise ExpressionError(f"too many expressions (more than {MAX_EXPRESSIONS})")
        node, pos = parse_expression(text, start + 2)
        try:
            rendered = render(_eval(ctx, node, object_id))
        except ExpressionError as exc:
            if exc.located:
                raise
            raise _located(f"{exc} in {_snippet(text[start:pos])}") from None
        ctx.charge(len(rendered))
        parts.append(rendered)
    return "".join(parts)


# ---------------------------------------------------------------- rendering and coercion


def _eval(ctx: _Context, node: Node, object_id: str) -> Value:
    if isinstance(node, Num | Str):
        return node.value
    if isinstance(node, FieldPath):
        return _field_path(ctx, node, object_id)
    ctx.enter()
    try:
        if isinstance(node, Call):
            args = [_eval(ctx, arg, object_id) for arg in node.args]
            return _call(ctx, node, args)
        if isinstance(node, Neg):
            return _apply("-", 0, _eval(ctx, node.operand, object_id), ctx, node.pos)
        return _chain(ctx, node, object_id)
    finally:
        ctx.depth -= 1


def _chain(ctx: _Context, node: Chain, object_id: str) -> Value:
    if node.rest[0][0] == "^":
        # Right-associative: 2^3^2 = 2^(3^2).
        operands = [_eval(ctx, node.first, object_id)]
        operands += [_eval(ctx, operand, object_id) for _, operand, _ in node.rest]
        result = operands.pop()
        for (_, _, pos), left in zip(reversed(node.rest), reversed(operands), strict=True):
            result = _apply("^", left, result, ctx, pos)
        return result
    result = _eval(ctx, node.first, object_id)
    for op, operand, pos in node.rest:
        result = _apply(op, result, _eval(ctx, operand, object_id), ctx, pos)
    return result


def _apply(op: str, left: Value, right: Value, ctx: _Context, pos: int) -> Value:
    combos = broadcast([left, right])
    if combos is not None:
        return [_scalar_op(op, a, b, ctx, pos) for a, b in combos]
    assert not isinstance(left, list)
    assert not isinstance(right, list)
    return _scalar_op(op, left, right, ctx, pos)


def _scalar_op(op: str, left: Scalar, right: Scalar, ctx: _Context, pos: int) -> Scalar:
    a, b = as_number(left), as_number(right)
    plain_text = any(type(side) is str for side in (left, right))
    if op == "+" and (plain_text or a is None or b is None):
        if isinstance(left, str) or isinstance(right, str):
            ctx.charge(len(render(left)) + len(render(right)))
            return render(left) + render(right)
        raise ExpressionError(
            f"cannot add {describe(left)} and {describe(right)} at position {pos}; "
            "use plusDays(), plusHours()... to move a DateTime"
        )
    if a is None or b is None:
        bad = left if a is None else right
        raise ExpressionError(f"'{op}' at position {pos} needs numbers, not {describe(bad)}")
    return _arithmetic(op, a, b, pos)


def _arithmetic(op: str, a: int | float, b: int | float, pos: int) -> int | float:
    both_int = isinstance(a, int) and isinstance(b, int)
    if op == "/" and b == 0:
        raise ExpressionError(f"division by zero at position {pos}")
    try:
        if op == "^":
            result: int | float = math.pow(a, b)
        elif op == "+":
            result = a + b
        elif op == "-":
            result = a - b
        elif op == "*":
            result = a * b
        elif both_int:
            assert isinstance(a, int)
            assert isinstance(b, int)
            quotient = abs(a) // abs(b)
            result = quotient if (a < 0) == (b < 0) else -quotient
        else:
            result = a / b
    except (OverflowError, ValueError) as exc:
        raise ExpressionError(f"'{op}' at position {pos} has no finite result") from exc
    if isinstance(result, float):
        if not math.isfinite(result):
            raise ExpressionError(f"'{op}' at position {pos} has no finite result")
        return result
    return java_long(result)


def _field_path(ctx: _Context, node: FieldPath, object_id: str) -> Value:
    current: Value = ObjectRef(object_id)
    for index, name in enumerate(node.names):
        if index and not _all_refs(current):
            prefix = ".".join(node.names[:index])
            raise ExpressionError(
                f"{prefix!r} is {describe(current)}, not a reference to an object, "
                f"so it has no field {name!r} (in {'.'.join(node.names)!r})"
            )
        if isinstance(current, list):
            values: list[Scalar] = []
            for ref in current:
                got = _field(ctx, str(ref), name)
                values.extend(got if isinstance(got, list) else [got])
            if len(values) > MAX_LIST:
                raise ExpressionError(f"{'.'.join(node.names)!r} has too many values")
            current = values
        else:
            current = _field(ctx, str(current), name)
    return current


def _all_refs(value: Value) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, ObjectRef) for item in value)
    return isinstance(value, ObjectRef)


def _field(ctx: _Context, object_id: str, name: str) -> Value:
    key = (object_id, name)
    if key in ctx.memo:
        return ctx.memo[key]
    fields = ctx.lookup(object_id)
    if fields is None:
        raise ExpressionError(f"object {object_id!r} does not exist")
    raw = fields.get(name)
    if raw is None and not name.startswith(("@", "*")):
        raw = fields.get("*" + name)
    if raw is None:
        if name in ("id", "@id"):
            return FieldText(object_id)
        raise ExpressionError(f"object {object_id!r} has no field {name!r}")
    if key in ctx.active:
        cycle = " -> ".join(f"{obj}.{field}" for obj, field in [*ctx.active, key])
        error = _located(f"field {name!r} of object {object_id!r} refers to itself: {cycle}")
        error.cycle = True
        raise error
    ctx.active.append(key)
    ctx.enter(_FIELD_COST)
    try:
        items: list[Scalar] = []
        for item in raw:
            if isinstance(item, Ref):
                items.append(ObjectRef(item.id))
            else:
                items.append(FieldText(_render_nested(ctx, item, object_id, name)))
    finally:
        ctx.depth -= _FIELD_COST
        ctx.active.pop()
    value: Value = items[0] if len(items) == 1 else items
    ctx.memo[key] = value
    return value


def _render_nested(ctx: _Context, text: str, object_id: str, name: str) -> str:
    try:
        return _render_template(ctx, text, object_id)
    except ExpressionError as exc:
        if exc.cycle:
            raise
        raise _located(f"in field {name!r} of object {object_id!r}: {exc}") from None


def _located(message: str) -> ExpressionError:
    error = ExpressionError(message)
    error.located = True
    return error


def _snippet(expression: str) -> str:
    return expression if len(expression) <= 60 else expression[:57] + "..."


def _call(ctx: _Context, node: Call, args: list[Value]) -> Value:
    spec = FUNCTIONS.get(node.name)
    if spec is None:
        hint = _suggest(node.name)
        raise ExpressionError(
            f"unknown function {node.name}() at position {node.pos}"
            + (f"; did you mean {hint}()?" if hint else "")
        )
    kinds, impl = spec
    if len(args) != len(kinds):
        raise ExpressionError(
            f"{node.name}() takes {len(kinds)} argument{'s' if len(kinds) != 1 else ''} "
            f"({', '.join(_KIND_NAMES[k] for k in kinds)}), got {len(args)}, at position {node.pos}"
        )
    combos = broadcast(args)
    if combos is None:
        return _call_scalar(ctx, node, kinds, impl, args)  # type: ignore[arg-type]
    return [_call_scalar(ctx, node, kinds, impl, list(combo)) for combo in combos]


def _call_scalar(ctx: _Context, node: Call, kinds: str, impl: _Impl, args: list[Scalar]) -> Scalar:
    converted: list[object] = []
    for index, (kind, arg) in enumerate(zip(kinds, args, strict=True), start=1):
        what = f"argument {index} of {node.name}() at position {node.pos}"
        if kind == "d":
            converted.append(as_datetime(arg, what))
        elif kind == "i":
            converted.append(as_int(arg, what))
        else:
            converted.append(as_str(arg, what))
    try:
        result = impl(*converted)
    except ExpressionError as exc:
        raise ExpressionError(f"{node.name}() at position {node.pos}: {exc}") from None
    except (ValueError, OverflowError) as exc:
        raise ExpressionError(f"{node.name}() at position {node.pos}: {exc}") from None
    if isinstance(result, str):
        ctx.charge(len(result))
    return result


def _suggest(name: str) -> str | None:
    lowered = name.lower()
    for known in FUNCTIONS:
        if known.lower() == lowered:
            return known
    return None


# ---------------------------------------------------------------- functions


def _sunday(moment: datetime) -> datetime:
    # isoweekday: Monday 1 .. Sunday 7; the guide's example keeps the time of day.
    return shift_datetime(moment, "days", -(moment.isoweekday() % 7))


def _shifter(unit: str, sign: int) -> Callable[[datetime, int], datetime]:
    return lambda moment, amount: shift_datetime(moment, unit, sign * amount)


def _make(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    try:
        return datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError as exc:
        raise ExpressionError(f"no such date or time: {exc}") from None


_Impl = Callable[..., Scalar]
_KIND_NAMES = {"d": "DateTime", "i": "int", "s": "String"}

FUNCTIONS: dict[str, tuple[str, _Impl]] = {
    # name: (argument kinds: d DateTime, i int, s String; implementation)
    "day": ("d", lambda m: m.day),
    "dayOfYear": ("d", lambda m: m.timetuple().tm_yday),
    "firstOfMonth": ("d", lambda m: m.replace(day=1)),
    "format": ("ds", format_joda),
    "hour": ("d", lambda m: m.hour),
    "inTimeZone": ("ds", in_time_zone),
    "makeDate": ("iii", _make),
    "makeDateTime": ("iiiii", _make),
    "midnight": ("d", lambda m: m.replace(hour=0, minute=0, second=0, microsecond=0)),
    "minute": ("d", lambda m: m.minute),
    "month": ("d", lambda m: m.month),
    "sunday": ("d", _sunday),
    "year": ("d", lambda m: m.year),
    "yesterday": ("d", lambda m: shift_datetime(m, "days", -1)),
}
"""The functions expressions may call: AWS's documented Date and Time Functions, plus
``plusSeconds``/``minusSeconds``."""

for _unit in ("Years", "Months", "Weeks", "Days", "Hours", "Minutes", "Seconds"):
    FUNCTIONS["plus" + _unit] = ("di", _shifter(_unit.lower(), 1))
    FUNCTIONS["minus" + _unit] = ("di", _shifter(_unit.lower(), -1))
