"""What a setting is: one row of the settings table, and the checks and parsers rows share.

A :class:`Setting` says everything about one setting in one place: its check (which normalises
``Worker(...)``'s value and refuses a bad one naming the setting), its default, its flags and
``PIPEWORKER_*`` variable (which parse text into a value), how ``--check`` shows it, and its help.
The Worker's settings are the fields of :class:`~pipeworker._config.WorkerConfig`, each declared
with :func:`setting`; the command line's own (``--log-level``...) are rows in
``pipeworker._settings``. Everything else (the config, ``make_config``, argparse, the precedence,
``--check``, the Worker's docstring) is generated from them.

Nothing heavy is imported here: ``python -m pipeworker --help`` reads the table.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from pipeworker._cadence import MIN_INTERVAL
from pipeworker.exceptions import ConfigurationError

__all__ = [
    "ENV_PREFIX",
    "Prior",
    "Setting",
    "build",
    "check_endpoint_url",
    "check_host",
    "check_optional_port",
    "check_optional_seconds",
    "check_region",
    "check_seconds",
    "check_seconds_or_zero",
    "check_text",
    "check_whole",
    "choice",
    "env_name",
    "interval",
    "parse_port",
    "parse_seconds",
    "parse_url",
    "parse_whole",
    "seconds_shown",
    "setting",
    "table",
]

ENV_PREFIX = "PIPEWORKER_"
METADATA_KEY = "pipeworker.setting"

Prior = Mapping[str, Any]
"""The settings already checked, by name, for a check that depends on them (the lease)."""

In = TypeVar("In")
Out = TypeVar("Out")


def _str(value: Any, config: Any) -> str:
    return str(value)


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: a row of the table.

    Attributes:
        name: the ``Worker(...)`` keyword and config field (or, for a command-line-only
            setting, its key in the parsed options).
        help: what it means, one sentence: ``--help``, the Worker's docstring and ``--check``.
        check: ``check(value, name, prior)``: the value normalised (seconds as float...), or
            ConfigurationError naming the setting. None for a command-line-only setting.
        default: the value when nothing gives one (before the check).
        default_text: how the default reads in ``--help`` and the docstring; by default
            :attr:`show` of the default.
        details: more for the docstring (not ``--help``).
        flags: the option strings, the preferred one first (aliases follow the Java Task
            Runner); none for a setting only code can give.
        parse: text from a flag or the environment into a value; raises ValueError with a
            message (``'x' is not a whole number``).
        metavar: the placeholder in ``--help``.
        env: the environment variable that can give it, ``PIPEWORKER_<FLAG>`` (see
            :func:`env_name`), or None.
        show: how ``--check`` shows a value: ``show(value, config)``; None when ``--check``
            shows it elsewhere (the service, in its header).
        none: how ``--check`` shows None.
        read: for a command-line-only setting, its value in effect from the config (the
            transport of the service), or None.
    """

    name: str
    help: str
    check: Callable[[Any, str, Prior], Any] | None = None
    default: Any = None
    default_text: str | None = None
    details: str = ""
    flags: tuple[str, ...] = ()
    parse: Callable[[str], Any] = str
    metavar: str = "VALUE"
    env: str | None = None
    show: Callable[[Any, Any], str] | None = _str
    none: str = "(none)"
    read: Callable[[Any], Any] | None = None

    @property
    def is_worker_setting(self) -> bool:
        """Whether it is a ``Worker(...)`` keyword (else the command line's own)."""
        return self.check is not None

    def describe(self, value: Any, config: Any = None) -> str:
        """The value as ``--check`` and the help show it."""
        if value is None:
            return self.none
        return (self.show or _str)(value, config)

    def describe_default(self) -> str:
        """The default as ``--help`` and the docstring say it."""
        if self.default_text is not None:
            return self.default_text
        return self.describe(self.default)


def env_name(flags: tuple[str, ...]) -> str | None:
    """``PIPEWORKER_`` and the preferred flag's name, or None without flags.

    ``--concurrency`` reads ``PIPEWORKER_CONCURRENCY``."""
    return ENV_PREFIX + flags[0].lstrip("-").replace("-", "_").upper() if flags else None


def setting(
    check: Callable[[In, str, Prior], Out],
    *,
    default: In,
    help: str,
    default_text: str | None = None,
    details: str = "",
    flags: tuple[str, ...] = (),
    parse: Callable[[str], In] | None = None,
    metavar: str = "VALUE",
    env: bool = True,
    show: Callable[[Any, Any], str] | None = _str,
    none: str = "(none)",
) -> Out:
    """Declare a config field as a setting: ``max_concurrency: int = setting(check_whole, ...)``.

    For mypy this is the field's default, of the field's type, so the row is checked: the
    default must be what the check accepts, and the check must return the field's type. At run
    time it is a dataclass field without a default (the config is only built by the checks),
    carrying the :class:`Setting`; :func:`table` reads the rows back.
    """
    row = Setting(
        name="",  # the field's name, filled in by table()
        help=help,
        check=check,
        default=default,
        default_text=default_text,
        details=details,
        flags=flags,
        parse=parse or str,
        metavar=metavar,
        env=env_name(flags) if env else None,
        show=show,
        none=none,
    )
    return cast(Out, dataclasses.field(metadata={METADATA_KEY: row}))


def table(config_class: type) -> tuple[Setting, ...]:
    """The rows declared on *config_class*'s fields, named, in field order."""
    rows = []
    for field in dataclasses.fields(config_class):
        row = field.metadata.get(METADATA_KEY)
        if not isinstance(row, Setting):
            raise TypeError(f"{config_class.__name__}.{field.name} is not declared with setting()")
        rows.append(dataclasses.replace(row, name=field.name))
    return tuple(rows)


C = TypeVar("C")


def build(config_class: type[C], rows: tuple[Setting, ...], given: Mapping[str, Any]) -> C:
    """*config_class* from *given* values: each row's check, in order, over its default.

    Raises:
        ConfigurationError: a value is invalid; the message names the setting.
        TypeError: a name that is not a setting (as Python says of any unknown keyword).
    """
    names = [row.name for row in rows]
    for key in given.keys() - set(names):
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TypeError(f"Worker() got an unexpected keyword argument {key!r}{hint}")
    values: dict[str, Any] = {}
    for row in rows:
        if row.check is None:
            raise TypeError(f"{row.name} is not a Worker setting (it has no check)")
        values[row.name] = row.check(given.get(row.name, row.default), row.name, values)
    return config_class(**values)


# -- checks: Worker(...)'s values, normalised; ConfigurationError names the setting ------------


def check_whole(value: int, name: str, prior: Prior) -> int:
    """A whole number, at least 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ConfigurationError(f"{name} must be at least 1, got {value}")
    return value


def check_optional_port(value: int | None, name: str, prior: Prior) -> int | None:
    """None, or a port number 0-65535 (0: any free one)."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535
    ):
        raise ConfigurationError(f"{name} must be a port number 0-65535, got {value!r}")
    return value


def check_host(value: str, name: str, prior: Prior) -> str:
    """A non-empty host name or address."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a host name or address, got {value!r}")
    return value


def check_text(value: str | None, name: str, prior: Prior) -> str | None:
    """None or a string (the service checks the rest)."""
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string or None")
    return value


def _to_seconds(value: float | timedelta, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(
            f"{name} must be a number of seconds or a timedelta, not {type(value).__name__}"
        )
    if seconds < 0 or (seconds == 0 and not allow_zero) or not math.isfinite(seconds):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{name} must be {bound} seconds, got {value!r}")
    return seconds


def check_seconds(value: float | timedelta, name: str, prior: Prior) -> float:
    """A duration above 0: seconds or a timedelta, stored as seconds."""
    return _to_seconds(value, name)


def check_seconds_or_zero(value: float | timedelta, name: str, prior: Prior) -> float:
    """A duration of 0 or more."""
    return _to_seconds(value, name, allow_zero=True)


def check_optional_seconds(
    value: float | timedelta | None, name: str, prior: Prior
) -> float | None:
    """A duration above 0, or None (off)."""
    return None if value is None else _to_seconds(value, name)


def interval(value: float | timedelta, name: str) -> float:
    """A duration no shorter than :data:`~pipeworker._cadence.MIN_INTERVAL`."""
    seconds = _to_seconds(value, name)
    if seconds < MIN_INTERVAL:
        raise ConfigurationError(
            f"{name} must be at least {MIN_INTERVAL:g} seconds, got {value!r}: a task would "
            "be reported (or the runner's heartbeat sent) many times a second"
        )
    return seconds


# botocore's own check, made before the first request instead of when the client is created.
_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?")


def check_region(value: str | None, name: str, prior: Prior) -> str | None:
    """None (the usual AWS settings) or a region name."""
    check_text(value, name, prior)
    if value is not None and not _REGION.fullmatch(value):
        raise ConfigurationError(
            f"{name} {value!r} is not a region name (like 'us-east-1'); leave it unset to use "
            "the usual AWS settings"
        )
    return value


def check_endpoint_url(value: str | None, name: str, prior: Prior) -> str | None:
    """None (AWS) or an http(s) URL with a host."""
    check_text(value, name, prior)
    if value is None:
        return None
    try:
        parts = urllib.parse.urlsplit(value)
        hostname = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise ConfigurationError(
            f"{name} {value!r} is not a valid URL ({exc}); use one like 'http://127.0.0.1:8080'"
        ) from None
    if not hostname or parts.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"{name} {value!r} is not an http:// or https:// URL with a host "
            "(like 'http://127.0.0.1:8080')"
        )
    return value


# -- parsers: text from a flag or PIPEWORKER_* into a value; ValueError says what is wrong ------


def parse_whole(text: str) -> int:
    """A whole number (the check bounds it)."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def parse_port(text: str) -> int:
    """A port number 0-65535."""
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a port number (0-65535)")
    return port


def parse_seconds(text: str) -> float:
    """A number of seconds (the check bounds it)."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None


def choice(*choices: str) -> Callable[[str], str]:
    """One of *choices*, in any case."""

    def convert(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text.lower()

    return convert


def parse_url(text: str) -> str:
    """What urllib cannot parse (an unclosed ``[::1``, a port that is not one); the scheme and
    host are left to the check, so code and command line get the same message."""
    try:
        _ = urllib.parse.urlsplit(text).port
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a valid URL ({exc}); write it like 'http://127.0.0.1:8080' "
            "or 'http://[::1]:8080'"
        ) from None
    return text


def seconds_shown(value: float, config: Any) -> str:
    """``60s``."""
    return f"{value:g}s"
