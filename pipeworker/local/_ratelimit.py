"""The account's rate limits, as a token bucket per operation, from the services' descriptions.

The rates and bursts are the ones the worker paces itself by
(:class:`~pipeworker.services._description.ServiceDescription`); here each wire operation has a
bucket of its own, as on AWS. An operation without a limit always passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from pipeworker._bucket import TokenBucket
from pipeworker.services.base import RateLimit

__all__ = ["RateLimiter"]


class RateLimiter:
    """One bucket per limited operation; operations without a limit always pass.

    Args:
        limits: the buckets' rates and bursts, by wire operation.
        clock: seconds, monotonic (a test may stop it).
    """

    def __init__(
        self, limits: Mapping[str, RateLimit], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = dict(limits)
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self.reset()

    def allow(self, operation: str) -> bool:
        """Whether *operation* may proceed now."""
        bucket = self._buckets.get(operation)
        return bucket is None or bucket.take(self.clock())

    def reset(self) -> None:
        """Refill every bucket (a test starting fresh)."""
        self._buckets = {
            operation: TokenBucket(limit.rate, limit.burst)
            for operation, limit in self.limits.items()
        }
