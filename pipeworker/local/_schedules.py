"""Schedules that fire: cron and time-series runs, on a clock that ``time_scale`` speeds up.

A pipeline whose ``Default`` has ``scheduleType`` cron or timeseries (timeseries when unset, as on
AWS) and a ``Schedule`` runs once per ``period``, from ``startDateTime`` or, with ``startAt:
FIRST_ACTIVATION_DATE_TIME``, from its activation, until ``endDateTime`` or ``occurrences`` runs.
A cron run starts at the beginning of its period, a timeseries run at its end. Runs whose time has
passed are created at once (backfill, as AWS does; ``LocalConfig.backfill_limit`` keeps only the
latest ones). On-demand pipelines, and pipelines without a schedule, run once per activation.

Time is virtual: at activation the virtual clock reads the activation time and then advances
``1 / time_scale`` times faster than the real one, so a 15-minute period runs every 9 s at
``time_scale=0.01``. Instances carry the virtual (logical) times, as AWS's would.

The pipeline stays SCHEDULED while runs are to come; once the schedule has run out and its
last run is over, it is FINISHED. Deactivation stops the clock; activation resumes it from the
last run made (the runs missed meanwhile are backfilled).

Where objects refer to different schedules, the pipeline follows ``Default``'s (else the first an
activity names); every object runs once per run of that schedule.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pipeworker.local._config import LocalConfig
from pipeworker.local._definition import DEFAULT_ID, is_activity
from pipeworker.local._evaluation import ExpressionError, period_seconds, substitute_parameters
from pipeworker.local._exprparse import add_period
from pipeworker.local._state import Pipeline
from pipeworker.local._values import Ref, parse_datetime

__all__ = ["Cadence", "ScheduleClock", "cadence_of"]

log = logging.getLogger("pipeworker.local")

MAX_BACKFILL = 1000
"""At most this many past runs are backfilled at one activation (the latest ones): a 15-minute
schedule that started years ago would otherwise make a laptop service build 10^5 runs."""


@dataclass(frozen=True, slots=True)
class Cadence:
    """When a scheduled pipeline runs (logical, unscaled times)."""

    start: datetime | None  # None: the first activation
    period: str
    end: datetime | None
    occurrences: int | None
    timeseries: bool


def _text(pipeline: Pipeline, object_id: str, key: str) -> str | None:
    values = pipeline.resolved.get(object_id, {}).get(key)
    if not values or not isinstance(values[0], str):
        return None
    return substitute_parameters(values[0], pipeline.parameters, pipeline.blank_parameters)


def cadence_of(pipeline: Pipeline) -> Cadence | None:
    """The pipeline's schedule, or None when it runs once per activation."""
    kind = (_text(pipeline, DEFAULT_ID, "scheduleType") or "timeseries").strip().lower()
    if kind == "ondemand":
        return None
    schedule = _schedule_id(pipeline)
    if schedule is None:
        return None
    period = _text(pipeline, schedule, "period")
    if period is None:
        return None
    start_text = _text(pipeline, schedule, "startDateTime")
    end_text = _text(pipeline, schedule, "endDateTime")
    occurrences = _text(pipeline, schedule, "occurrences")
    try:
        period_seconds(period, 1.0)
        start = parse_datetime(start_text) if start_text else None
        end = parse_datetime(end_text) if end_text else None
    except ValueError:
        return None  # refused at put; an expression here is beyond a local emulation
    count = int(occurrences) if occurrences and occurrences.strip().isdigit() else None
    return Cadence(start, period, end, count, kind == "timeseries")


def _schedule_id(pipeline: Pipeline) -> str | None:
    candidates = [DEFAULT_ID] + [
        oid for oid, fields in pipeline.resolved.items() if is_activity(fields)
    ]
    for oid in candidates:
        value = pipeline.resolved.get(oid, {}).get("schedule", [None])[0]
        if isinstance(value, Ref) and value.id in pipeline.resolved:
            return value.id
    return None


@dataclass(eq=False)
class _Ticking:
    pipeline: Pipeline
    cadence: Cadence
    first: datetime  # logical start of run 0
    made: int  # runs created so far
    real_zero: float  # loop time at (re)activation
    virtual_zero: datetime  # virtual time at (re)activation
    timer: asyncio.TimerHandle | None = None


class ScheduleClock:
    """Creates each scheduled run when its time comes; one per service."""

    def __init__(self, config: LocalConfig, start_run: Callable[[Pipeline, datetime], None]):
        self.config = config
        self._start_run = start_run
        self._ticking: dict[str, _Ticking] = {}

    def activate(self, pipeline: Pipeline, cadence: Cadence, now: datetime) -> None:
        """Start (or resume) *pipeline*'s schedule at virtual time *now*."""
        previous = self._ticking.pop(pipeline.id, None)
        if previous is not None and previous.timer is not None:
            previous.timer.cancel()
        first = cadence.start or (previous.first if previous else now)
        made = previous.made if previous else 0
        if previous is None and pipeline.schedule_first is not None:
            # Resumed after the service restarted with its kept state.
            first, made = pipeline.schedule_first, pipeline.schedule_made
        loop = asyncio.get_running_loop()
        ticking = _Ticking(pipeline, cadence, first, made, loop.time(), now)
        limit = self.config.backfill_limit
        limit = MAX_BACKFILL if limit is None else min(limit, MAX_BACKFILL)
        # Skip the oldest past runs, keeping the latest *limit* of them.
        due = self._due_count(ticking, now)
        ticking.made = max(made, due - limit)
        self._ticking[pipeline.id] = ticking
        pipeline.schedule_active = True
        pipeline.schedule_first, pipeline.schedule_made = ticking.first, ticking.made
        self._tick(ticking)

    def stop(self, pipeline: Pipeline) -> None:
        """Deactivation or deletion: no more runs until the next activation."""
        ticking = self._ticking.get(pipeline.id)
        if ticking is not None and ticking.timer is not None:
            ticking.timer.cancel()
            ticking.timer = None

    def forget(self, pipeline: Pipeline) -> None:
        """A new definition was activated: its schedule starts afresh."""
        self.stop(pipeline)
        self._ticking.pop(pipeline.id, None)
        pipeline.schedule_first, pipeline.schedule_made = None, 0

    def close(self) -> None:
        """The service stops: stop every clock."""
        for ticking in self._ticking.values():
            if ticking.timer is not None:
                ticking.timer.cancel()
        self._ticking.clear()

    def _logical(self, ticking: _Ticking, index: int) -> datetime:
        return add_period(ticking.first, ticking.cadence.period, index)

    def _exhausted(self, ticking: _Ticking, index: int) -> bool:
        cadence = ticking.cadence
        if cadence.occurrences is not None and index >= cadence.occurrences:
            return True
        return cadence.end is not None and self._logical(ticking, index) >= cadence.end

    def _fires_at(self, ticking: _Ticking, index: int) -> datetime:
        logical = self._logical(ticking, index)
        if ticking.cadence.timeseries:
            return add_period(logical, ticking.cadence.period)
        return logical

    def _due_count(self, ticking: _Ticking, now: datetime) -> int:
        """How many runs are due at virtual time *now* (made or not)."""
        cadence = ticking.cadence
        index = ticking.made
        if not any(unit in cadence.period.lower() for unit in ("month", "year")):
            # Fixed-length periods: jump close to the answer instead of stepping years of
            # 15-minute periods one by one.
            step = period_seconds(cadence.period, 1.0)
            lead = step if cadence.timeseries else 0.0
            passed = (now - ticking.first).total_seconds() - lead
            jump = int(passed // step) - 1
            if cadence.occurrences is not None:
                jump = min(jump, cadence.occurrences)
            if cadence.end is not None:
                jump = min(jump, math.ceil((cadence.end - ticking.first).total_seconds() / step))
            index = max(index, jump)
        while not self._exhausted(ticking, index) and self._fires_at(ticking, index) <= now:
            index += 1
        return index

    def _tick(self, ticking: _Ticking) -> None:
        ticking.timer = None
        if self._ticking.get(ticking.pipeline.id) is not ticking:
            return
        loop = asyncio.get_running_loop()
        scale = self.config.time_scale
        while True:
            if self._exhausted(ticking, ticking.made):
                ticking.pipeline.schedule_active = False
                if not ticking.pipeline.open_activities and ticking.pipeline.state == "SCHEDULED":
                    ticking.pipeline.state = "FINISHED"
                return
            ahead = (self._fires_at(ticking, ticking.made) - ticking.virtual_zero).total_seconds()
            when = ticking.real_zero + max(ahead, 0.0) * scale
            if when > loop.time():
                ticking.timer = loop.call_at(when, self._tick, ticking)
                return
            logical = self._logical(ticking, ticking.made)
            ticking.made += 1
            ticking.pipeline.schedule_first = ticking.first
            ticking.pipeline.schedule_made = ticking.made
            try:
                self._start_run(ticking.pipeline, logical)
            except (ExpressionError, ValueError, KeyError) as exc:  # pragma: no cover - defensive
                pipeline_id = ticking.pipeline.id
                log.error("pipeline %s: run at %s not started: %s", pipeline_id, logical, exc)
