"""Tokenizer and recursive-descent parser for the Data Pipeline expression language, and periods.

The language is what AWS documents for ``#{...}``: field references (``name``, ``@runtimeField``,
``*secretField``, ``input.directoryPath``), function calls, string literals in single or double
quotes, integer and decimal numbers, ``+ - * / ^``, unary minus and parentheses.

Hostile input is expected (EvaluateExpression accepts 20 MiB): tokenizing is one regular-expression
scan, operator chains (``1+1+1...``) are parsed into flat lists rather than deep trees, and nesting
of parentheses and calls is capped so neither parsing nor evaluation can exhaust the stack.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeworker.local._values import shift_datetime

__all__ = [
    "MAX_NESTING",
    "MAX_TOKENS",
    "Call",
    "Chain",
    "ExpressionError",
    "FieldPath",
    "Neg",
    "Node",
    "Num",
    "Str",
    "add_period",
    "parse_expression",
    "parse_period",
]

MAX_NESTING = 32
"""Deepest nesting of parentheses and function calls in one expression."""

MAX_TOKENS = 100_000
"""Most tokens in one expression; real expressions use a few dozen."""

_SNIPPET = 60


class ExpressionError(ValueError):
    """An expression cannot be parsed or evaluated; the message says what and where."""

    located = False
    """Whether the message already names the expression (and field) it is about."""
    cycle = False
    """Whether the error is a field that refers to itself (reported once, not per level)."""


@dataclass(frozen=True, slots=True)
class Num:
    """A number literal (``int`` or ``float``)."""

    value: int | float
    pos: int


@dataclass(frozen=True, slots=True)
class Str:
    """A string literal."""

    value: str
    pos: int


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A field of the current object, or of objects reached through ref fields: ``a.b.@c``."""

    names: tuple[str, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    """A function call."""

    name: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Neg:
    """Unary minus."""

    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Chain:
    """Operands joined by operators of one precedence level: ``first (op operand)*``.

    Kept flat so that a long chain costs a loop, not a recursion per operator. ``^`` chains
    associate to the right; the others to the left.
    """

    first: Node
    rest: tuple[tuple[str, Node, int], ...]


Node = Num | Str | FieldPath | Call | Neg | Chain
_Operand = Callable[[], Node]

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<num>\d+(?:\.\d*)?|\.\d+)
  | (?P<name>[@*]?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>'[^'\\]*+(?:\\.[^'\\]*+)*+'|"[^"\\]*+(?:\\.[^"\\]*+)*+")
  | (?P<op>[-+*/^(),.}])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\([\\'\"])")


def _snippet(text: str, start: int) -> str:
    end = text.find("}", start)
    end = len(text) if end < 0 else end + 1
    shown = text[start:end]
    return shown if len(shown) <= _SNIPPET else shown[: _SNIPPET - 3] + "..."


def _tokenize(text: str, start: int) -> tuple[list[tuple[str, str, int]], int]:
    """Tokens of the expression that begins at *start* (just after ``#{``), and the end index.

    The end index is just past the closing ``}``.
    """
    tokens: list[tuple[str, str, int]] = []
    pos = start
    length = len(text)
    match = _TOKEN.match
    while pos < length:
        found = match(text, pos)
        if found is None:
            char = text[pos]
            if char in "'\"":
                raise ExpressionError(
                    f"unterminated string starting at position {pos - start} "
                    f"in #{{{_snippet(text, start)}"
                )
            raise ExpressionError(
                f"unexpected character {char!r} at position {pos - start} "
                f"in #{{{_snippet(text, start)}"
            )
        kind = found.lastgroup or ""
        end = found.end()
        if kind == "op" and text[pos] == "}":
            return tokens, end
        if kind != "ws":
            tokens.append((kind, found.group(), pos - start))
            if len(tokens) > MAX_TOKENS:
                raise ExpressionError(
                    f"expression starting at #{{{_snippet(text, start)} is too long "
                    f"(more than {MAX_TOKENS} tokens)"
                )
        pos = end
    raise ExpressionError(f"'#{{' without a closing '}}' in #{{{_snippet(text, start)}")


class _Parser:
    def __init__(self, tokens: list[tuple[str, str, int]], source: str) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.source = source

    def error(self, what: str, pos: int | None = None) -> ExpressionError:
        if pos is None:
            pos = self.tokens[self.index][2] if self.index < len(self.tokens) else -1
        where = "at the end" if pos < 0 else f"at position {pos}"
        return ExpressionError(f"{what} {where} in #{{{self.source}")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def accept(self, value: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] == value:
            self.index += 1
            return True
        return False

    def expect(self, value: str, context: str) -> None:
        if not self.accept(value):
            token = self.peek()
            found = "the end of the expression" if token is None else repr(token[1])
            raise self.error(f"expected {value!r} {context}, found {found}")

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError("empty expression '#{}'")
        node = self.expression()
        token = self.peek()
        if token is not None:
            raise self.error(f"unexpected {token[1]!r}")
        return node

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(
                f"expression nested too deeply (more than {MAX_NESTING} levels of "
                "parentheses or function calls)",
                pos,
            )

    def expression(self) -> Node:
        return self.chain(("+", "-"), self.term)

    def term(self) -> Node:
        return self.chain(("*", "/"), self.unary)

    def power(self) -> Node:
        # Unary minus binds looser than '^' (-2^2 = -4), but an exponent may be negative (2^-1).
        first = self.primary()
        rest: list[tuple[str, Node, int]] = []
        while True:
            token = self.peek()
            if token is None or token != ("op", "^", token[2]):
                break
            self.index += 1
            rest.append(("^", self.signed_primary(), token[2]))
        return first if not rest else Chain(first, tuple(rest))

    def chain(self, ops: tuple[str, ...], operand: _Operand) -> Node:
        first = operand()
        rest: list[tuple[str, Node, int]] = []
        while True:
            token = self.peek()
            if token is None or token[0] != "op" or token[1] not in ops:
                break
            self.index += 1
            rest.append((token[1], operand(), token[2]))
        return first if not rest else Chain(first, tuple(rest))

    def unary(self) -> Node:
        token = self.peek()
        negations = 0
        while self.accept("-"):
            negations += 1
        node = self.power()
        if negations % 2 and token is not None:
            return Neg(node, token[2])
        return node

    def signed_primary(self) -> Node:
        # An exponent: flat, so 2^2^2^... stays a loop; 2^-3^2 reads as 2^((-3)^2).
        token = self.peek()
        negations = 0
        while self.accept("-"):
            negations += 1
        node = self.primary()
        if negations % 2 and token is not None:
            return Neg(node, token[2])
        return node

    def primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise self.error("expected a value")
        kind, value, pos = token
        self.index += 1
        if kind == "num":
            return Num(self.number(value, pos), pos)
        if kind == "str":
            return Str(_ESCAPE.sub(r"\1", value[1:-1]), pos)
        if kind == "name":
            if self.accept("("):
                return self.call(value, pos)
            names = [value]
            while self.accept("."):
                part = self.peek()
                if part is None or part[0] != "name":
                    raise self.error("expected a field name after '.'")
                self.index += 1
                names.append(part[1])
            return FieldPath(tuple(names), pos)
        if kind == "op" and value == "(":
            self.enter(pos)
            node = self.expression()
            self.expect(")", "to close '('")
            self.depth -= 1
            return node
        self.index -= 1
        raise self.error(f"expected a value, found {value!r}")

    def call(self, name: str, pos: int) -> Node:
        self.enter(pos)
        args: list[Node] = []
        if not self.accept(")"):
            args.append(self.expression())
            while self.accept(","):
                args.append(self.expression())
            self.expect(")", f"to close the call to {name}()")
        self.depth -= 1
        return Call(name, tuple(args), pos)

    def number(self, text: str, pos: int) -> int | float:
        if "." in text:
            value = float(text)
            if value == float("inf"):
                raise self.error(f"number {text[:20]}... is too large", pos)
            return value
        if len(text) > 19 or int(text) > 2**63 - 1:
            raise self.error(f"integer {text[:20]} is too large (the limit is 2^63-1)", pos)
        return int(text)


def parse_expression(text: str, start: int) -> tuple[Node, int]:
    """Parse the expression whose body begins at ``text[start]`` (just after ``#{``).

    Args:
        text: The whole template.
        start: Index of the first character after ``#{``.

    Returns:
        The syntax tree and the index just past the closing ``}``.

    Raises:
        ExpressionError: On a syntax error, naming the position within the expression.
    """
    tokens, end = _tokenize(text, start)
    source = _snippet(text, start)
    return _Parser(tokens, source).parse(), end


_PERIOD = re.compile(r"\s*(\d{1,9})\s*(year|month|week|day|hour|minute|second)s?\s*", re.IGNORECASE)
_PERIOD_UNITS = {
    "year": timedelta(days=365),
    "month": timedelta(days=30),
    "week": timedelta(weeks=1),
    "day": timedelta(days=1),
    "hour": timedelta(hours=1),
    "minute": timedelta(minutes=1),
    "second": timedelta(seconds=1),
}


def _period_parts(text: str) -> tuple[int, str]:
    found = _PERIOD.fullmatch(text) if len(text) <= 100 else None
    if found is None or int(found.group(1)) == 0:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ExpressionError(
            f"invalid period {shown!r}: expected a positive whole number and a unit, "
            "such as '15 minutes', '2 hours', '1 day', '1 week', '1 month' or '1 year'"
        )
    return int(found.group(1)), found.group(2).lower()


def parse_period(text: str) -> timedelta:
    """Parse a Data Pipeline period such as ``"15 minutes"`` or ``"2 Hours"``.

    Units are ``years``, ``months``, ``weeks``, ``days``, ``hours``, ``minutes`` (and, for fast
    local tests, ``seconds``), singular or plural, any case. A ``timedelta`` cannot hold calendar
    months, so a month counts as 30 days and a year as 365; use :func:`add_period` to step a
    schedule by calendar months. AWS's own bounds (15 minutes to 3 years) are not enforced here.

    Raises:
        ExpressionError: When *text* is not ``N unit`` with a positive ``N``.
    """
    amount, unit = _period_parts(text)
    try:
        return amount * _PERIOD_UNITS[unit]
    except OverflowError:
        raise ExpressionError(f"period {text.strip()!r} is too long") from None


def add_period(moment: datetime, text: str, times: int = 1) -> datetime:
    """Step *moment* forward by the period *text*, *times* times, using calendar months and years.

    ``add_period(jan31, "1 month")`` is the last day of February, as Joda computes it.

    Raises:
        ExpressionError: When *text* is not a valid period or the result is out of range.
    """
    amount, unit = _period_parts(text)
    try:
        return shift_datetime(moment, unit + "s", amount * times)
    except ValueError as exc:
        raise ExpressionError(f"cannot add {times} x {text.strip()!r}: {exc}") from None
