"""AWS Step Functions (2016-11-23) activity workers, described once for the worker and the local
service.

PROTOCOL.md: JSON 1.0 under ``AWSStepFunctions.``, signed as ``states``; GetActivityTask holds
60 s (client timeout >= 65 s); each state sets its own HeartbeatSeconds; per-account buckets of
3,000 refilling 500/s for each call in the large regions, 1,500 / 300 elsewhere.
"""

from __future__ import annotations

from typing import Final

from pipeworker.services._description import ErrorRules, ServiceDescription
from pipeworker.services.base import RateLimit

__all__ = ["STEP_FUNCTIONS"]

_TASK_OPERATIONS = frozenset({"SendTaskHeartbeat", "SendTaskSuccess", "SendTaskFailure"})


def _buckets(rate: float, burst: float) -> dict[str, RateLimit]:
    # SendTaskSuccess and SendTaskFailure have a bucket each; the worker paces both by one
    # budget, the conservative reading (a runner cannot know how its tasks will end).
    finish = RateLimit("SendTaskSuccess/Failure", rate=rate, burst=burst)
    return {
        "GetActivityTask": RateLimit("GetActivityTask", rate=rate, burst=burst),
        "SendTaskHeartbeat": RateLimit("SendTaskHeartbeat", rate=rate, burst=burst),
        "SendTaskSuccess": finish,
        "SendTaskFailure": finish,
    }


STEP_FUNCTIONS: Final = ServiceDescription(
    name="stepfunctions",
    title="Step Functions",
    queue_name="activity ARN",
    signing_name="states",
    target_prefix="AWSStepFunctions",
    json_version="1.0",
    poll_operation="GetActivityTask",
    worker_operations=_TASK_OPERATIONS | {"GetActivityTask"},
    poll_hold=60.0,
    poll_read_timeout=75.0,
    min_poll_read_timeout=65.0,
    ack_window=None,
    lease_seconds=float("inf"),  # each state sets its own HeartbeatSeconds, or none
    # A token is delivered exactly once: a poll aborted in flight can strand a task.
    poll_stop="drain",
    rate_limits=_buckets(rate=500.0, burst=3000.0),
    reduced_rate_limits=_buckets(rate=300.0, burst=1500.0),
    # Where the account's buckets are larger (the API reference's quotas page); the local
    # service's ARNs are in us-east-1.
    full_rate_regions=frozenset({"us-east-1", "us-west-2", "eu-west-1"}),
    paced={
        "poll": "GetActivityTask",
        "report_progress": "SendTaskHeartbeat",
        "finish": "SendTaskSuccess",
    },
    errors=ErrorRules(
        lease_lost=frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}),
        lease_operations=_TASK_OPERATIONS,
        throttling=frozenset({"ActivityWorkerLimitExceeded", "KmsThrottlingException"}),
    ),
    limits={
        "task_token": 2048,
        "activity_arn": 256,
        "worker_name": 80,
        "output": 262_144,  # UTF-8 bytes of SendTaskSuccess's output (and of any payload)
        "error": 256,
        "cause": 32_768,
        "pollers": 1000,  # open GetActivityTask calls per activity
    },
)
