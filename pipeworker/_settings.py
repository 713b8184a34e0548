"""Settings on the command line, generated from the table: options, precedence and ``--check``.

The rows are :data:`~pipeworker._config.WORKER_SETTINGS` (the Worker's, declared on
:class:`~pipeworker._config.WorkerConfig`) and :data:`CLI_SETTINGS` (the command line's own). Each
row with flags becomes an option and can also come from ``PIPEWORKER_<FLAG>``; a flag wins over
its variable, and both win over the values the app's ``Worker(...)`` was built with. A bad value is
refused naming where it came from (``--concurrency: 'x' is not a whole number``, exit 2).

Both command lines (``python -m pipeworker`` and ``pipeworker-taskrunner``) build their settings
options, resolve them and apply them here.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pipeworker._config import WORKER_SETTINGS, WorkerConfig, make_config
from pipeworker._setting import ENV_PREFIX, Setting, choice, env_name

if TYPE_CHECKING:
    from pipeworker.worker import Worker

__all__ = [
    "CLI_SETTINGS",
    "ENV_PREFIX",
    "SETTINGS",
    "GivenSettings",
    "Setting",
    "SettingsParser",
    "UsageError",
    "add_setting_arguments",
    "apply_settings",
    "check_rows",
    "resolve_settings",
]


class UsageError(Exception):
    """A bad option, environment variable or app: exit 2 with this message."""


def _cli_row(name: str, flags: tuple[str, ...], **row: Any) -> Setting:
    return Setting(name=name, flags=flags, env=env_name(flags), **row)


CLI_SETTINGS: tuple[Setting, ...] = (
    _cli_row(
        "transport",
        ("--transport",),
        help="how the hot calls are sent: lean (signed JSON over aiohttp) or aiobotocore",
        default_text="the service's own, lean",
        parse=choice("lean", "aiobotocore"),
        metavar="NAME",
        read=lambda config: getattr(config.service, "transport", None),
    ),
    _cli_row(
        "log_level",
        ("--log-level",),
        help="debug, info, warning, error or critical",
        default="info",
        parse=choice("debug", "info", "warning", "error", "critical"),
        metavar="LEVEL",
    ),
    _cli_row(
        "log_format",
        ("--log-format",),
        help="text, or json for one object per line",
        default="text",
        parse=choice("text", "json"),
        metavar="FORMAT",
    ),
)
"""The command line's own settings: not ``Worker(...)`` keywords."""

_CLI_DEFAULTS = {row.name: row.default for row in CLI_SETTINGS}

ROWS: tuple[Setting, ...] = WORKER_SETTINGS + CLI_SETTINGS
"""Every setting: the Worker's, then the command line's own."""

SETTINGS: tuple[Setting, ...] = tuple(row for row in ROWS if row.flags)
"""The settings that have flags (and so ``PIPEWORKER_*`` variables)."""


class SettingsParser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of printing and exiting 2."""

    def error(self, message: str) -> Any:
        # argparse prints and exits 2 itself; raising lets main() return the code instead.
        raise UsageError(message)


class _Given(argparse.Action):
    # Remembers which of a setting's flags was typed, so an error names that one.
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        vars(namespace).setdefault("_setting_flags", {})[self.dest] = option_string


def add_setting_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    rows: Iterable[Setting] = SETTINGS,
    default_texts: Mapping[str, str] | None = None,
    worker_default: str = "Worker default",
) -> None:
    """An option for each row with flags; the default is None, so the environment can fill it.

    Args:
        parser: the parser or argument group.
        rows: the settings.
        default_texts: how the defaults read where this command line's differ (the task
            runner's concurrency), by setting name.
        worker_default: what a Worker setting's default is called: ``Worker default`` where an
            app's ``Worker(...)`` may have set another value.
    """
    for row in rows:
        if not row.flags:
            continue
        default = (default_texts or {}).get(row.name) or row.describe_default()
        whose = worker_default if row.is_worker_setting else "default"
        parser.add_argument(
            *row.flags,
            dest=row.name,
            metavar=row.metavar,
            action=_Given,
            help=f"{row.help} ({whose}: {default}) [{row.env}]",
        )


def resolve_settings(
    namespace: argparse.Namespace,
    environ: Mapping[str, str],
    rows: Iterable[Setting] = SETTINGS,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The given settings and their sources: each flag on *namespace*, else its variable.

    An empty variable counts as unset.

    Raises:
        UsageError: a value that is not of the setting's kind; the message names its source.
    """
    typed: Mapping[str, str] = getattr(namespace, "_setting_flags", {})
    settings: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for row in rows:
        text = getattr(namespace, row.name, None) if row.flags else None
        source = typed.get(row.name) or (row.flags[0] if row.flags else "")
        if text is None and row.env is not None:
            text, source = environ.get(row.env) or None, row.env
        if text is None:
            continue
        try:
            settings[row.name] = row.parse(text)
        except ValueError as exc:
            raise UsageError(f"{source}: {exc}") from None
        sources[row.name] = source
    return settings, sources


class GivenSettings(Protocol):
    """What :func:`apply_settings` and :func:`check_rows` need of the parsed options."""

    @property
    def settings(self) -> Mapping[str, Any]:
        """The settings that were given, by name."""

    @property
    def sources(self) -> Mapping[str, str]:
        """Where each given setting came from (``--concurrency``, ``PIPEWORKER_REGION``)."""


class ParsedSettings:
    """The log settings of a parsed command line, for its ``Options`` (both command lines)."""

    settings: Mapping[str, Any]

    @property
    def log_level(self) -> str:
        """The log level, the row's default (``info``) unless given."""
        return str(self.settings.get("log_level", _CLI_DEFAULTS["log_level"]))

    @property
    def log_format(self) -> str:
        """The log format, the row's default (``text``) unless given."""
        return str(self.settings.get("log_format", _CLI_DEFAULTS["log_format"]))


def apply_settings(worker: Worker, options: GivenSettings) -> None:
    """Rebuild the worker's frozen config with the given settings over its own values.

    The new config goes through the same checks as ``Worker(...)``'s keywords, so a bad value is
    refused with the same message, plus where the value came from.

    Raises:
        ConfigurationError: a setting is invalid.
    """
    from pipeworker.exceptions import ConfigurationError

    config = worker.config
    transport = options.settings.get("transport")
    if transport is not None and getattr(config.service, "transport", None) != transport:
        with_transport = getattr(config.service, "with_transport", None)
        if with_transport is None:
            raise ConfigurationError(
                f"{options.sources['transport']}: the {config.service.name} service has no "
                "transport switch"
            )
        worker.config = config = dataclasses.replace(config, service=with_transport(transport))
    given = {
        row.name: options.sources[row.name]
        for row in WORKER_SETTINGS
        if row.name in options.settings
    }
    if not given:
        return
    values = {row.name: getattr(config, row.name) for row in WORKER_SETTINGS}
    values.update({name: options.settings[name] for name in given})
    try:
        worker.config = make_config(**values)
    except ConfigurationError as exc:
        message = str(exc)
        # The service's own checks name the wire member (taskrunnerId), the table its setting.
        lowered = message.lower()
        origins = [
            source
            for name, source in given.items()
            if name in message or name.replace("_", "") in lowered
        ]
        suffix = f" (from {', '.join(origins)})" if origins else ""
        raise ConfigurationError(message + suffix) from exc


def check_rows(
    config: WorkerConfig, options: GivenSettings, rows: Iterable[Setting] = ROWS
) -> list[tuple[str, str, str | None]]:
    """``--check``'s settings: ``(name, value as shown, where it came from or None)`` for each
    row (the service aside, which ``--check`` names in its header)."""
    shown = []
    for row in rows:
        if row.show is None:
            continue
        if row.is_worker_setting:
            value = getattr(config, row.name)
        elif row.name in options.settings:
            value = options.settings[row.name]
        else:
            value = row.read(config) if row.read else row.default
        shown.append((row.name, row.describe(value, config), options.sources.get(row.name)))
    return shown
