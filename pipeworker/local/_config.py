"""The local service's settings: time rules, rate limits and injected faults, frozen."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from pipeworker.services._dpdescription import DATA_PIPELINE

__all__ = ["LocalConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class LocalConfig:
    """How the local Data Pipeline service behaves; every duration is in seconds.

    The defaults are the real service's rules, so a runner that works against them works against
    AWS. Tests shrink them (``poll_hold=0.5``, ``ack_timeout=0.3``, ``time_scale=0.001``).

    Attributes:
        poll_hold: how long PollForTask waits for a task before answering without one (AWS: 90 s).
        ack_timeout: how long a handed-out task may go without its first ReportTaskProgress before
            it becomes a new attempt for another runner (AWS: 2 minutes).
        default_report_progress_timeout: how long an acknowledged task may go without a progress
            report when its activity sets no ``reportProgressTimeout``. The ReportTaskProgress API
            page says a runner keeps ownership by reporting every 15 minutes unless the pipeline's
            ``reportProgressTimeout`` says otherwise, so the default is 900 s (already in real
            seconds: ``time_scale`` does not apply).
        time_scale: multiplies durations read from definitions (``retryDelay``,
            ``reportProgressTimeout``, ``attemptTimeout``): 0.001 turns "10 Minutes" into 0.6 s.
        rate_limits: enforce the account's token buckets, each service's as its description
            states them (Data Pipeline: PollForTask 2/s, ReportTaskProgress 10/s, SetTaskStatus
            10/s, ReportTaskRunnerHeartbeat 1/s, burst 100; SWF: 200/s and 160/s, burst 2,000;
            Step Functions: 500/s, burst 3,000), a bucket per worker call.
        rate_scale: multiplies every bucket's refill rate (the burst stays), in real
            seconds like the buckets themselves; tests use it to play minutes of the account's
            budget in seconds (``time_scale`` only scales durations read from definitions).
        error_rate: fraction of task-runner calls answered with InternalServiceError (HTTP 500).
        throttle_rate: fraction of task-runner calls answered with ThrottlingException (HTTP 400).
        drop_rate: fraction of task-runner calls whose connection is dropped without an answer.
        drop_after_fraction: of the dropped calls, the fraction dropped after the call took effect
            (the rest are dropped before); 0.5 by default, as a runner cannot tell them apart.
        latency_min: smallest delay added to every task-runner call.
        latency_max: largest delay added to every task-runner call (uniform between the two).
        seed: seed of the fault RNG, for repeatable fault sequences; None draws one at random.
        verify_signatures: check every request's SigV4 signature against *credentials*, as AWS
            does (off by default: anything signed with any key is accepted).
        credentials: secret access key by access key id, for ``verify_signatures``; never
            shown in the config's repr.
        backfill_limit: at activation, create at most this many of a schedule's past runs
            (the latest); None backfills them all, as AWS does (up to 1,000).
        state_path: an SQLite file keeping pipelines, instances, attempts and leases across
            restarts (every answered call is saved first); None keeps state in memory only.
    """

    # Data Pipeline's (SWF's and Step Functions' holds are at most their own 60 s).
    poll_hold: float = DATA_PIPELINE.poll_hold
    ack_timeout: float = DATA_PIPELINE.ack_window or 0.0
    default_report_progress_timeout: float = 900.0
    time_scale: float = 1.0
    rate_limits: bool = False
    rate_scale: float = 1.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    drop_after_fraction: float = 0.5
    latency_min: float = 0.0
    latency_max: float = 0.0
    seed: int | None = None
    verify_signatures: bool = False
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    backfill_limit: int | None = None
    state_path: str | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"LocalConfig.{item.name} must be a finite number >= 0, got {value!r}"
                )
        for name in ("error_rate", "throttle_rate", "drop_rate", "drop_after_fraction"):
            if getattr(self, name) > 1:
                raise ValueError(f"LocalConfig.{name} is a fraction between 0 and 1")
        if self.error_rate + self.throttle_rate + self.drop_rate > 1:
            raise ValueError(
                "LocalConfig: error_rate + throttle_rate + drop_rate must not exceed 1"
            )
        if self.verify_signatures and not self.credentials:
            raise ValueError("LocalConfig.verify_signatures needs credentials={access_key: secret}")
        if self.time_scale == 0:
            raise ValueError("LocalConfig.time_scale must be > 0")
        if self.rate_scale == 0:
            raise ValueError("LocalConfig.rate_scale must be > 0")
        if self.latency_max < self.latency_min:
            raise ValueError(
                f"LocalConfig.latency_max ({self.latency_max}) is below latency_min "
                f"({self.latency_min})"
            )
