"""Fault injection for task-runner calls: errors, throttles, dropped connections, latency."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from pipeworker.local._config import LocalConfig

__all__ = ["Fault", "FaultInjector", "FaultSettings"]


class Fault(enum.Enum):
    """What happens to one call."""

    NONE = "none"
    ERROR = "error"
    THROTTLE = "throttle"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"


@dataclass(slots=True)
class FaultSettings:
    """The current fault rates (fractions of calls) and latency range (seconds)."""

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    latency_min: float = 0.0
    latency_max: float = 0.0
    drop_after_fraction: float = 0.5

    def validate(self) -> None:
        """Raise ValueError when a rate or the latency range is out of bounds."""
        rates = (self.error_rate, self.throttle_rate, self.drop_rate)
        if any(not 0 <= rate <= 1 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates are fractions from 0 to 1 and together must not exceed 1")
        if not 0 <= self.latency_min <= self.latency_max:
            raise ValueError("latency needs 0 <= min <= max")


class FaultInjector:
    """Draws, per call, whether to inject a fault, from a seeded RNG."""

    def __init__(self, config: LocalConfig) -> None:
        self.settings = FaultSettings(
            config.error_rate,
            config.throttle_rate,
            config.drop_rate,
            config.latency_min,
            config.latency_max,
            config.drop_after_fraction,
        )
        self._rng = random.Random(config.seed)

    @property
    def active(self) -> bool:
        """Whether any fault or latency is configured (so the hot path can skip the draw)."""
        s = self.settings
        return bool(s.error_rate or s.throttle_rate or s.drop_rate or s.latency_max)

    def reseed(self, seed: int | None) -> None:
        """Restart the fault sequence from *seed*."""
        self._rng = random.Random(seed)

    def draw(self) -> Fault:
        """The fault for one call."""
        s = self.settings
        roll = self._rng.random()
        if roll < s.error_rate:
            return Fault.ERROR
        roll -= s.error_rate
        if roll < s.throttle_rate:
            return Fault.THROTTLE
        roll -= s.throttle_rate
        if roll < s.drop_rate:
            # Some before the call takes effect, some after: a runner cannot tell which.
            after = self._rng.random() < s.drop_after_fraction
            return Fault.DROP_AFTER if after else Fault.DROP_BEFORE
        return Fault.NONE

    def latency(self) -> float:
        """Seconds to delay this call."""
        s = self.settings
        if s.latency_max <= 0:
            return 0.0
        if s.latency_min == s.latency_max:
            return s.latency_min
        return self._rng.uniform(s.latency_min, s.latency_max)
