"""The Worker's settings, declared once: :class:`WorkerConfig`'s fields are the table.

Each field is declared with :func:`~pipeworker._setting.setting`: its type (the field's), its
check and normaliser, its default, its flags and ``PIPEWORKER_*`` variable, how ``--check`` shows
it, and its help. From those rows come :func:`make_config` (``Worker(...)``'s checks), the
command line's options and precedence and ``--check``'s printout (``pipeworker._settings``), and
the settings part of the Worker's docstring (:func:`settings_doc`).

Why a dataclass whose fields carry the rows, rather than a tuple of rows the config is built from:
mypy (strict) sees the config's fields and their types, so ``config.progress_interval`` is a
``float`` to every module that reads it, and :func:`setting` makes mypy check each row's default
and check against its field's type. ``Worker(...)``'s typed keywords are :class:`WorkerSettings`,
a TypedDict (mypy cannot derive one from a dataclass, and the accepted types differ: durations
are seconds or ``timedelta``); ``tests/cli/test_settings_table.py`` pins its names and types
to the table.

To add a setting: add a field here (and its key to :class:`WorkerSettings`). It is then a
``Worker(...)`` keyword, checked, a flag and a variable when it has flags, in ``--check``, in
``--help`` and in the Worker's docstring.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack, cast

from pipeworker._cadence import MIN_INTERVAL, PROGRESS_JITTER
from pipeworker._setting import (
    Prior,
    Setting,
    build,
    check_endpoint_url,
    check_host,
    check_optional_port,
    check_optional_seconds,
    check_region,
    check_seconds,
    check_seconds_or_zero,
    check_whole,
    choice,
    interval,
    parse_port,
    parse_seconds,
    parse_url,
    parse_whole,
    seconds_shown,
    setting,
    table,
)
from pipeworker.exceptions import ConfigurationError
from pipeworker.services.base import RateLimit, Service

if TYPE_CHECKING:
    from pipeworker._pacing import RateLimitSetting

__all__ = [
    "MIN_INTERVAL",
    "PROGRESS_JITTER",
    "WORKER_SETTINGS",
    "WorkerConfig",
    "WorkerSettings",
    "make_config",
    "settings_doc",
]


# -- the checks only this table needs --------------------------------------------------------


def _service(value: Service[Any] | None, name: str, prior: Prior) -> Service[Any]:
    if value is None:
        from pipeworker.services.datapipeline import DataPipeline

        return DataPipeline()
    return value


def _taskrunner_id(value: str | None, name: str, prior: Prior) -> str:
    # Unique per process (and per Worker): the service keys runners by this id in the account.
    if value is None:
        return f"pipeworker-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    return value


@functools.cache
def _default_hostname() -> str:
    return socket.getfqdn() or socket.gethostname() or "localhost"


def _hostname(value: str | None, name: str, prior: Prior) -> str:
    host = _default_hostname() if value is None else value
    # The service checks the identity as a whole (its wire names: taskrunnerId, hostname).
    problems = prior["service"].check_identity(prior["taskrunner_id"], host)
    if problems:
        raise ConfigurationError(f"invalid runner identity: {'; '.join(problems)}")
    return host


def _progress_interval(value: float | timedelta, name: str, prior: Prior) -> float:
    progress = interval(value, name)
    service: Service[Any] = prior["service"]
    if progress * (1 + PROGRESS_JITTER) >= service.lease_seconds:
        raise ConfigurationError(
            f"{name}={progress:g}s (+{PROGRESS_JITTER:.0%} jitter) is not shorter "
            f"than the {service.lease_seconds:g}s {service.name} lease, so running tasks "
            f"would be reassigned; use less than "
            f"{service.lease_seconds / (1 + PROGRESS_JITTER):.0f}s (60s is the usual cadence)"
        )
    return progress


def _heartbeat_interval(value: float | timedelta, name: str, prior: Prior) -> float:
    return interval(value, name)


def _rate_limits(
    value: RateLimitSetting | Literal["off"], name: str, prior: Prior
) -> RateLimitSetting:
    if value is None or value in ("auto", "service"):
        return value
    if value == "off":
        return None
    if isinstance(value, Mapping) and all(
        isinstance(method, str) and isinstance(limit, RateLimit) for method, limit in value.items()
    ):
        return dict(value)
    raise ConfigurationError(
        f"{name} must be 'auto', 'service', None (off) or a mapping of connection methods "
        f"to RateLimit, got {value!r}"
    )


def _show_rate_limits(value: RateLimitSetting, config: WorkerConfig | None) -> str:
    name = "off" if value is None else value if isinstance(value, str) else "custom"
    if config is None:
        return name
    from pipeworker._pacing import resolve_rate_limits

    limits = resolve_rate_limits(value, config.service, config.endpoint_url)
    if limits is None:
        return name if name == "off" else f"{name} (off for this endpoint)"
    budgets = sorted({f"{limit.operation} {limit.rate:g}/s" for limit in limits.values()})
    return f"{name}: {', '.join(budgets)}"


_AUTO: RateLimitSetting | Literal["off"] = "auto"  # typed, so mypy checks the row's types


def _parse_rate_limits(text: str) -> RateLimitSetting | Literal["off"]:
    return cast('RateLimitSetting | Literal["off"]', choice("auto", "service", "off")(text))


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """A worker's settings, normalised and checked once (durations in seconds).

    Built by :func:`make_config` from ``Worker(...)``'s keywords; each field is a row of the
    settings table (see :class:`~pipeworker.worker.Worker` for what each means).
    """

    service: Service[Any] = setting(  # first: the checks after it read its lease and identity rules
        _service,
        default=None,
        help="the service to poll",
        default_text="DataPipeline(); or SWF(domain=...), StepFunctions()",
        env=False,
        show=None,  # --check names it in its header
    )
    region: str | None = setting(
        check_region,
        default=None,
        help="AWS region",
        default_text="the usual AWS settings, AWS_DEFAULT_REGION or ~/.aws/config",
        flags=("--region",),
        metavar="REGION",
        none="(from the AWS settings)",
    )
    endpoint_url: str | None = setting(
        check_endpoint_url,
        default=None,
        help="send requests to this endpoint instead of AWS's, for example the local service's",
        default_text="AWS's",
        flags=("--endpoint-url", "--endpoint"),
        parse=parse_url,
        metavar="URL",
        none="(AWS)",
    )
    taskrunner_id: str = setting(
        _taskrunner_id,
        default=None,
        help="this runner's id, unique in the account",
        default_text="pipeworker-<host>-<pid>-<random>, new for each Worker",
        flags=("--taskrunner-id", "--taskrunnerId"),
        metavar="ID",
    )
    hostname: str = setting(
        _hostname,
        default=None,
        help="the host name reported to the service",
        default_text="this host's FQDN",
        flags=("--hostname",),
        metavar="NAME",
    )
    max_concurrency: int = setting(
        check_whole,
        default=10,
        help="the most tasks run at once, across all worker groups",
        details="A worker only polls while it has a free slot, and keeps one poll in flight per "
        "worker group, so it needs at least one slot per worker group.",
        flags=("--concurrency", "--tasks"),
        parse=parse_whole,
        metavar="N",
    )
    progress_interval: float = setting(
        _progress_interval,
        default=60.0,
        help="seconds between progress reports of a running task",
        details=f"Jittered by ±{PROGRESS_JITTER:.0%}; must stay well inside the service's lease, "
        f"and at least {MIN_INTERVAL:g} s.",
        flags=("--progress-interval",),
        parse=parse_seconds,
        metavar="SECONDS",
        show=seconds_shown,
    )
    heartbeat_interval: float = setting(
        _heartbeat_interval,
        default=900.0,
        help="seconds between runner heartbeats",
        default_text="900s (15 minutes)",
        flags=("--heartbeat-interval",),
        parse=parse_seconds,
        metavar="SECONDS",
        show=seconds_shown,
    )
    shutdown_grace: float = setting(
        check_seconds_or_zero,
        default=25.0,
        help="seconds running tasks get to finish after a stop is asked for",
        details="Then they are cancelled and reported FAILED with ``RunnerShutdown``. With the "
        "hard deadline, Kubernetes' default 30 s termination period.",
        flags=("--shutdown-grace",),
        parse=parse_seconds,
        metavar="SECONDS",
        show=seconds_shown,
    )
    shutdown_hard_deadline: float = setting(
        check_seconds,
        default=5.0,
        help="seconds after the grace for cancelled tasks to end and statuses to land; then the "
        "stop gives up on them and the process exits 1",
        details="Handlers that ignore their cancellation are named and left behind, undelivered "
        "statuses are logged at ERROR, and ``serve()`` returns: a stop always ends within "
        "grace + hard deadline.",
        flags=("--shutdown-hard-deadline",),
        parse=parse_seconds,
        metavar="SECONDS",
        show=seconds_shown,
    )
    http_port: int | None = setting(
        check_optional_port,
        default=None,
        help="serve /healthz, /readyz and /metrics on this port (0: any free one); with --check, "
        "probe a running worker's /healthz on it instead",
        details="The port in use is :attr:`Worker.http_url`.",
        default_text="no endpoint",
        flags=("--http-port",),
        parse=parse_port,
        metavar="PORT",
        none="(no endpoint)",
    )
    http_host: str = setting(
        check_host,
        default="127.0.0.1",
        help="the address the endpoint binds, and --check probes",
        flags=("--http-host",),
        metavar="HOST",
    )
    loop_stall_threshold: float | None = setting(
        check_optional_seconds,
        default=1.0,
        help="seconds the event loop may go without running before a WARNING names the "
        "activity blocking it; None switches the watchdog off",
        show=seconds_shown,
        none="(off)",
    )
    health_max_loop_lag: float = setting(
        check_seconds,
        default=5.0,
        help="/healthz answers 503 while the loop is blocked (or lags) longer than this",
        show=seconds_shown,
    )
    ready_max_call_age: float = setting(
        check_seconds,
        default=300.0,
        help="/readyz answers 503 when no service call succeeded for this long",
        details="The default is two long polls with their read timeout, and more.",
        show=seconds_shown,
    )
    rate_limits: RateLimitSetting = setting(
        _rate_limits,
        default=_AUTO,
        help="pace calls by the account's rate limits: service (the documented budgets), off, "
        "or auto (service on AWS, off for any other endpoint)",
        details='``"service"``: the budgets the service declares (Data Pipeline: PollForTask '
        "2/s, ReportTaskProgress 10/s, SetTaskStatus 10/s, ReportTaskRunnerHeartbeat 1/s, "
        "burst 100), one shared budget per operation; acknowledgements and final statuses go "
        "first, then progress reports by the soonest lease end, then polls. None (or "
        '``"off"``): no pacing. ``"auto"``: ``"service"`` when talking to AWS (no '
        "``endpoint_url``, or one under ``amazonaws.com``), off for any other endpoint such as "
        "the local service. A mapping of connection methods to "
        ":class:`~pipeworker.services.base.RateLimit` gives the budgets explicitly. Throttles "
        "are retried either way.",
        flags=("--rate-limits",),
        parse=_parse_rate_limits,
        metavar="MODE",
        show=_show_rate_limits,
        none="off",
    )


WORKER_SETTINGS: tuple[Setting, ...] = table(WorkerConfig)
"""The Worker's settings, in the config's order."""


class WorkerSettings(TypedDict, total=False):
    """``Worker(...)``'s setting keywords and the types they accept (``service`` aside, which
    the Worker takes by name). Pinned to :data:`WORKER_SETTINGS` by a test."""

    region: str | None
    endpoint_url: str | None
    taskrunner_id: str | None
    hostname: str | None
    max_concurrency: int
    progress_interval: float | timedelta
    heartbeat_interval: float | timedelta
    shutdown_grace: float | timedelta
    shutdown_hard_deadline: float | timedelta
    http_port: int | None
    http_host: str
    loop_stall_threshold: float | timedelta | None
    health_max_loop_lag: float | timedelta
    ready_max_call_age: float | timedelta
    rate_limits: RateLimitSetting | Literal["off"]


def make_config(
    *, service: Service[Any] | None = None, **settings: Unpack[WorkerSettings]
) -> WorkerConfig:
    """Check and normalise ``Worker(...)``'s settings, in the table's order.

    Raises:
        ConfigurationError: a setting is invalid; the message names it.
        TypeError: a keyword that is not a setting (as Python says of any unknown keyword).
    """
    return build(WorkerConfig, WORKER_SETTINGS, {"service": service, **settings})


def settings_doc(indent: str = "    ") -> str:
    """The settings part of the Worker's docstring, from the table (``service`` aside: the
    Worker takes it by name, and documents it beside ``observer``)."""
    lines = []
    for row in WORKER_SETTINGS[1:]:
        text = f"{row.name}: {row.help}; default {row.describe_default()}."
        if row.details:
            text += f" {row.details}"
        if row.flags:
            names = ", ".join(f"``{flag}``" for flag in row.flags)
            text += f" Command line: {names}" + (f", ``{row.env}``." if row.env else ".")
        lines.extend(
            textwrap.wrap(
                text,
                96,
                initial_indent=indent,
                subsequent_indent=indent + "    ",
                break_on_hyphens=False,
                break_long_words=False,
            )
        )
    return "\n".join(lines)
