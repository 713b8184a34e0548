"""Settings: the table of options, ``PIPEWORKER_*`` variables, and how they override a Worker.

Each :class:`Setting` can come from a flag or from ``PIPEWORKER_<DEST>``; a flag wins over its
variable, and both win over the values the app's ``Worker(...)`` was built with. A bad value is
refused naming where it came from (``--concurrency: 'x' is not a whole number``).

Like :mod:`pipeworker.cli`, nothing heavy is imported at module level: ``--help`` reads the table.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pipeworker.worker import Worker

__all__ = [
    "ENV_PREFIX",
    "SETTINGS",
    "GivenSettings",
    "Setting",
    "UsageError",
    "apply_settings",
    "resolve_settings",
]

ENV_PREFIX = "PIPEWORKER_"


class UsageError(Exception):
    """A bad option, environment variable or app: exit 2 with this message."""


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a port number (0-65535)")
    return port


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None


def _choice(*choices: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text.lower()

    return convert


def _url(text: str) -> str:
    # Only what urllib cannot parse (an unclosed "[::1", a port that is not one); the scheme
    # and host are checked by Worker itself, with the same message for code and command line.
    import urllib.parse

    try:
        _ = urllib.parse.urlsplit(text).port
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a valid URL ({exc}); write it like 'http://127.0.0.1:8080' "
            "or 'http://[::1]:8080'"
        ) from None
    return text


def _rate_limits(text: str) -> str | None:
    mode = _choice("auto", "service", "off")(text)
    return None if mode == "off" else mode


@dataclass(frozen=True)
class Setting:
    """One setting that can come from a flag or an environment variable.

    Attributes:
        dest: the attribute on the parsed options.
        flags: the option strings, the preferred one first (aliases follow the Java Task Runner).
        convert: turns text into the value; raises ValueError with a message.
        metavar: the placeholder in ``--help``.
        help: the help text.
        worker_param: the ``Worker(...)`` argument it overrides, or None for a CLI-only setting.
    """

    dest: str
    flags: tuple[str, ...]
    convert: Callable[[str], Any]
    metavar: str
    help: str
    worker_param: str | None = None

    @property
    def env(self) -> str:
        """The environment variable for this setting, ``PIPEWORKER_<DEST>``."""
        return ENV_PREFIX + self.dest.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "region",
        ("--region",),
        str,
        "REGION",
        "AWS region (default: the usual AWS settings, AWS_DEFAULT_REGION or ~/.aws/config)",
        "region",
    ),
    Setting(
        "endpoint_url",
        ("--endpoint-url", "--endpoint"),
        _url,
        "URL",
        "send requests to this endpoint instead of AWS's",
        "endpoint_url",
    ),
    Setting(
        "taskrunner_id",
        ("--taskrunner-id", "--taskrunnerId"),
        str,
        "ID",
        "this runner's id, unique in the account (default: pipeworker-<host>-<pid>-<random>)",
        "taskrunner_id",
    ),
    Setting(
        "hostname",
        ("--hostname",),
        str,
        "NAME",
        "the host name reported to the service (default: this host's FQDN)",
        "hostname",
    ),
    Setting(
        "concurrency",
        ("--concurrency", "--tasks"),
        _positive_int,
        "N",
        "the most tasks run at once (Worker default: 10)",
        "max_concurrency",
    ),
    Setting(
        "progress_interval",
        ("--progress-interval",),
        _seconds,
        "SECONDS",
        "seconds between progress reports of a running task (Worker default: 60)",
        "progress_interval",
    ),
    Setting(
        "heartbeat_interval",
        ("--heartbeat-interval",),
        _seconds,
        "SECONDS",
        "seconds between runner heartbeats (Worker default: 900)",
        "heartbeat_interval",
    ),
    Setting(
        "shutdown_grace",
        ("--shutdown-grace",),
        _seconds,
        "SECONDS",
        "seconds running tasks get to finish after a stop is asked for (Worker default: 25)",
        "shutdown_grace",
    ),
    Setting(
        "shutdown_hard_deadline",
        ("--shutdown-hard-deadline",),
        _seconds,
        "SECONDS",
        "seconds after the grace for cancelled tasks to end and statuses to land; then the "
        "stop gives up on them and the process exits 1 (Worker default: 5)",
        "shutdown_hard_deadline",
    ),
    Setting(
        "transport",
        ("--transport",),
        _choice("lean", "aiobotocore"),
        "NAME",
        "how the hot calls are sent: lean (signed JSON over aiohttp) or aiobotocore "
        "(default: the service's own, lean)",
    ),
    Setting(
        "http_port",
        ("--http-port",),
        _port,
        "PORT",
        "serve /healthz, /readyz and /metrics on this port (0: any free one); with --check, "
        "probe a running worker's /healthz on it instead (default: no endpoint)",
        "http_port",
    ),
    Setting(
        "http_host",
        ("--http-host",),
        str,
        "HOST",
        "the address the endpoint binds, and --check probes (default: 127.0.0.1)",
        "http_host",
    ),
    Setting(
        "rate_limits",
        ("--rate-limits",),
        _rate_limits,
        "MODE",
        "pace calls by the account's rate limits: service (the documented budgets), off, or "
        "auto (service on AWS, off for any other endpoint) (Worker default: auto)",
        "rate_limits",
    ),
    Setting(
        "log_level",
        ("--log-level",),
        _choice("debug", "info", "warning", "error", "critical"),
        "LEVEL",
        "debug, info, warning, error or critical (default: info)",
    ),
    Setting(
        "log_format",
        ("--log-format",),
        _choice("text", "json"),
        "FORMAT",
        "text, or json for one object per line (default: text)",
    ),
)


class GivenSettings(Protocol):
    """What :func:`apply_settings` needs of the parsed options."""

    @property
    def settings(self) -> Mapping[str, Any]:
        """The settings that were given, by ``Setting.dest``."""

    @property
    def sources(self) -> Mapping[str, str]:
        """Where each given setting came from (``--concurrency``, ``PIPEWORKER_REGION``)."""


def resolve_settings(
    namespace: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The given settings and their sources: each flag on *namespace*, else its variable.

    Raises:
        UsageError: a value that is not of the setting's kind; the message names its source.
    """
    settings: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        text = getattr(namespace, setting.dest)
        source = setting.flags[0]
        if text is None:
            text = environ.get(setting.env) or None
            source = setting.env
        if text is None:
            continue
        try:
            settings[setting.dest] = setting.convert(text)
        except ValueError as exc:
            raise UsageError(f"{source}: {exc}") from None
        sources[setting.dest] = source
    return settings, sources


def apply_settings(worker: Worker, options: GivenSettings) -> None:
    """Rebuild the worker's frozen config with the given settings over its own values.

    The new config goes through ``Worker``'s own constructor, so a bad value is refused with
    the same message a bad ``Worker(...)`` argument gets, plus where the value came from.

    Raises:
        ConfigurationError: a setting is invalid.
    """
    from pipeworker.exceptions import ConfigurationError
    from pipeworker.worker import Worker

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
    values: dict[str, Any] = {
        "region": config.region,
        "endpoint_url": config.endpoint_url,
        "taskrunner_id": config.taskrunner_id,
        "hostname": config.hostname,
        "max_concurrency": config.max_concurrency,
        "progress_interval": config.progress_interval,
        "heartbeat_interval": config.heartbeat_interval,
        "shutdown_grace": config.shutdown_grace,
        "shutdown_hard_deadline": config.shutdown_hard_deadline,
        "http_port": config.http_port,
        "http_host": config.http_host,
        "loop_stall_threshold": config.loop_stall_threshold,
        "health_max_loop_lag": config.health_max_loop_lag,
        "ready_max_call_age": config.ready_max_call_age,
        "rate_limits": config.rate_limits,
    }
    given: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.worker_param and setting.dest in options.settings:
            values[setting.worker_param] = options.settings[setting.dest]
            given[setting.worker_param] = options.sources[setting.dest]
    if not given:
        return
    try:
        # A plain Worker validates the values; only its config is kept.
        rebuilt = Worker(service=config.service, **values)
    except ConfigurationError as exc:
        message = str(exc)
        # The service's own checks name the wire member (taskrunnerId), Worker names its argument.
        lowered = message.lower()
        origins = [
            source
            for param, source in given.items()
            if param in message or param.replace("_", "") in lowered
        ]
        suffix = f" (from {', '.join(origins)})" if origins else ""
        raise ConfigurationError(message + suffix) from exc
    worker.config = rebuilt.config
