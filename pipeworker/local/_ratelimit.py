"""The account's rate limits, as token buckets per operation (PROTOCOL.md)."""

from __future__ import annotations

import time

__all__ = ["BURST", "RATES", "SFN_BURST", "SFN_RATES", "RateLimiter", "TokenBucket"]

BURST = 100.0
RATES = {
    "PollForTask": 2.0,
    "ReportTaskProgress": 10.0,
    "SetTaskStatus": 10.0,
    "ReportTaskRunnerHeartbeat": 1.0,
}
"""Refill per second of each task-runner operation's bucket."""
SFN_BURST = 3000.0
SFN_RATES = {
    op: 500.0
    for op in ("GetActivityTask", "SendTaskHeartbeat", "SendTaskSuccess", "SendTaskFailure")
}
"""Step Functions' activity-worker buckets in us-east-1 (the local ARNs' region): 3,000 / 500."""


class TokenBucket:
    """Holds up to *burst* tokens, refilled at *rate* per second; a call takes one."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float = BURST) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self) -> bool:
        """Take a token if one is there; False means the call is throttled."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """One bucket per limited operation; operations without a limit always pass."""

    def __init__(
        self,
        rates: dict[str, float] | None = None,
        burst: float = BURST,
        bursts: dict[str, float] | None = None,
    ) -> None:
        self._rates = dict(RATES if rates is None else rates)
        self._burst = burst
        self._bursts = dict(bursts or {})  # operations whose burst is not *burst*
        self.reset()

    def allow(self, operation: str) -> bool:
        """Whether *operation* may proceed now."""
        bucket = self._buckets.get(operation)
        return bucket is None or bucket.take()

    def reset(self) -> None:
        """Refill every bucket (a test starting fresh)."""
        self._buckets = {
            op: TokenBucket(rate, self._bursts.get(op, self._burst))
            for op, rate in self._rates.items()
        }
