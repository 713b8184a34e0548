"""A worker's settings: the frozen :class:`WorkerConfig`, normalised and checked once.

``Worker(...)`` hands its keyword arguments to :func:`make_config`; durations are accepted as
seconds or ``timedelta`` and stored as seconds, and a bad value raises ConfigurationError naming
the argument. The command line rebuilds a config the same way (``pipeworker._settings``).
"""

from __future__ import annotations

import functools
import math
import os
import re
import secrets
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pipeworker._cadence import MIN_INTERVAL, PROGRESS_JITTER
from pipeworker.exceptions import ConfigurationError
from pipeworker.services.base import RateLimit, Service

if TYPE_CHECKING:
    from pipeworker._pacing import RateLimitSetting

__all__ = ["MIN_INTERVAL", "PROGRESS_JITTER", "WorkerConfig", "make_config"]


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """A worker's settings, normalised and checked once (durations in seconds).

    See :class:`~pipeworker.worker.Worker` for what each setting means.
    """

    service: Service[Any]
    region: str | None
    endpoint_url: str | None
    taskrunner_id: str
    hostname: str
    max_concurrency: int
    progress_interval: float
    heartbeat_interval: float
    shutdown_grace: float
    shutdown_hard_deadline: float = 5.0
    http_port: int | None = None
    http_host: str = "127.0.0.1"
    loop_stall_threshold: float | None = 1.0
    health_max_loop_lag: float = 5.0
    ready_max_call_age: float = 300.0
    rate_limits: RateLimitSetting = "auto"


def make_config(
    *,
    service: Service[Any] | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    taskrunner_id: str | None = None,
    hostname: str | None = None,
    max_concurrency: int = 10,
    progress_interval: float | timedelta = 60.0,
    heartbeat_interval: float | timedelta = 900.0,
    shutdown_grace: float | timedelta = 25.0,
    shutdown_hard_deadline: float | timedelta = 5.0,
    http_port: int | None = None,
    http_host: str = "127.0.0.1",
    loop_stall_threshold: float | timedelta | None = 1.0,
    health_max_loop_lag: float | timedelta = 5.0,
    ready_max_call_age: float | timedelta = 300.0,
    rate_limits: RateLimitSetting | Literal["off"] = "auto",
) -> WorkerConfig:
    """Check and normalise ``Worker(...)``'s settings (see :class:`~pipeworker.worker.Worker`).

    Raises:
        ConfigurationError: a setting is invalid; the message names it.
    """
    if service is None:
        from pipeworker.services.datapipeline import DataPipeline

        service = DataPipeline()
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise ConfigurationError(
            f"max_concurrency must be an int, not {type(max_concurrency).__name__}"
        )
    if max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
    if http_port is not None and (
        isinstance(http_port, bool) or not isinstance(http_port, int) or not 0 <= http_port <= 65535
    ):
        raise ConfigurationError(f"http_port must be a port number 0-65535, got {http_port!r}")
    if not isinstance(http_host, str) or not http_host:
        raise ConfigurationError(f"http_host must be a host name or address, got {http_host!r}")
    for name, text in (("region", region), ("endpoint_url", endpoint_url)):
        if text is not None and not isinstance(text, str):
            raise ConfigurationError(f"{name} must be a string or None")
    _check_region(region)
    _check_endpoint_url(endpoint_url)
    progress = _interval("progress_interval", progress_interval)
    if progress * (1 + PROGRESS_JITTER) >= service.lease_seconds:
        raise ConfigurationError(
            f"progress_interval={progress:g}s (+{PROGRESS_JITTER:.0%} jitter) is not shorter "
            f"than the {service.lease_seconds:g}s {service.name} lease, so running tasks "
            f"would be reassigned; use less than "
            f"{service.lease_seconds / (1 + PROGRESS_JITTER):.0f}s (60s is the usual cadence)"
        )
    runner_id = _default_taskrunner_id() if taskrunner_id is None else taskrunner_id
    host = _default_hostname() if hostname is None else hostname
    problems = service.check_identity(runner_id, host)
    if problems:
        raise ConfigurationError(f"invalid runner identity: {'; '.join(problems)}")
    return WorkerConfig(
        service=service,
        region=region,
        endpoint_url=endpoint_url,
        taskrunner_id=runner_id,
        hostname=host,
        max_concurrency=max_concurrency,
        progress_interval=progress,
        heartbeat_interval=_interval("heartbeat_interval", heartbeat_interval),
        shutdown_grace=_seconds("shutdown_grace", shutdown_grace, allow_zero=True),
        shutdown_hard_deadline=_seconds("shutdown_hard_deadline", shutdown_hard_deadline),
        http_port=http_port,
        http_host=http_host,
        loop_stall_threshold=None
        if loop_stall_threshold is None
        else _seconds("loop_stall_threshold", loop_stall_threshold),
        health_max_loop_lag=_seconds("health_max_loop_lag", health_max_loop_lag),
        ready_max_call_age=_seconds("ready_max_call_age", ready_max_call_age),
        rate_limits=_check_rate_limits(rate_limits),
    )


def _seconds(name: str, value: float | timedelta, *, allow_zero: bool = False) -> float:
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


def _interval(name: str, value: float | timedelta) -> float:
    seconds = _seconds(name, value)
    if seconds < MIN_INTERVAL:
        raise ConfigurationError(
            f"{name} must be at least {MIN_INTERVAL:g} seconds, got {value!r}: a task would "
            "be reported (or the runner's heartbeat sent) many times a second"
        )
    return seconds


# botocore's own check, made before the first request instead of when the client is created.
_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?")


def _check_region(region: str | None) -> None:
    if region is not None and not _REGION.fullmatch(region):
        raise ConfigurationError(
            f"region {region!r} is not a region name (like 'us-east-1'); leave it unset to use "
            "the usual AWS settings"
        )


def _check_rate_limits(setting: object) -> RateLimitSetting:
    if setting is None or setting in ("auto", "service"):
        return setting
    if setting == "off":
        return None
    if isinstance(setting, Mapping) and all(
        isinstance(method, str) and isinstance(limit, RateLimit)
        for method, limit in setting.items()
    ):
        return dict(setting)
    raise ConfigurationError(
        f"rate_limits must be 'auto', 'service', None (off) or a mapping of connection methods "
        f"to RateLimit, got {setting!r}"
    )


def _check_endpoint_url(url: str | None) -> None:
    if url is None:
        return
    try:
        parts = urllib.parse.urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise ConfigurationError(
            f"endpoint_url {url!r} is not a valid URL ({exc}); use one like 'http://127.0.0.1:8080'"
        ) from None
    if not hostname or parts.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"endpoint_url {url!r} is not an http:// or https:// URL with a host "
            "(like 'http://127.0.0.1:8080')"
        )


@functools.cache
def _default_hostname() -> str:
    return socket.getfqdn() or socket.gethostname() or "localhost"


def _default_taskrunner_id() -> str:
    # Unique per process (and per Worker): the service keys runners by this id in the account.
    return f"pipeworker-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
