"""What a polling-worker service is, in numbers and names: one frozen description per service.

The worker (its wire, error table, pacing, lease and poll-stop policy) and the local service (its
dispatcher, long polls, token buckets and size checks) both read a service's
:class:`ServiceDescription`; nothing in it is stated anywhere else. Every number is checked
against ``shared/PROTOCOL.md``.

This module and the modules holding each service's instance import neither aiobotocore nor
aiohttp: the local service and light tools read them without loading a client stack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pipeworker.services.base import RateLimit

__all__ = ["ErrorRules", "ServiceDescription"]


@dataclass(frozen=True, slots=True)
class ErrorRules:
    """What a service's error codes mean beyond the shared table.

    Attributes:
        lease_lost: codes that mean the task is not this runner's any more.
        lease_operations: the operations about a held task, where those codes mean a lost
            lease; elsewhere (a poll, which holds no lease) they are rejections.
        throttling: the service's own codes that mean "slow down" (Step Functions'
            ``ActivityWorkerLimitExceeded``), retried with backoff like the shared ones.
    """

    lease_lost: frozenset[str]
    lease_operations: frozenset[str]
    throttling: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ServiceDescription:
    """One polling-worker service, as both ends of its wire see it.

    Attributes:
        name: botocore's service (and model) name, also the worker's ``Service.name``.
        title: the service's name in messages (``"Step Functions"``).
        queue_name: what a queue is called in this service (``"worker group"``).
        signing_name: the SigV4 signing name (Step Functions: ``states``).
        target_prefix: the ``X-Amz-Target`` prefix (``DataPipeline``).
        json_version: ``"1.0"`` or ``"1.1"`` (``application/x-amz-json-<version>``).
        poll_operation: the long poll.
        worker_operations: the calls a task runner makes (the poll and the calls about a held
            task); the local service applies faults and rate limits to these.
        poll_hold: how long the service holds a poll that finds no task, seconds.
        poll_read_timeout: the worker's default read timeout for polls, clearly above the hold.
        min_poll_read_timeout: the least read timeout the worker accepts for polls; a value
            equal to the hold means "strictly above it".
        ack_window: how long a handed-out task may go unacknowledged before it is offered
            again (Data Pipeline's two minutes); None where a task starts when handed out.
        lease_seconds: how long a task stays the runner's without a progress report (inf: each
            task type sets its own).
        poll_stop: what a worker's stop does to polls in flight (``Service.poll_stop``):
            ``"abort"`` where an unacknowledged task is offered again, else ``"drain"``.
        rate_limits: the account's token buckets, by wire operation. Operations whose limits
            have the same ``RateLimit.operation`` share one budget in the worker's pacing (a
            runner cannot know in advance which of them a task ends with); the local service
            keeps a bucket per wire operation, as AWS does.
        paced: the worker's connection method -> the wire operation whose budget paces it.
        reduced_rate_limits: smaller buckets outside *full_rate_regions* (Step Functions').
        full_rate_regions: the regions where *rate_limits* apply when *reduced_rate_limits* is
            set (the local service answers as one of them).
        errors: the lease-lost and throttle codes.
        limits: size limits by name (characters or UTF-8 bytes, as the service counts them).
    """

    name: str
    title: str
    queue_name: str
    signing_name: str
    target_prefix: str
    json_version: Literal["1.0", "1.1"]
    poll_operation: str
    worker_operations: frozenset[str]
    poll_hold: float
    poll_read_timeout: float
    min_poll_read_timeout: float
    ack_window: float | None
    lease_seconds: float
    poll_stop: Literal["abort", "drain"]
    rate_limits: Mapping[str, RateLimit]
    paced: Mapping[str, str]
    errors: ErrorRules
    limits: Mapping[str, int] = field(default_factory=dict)
    reduced_rate_limits: Mapping[str, RateLimit] | None = None
    full_rate_regions: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # A description is a table of facts: catch a slip in one when it is written, not when a
        # worker first paces a call by it.
        unknown = set(self.paced.values()) - set(self.rate_limits)
        if unknown:
            raise ValueError(f"{self.name}: paced by operations without a limit: {unknown}")
        if self.poll_operation not in self.worker_operations:
            raise ValueError(f"{self.name}: the poll must be one of the worker's operations")
        if not self.poll_read_timeout > self.poll_hold:
            raise ValueError(f"{self.name}: the poll read timeout must be above the hold")
        if not (self.lease_seconds > 0 or math.isinf(self.lease_seconds)):
            raise ValueError(f"{self.name}: the lease must be > 0")

    @property
    def content_type(self) -> str:
        """``application/x-amz-json-1.0`` or ``-1.1``."""
        return f"application/x-amz-json-{self.json_version}"

    def rate_limits_in(self, region: str | None) -> Mapping[str, RateLimit]:
        """The buckets by wire operation in *region* (unknown: the smaller ones, if any)."""
        if self.reduced_rate_limits is None or region in self.full_rate_regions:
            return self.rate_limits
        return self.reduced_rate_limits

    def pacing(self, region: str | None = None) -> dict[str, RateLimit]:
        """The worker's budgets by connection method (``Service.rate_limits``)."""
        limits = self.rate_limits_in(region)
        return {method: limits[operation] for method, operation in self.paced.items()}

    def poll_read_timeout_problem(self, timeout: float) -> str | None:
        """What is wrong with *timeout* as the poll client's read timeout; None if it fits."""
        if self.min_poll_read_timeout <= self.poll_hold:
            if timeout > self.poll_hold:
                return None
            return f"poll_read_timeout={timeout:g}s must exceed the {self.poll_hold:g}s poll hold"
        if timeout >= self.min_poll_read_timeout:
            return None
        return (
            f"poll_read_timeout={timeout:g}s must be at least {self.min_poll_read_timeout:g}s "
            f"({self.title} holds a poll for {self.poll_hold:g}s)"
        )
