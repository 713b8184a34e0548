"""One token bucket: the worker's pacing (:mod:`pipeworker._pacing`) and the local service's rate
limits (:mod:`pipeworker.local._ratelimit`) both count tokens with it.

The clock is the caller's (the event loop's time, or ``time.monotonic()``): the bucket only
counts. A bucket starts full, as the account's budgets do.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Holds up to *burst* tokens, refilled at *rate* per second; a call takes one.

    Args:
        rate: tokens added per second (> 0).
        burst: the most tokens the bucket holds.
    """

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = self.burst
        self.updated: float | None = None  # the first look at the clock adds nothing

    def refill(self, now: float) -> None:
        """Add what *rate* gave since the last look, up to *burst*."""
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, now: float) -> bool:
        """Take a token if one is there at *now*; False means the call must wait (or is
        throttled)."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def seconds_to_token(self) -> float:
        """How long until a whole token is there, at the last look."""
        return max(0.0, 1.0 - self.tokens) / self.rate
