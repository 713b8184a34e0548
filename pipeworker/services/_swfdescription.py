"""Amazon SWF (2012-01-25) activity workers, described once for the worker and the local service.

PROTOCOL.md: JSON 1.0 under ``SimpleWorkflowService.``, signed as ``swf``; PollForActivityTask
holds 60 s (client timeout >= 70 s); each activity type sets its own heartbeat timeout; per-account
buckets of 2,000 refilling 200/s (poll, each Respond*) and 160/s (heartbeat); 1,000 pollers per
task list.
"""

from __future__ import annotations

from typing import Final

from pipeworker.services._description import ErrorRules, ServiceDescription
from pipeworker.services.base import RateLimit

__all__ = ["SWF_DESCRIPTION"]

_BURST = 2000.0
# Each Respond* call has its own bucket on AWS (and in the local service); the worker paces them
# by one shared budget, the conservative reading: a runner cannot know how its tasks will end.
_RESPOND = RateLimit("RespondActivityTask*", rate=200.0, burst=_BURST)
# Calls that carry a task token: UnknownResourceFault there means the token is dead (the task
# timed out, was cancelled or its execution closed); on a poll it means the domain is unknown.
_TOKEN_OPERATIONS = frozenset(
    {
        "RecordActivityTaskHeartbeat",
        "RespondActivityTaskCompleted",
        "RespondActivityTaskFailed",
        "RespondActivityTaskCanceled",
    }
)

SWF_DESCRIPTION: Final = ServiceDescription(
    name="swf",
    title="SWF",
    queue_name="task list",
    signing_name="swf",
    target_prefix="SimpleWorkflowService",
    json_version="1.0",
    poll_operation="PollForActivityTask",
    worker_operations=_TOKEN_OPERATIONS | {"PollForActivityTask"},
    poll_hold=60.0,
    poll_read_timeout=75.0,
    min_poll_read_timeout=70.0,
    ack_window=None,
    # No service-wide lease: each activity type sets its own heartbeat timeout (or none).
    lease_seconds=float("inf"),
    # A task handed to an aborted poll waits for its timeout: let polls in flight return.
    poll_stop="drain",
    rate_limits={
        "PollForActivityTask": RateLimit("PollForActivityTask", rate=200.0, burst=_BURST),
        "RecordActivityTaskHeartbeat": RateLimit(
            "RecordActivityTaskHeartbeat", rate=160.0, burst=_BURST
        ),
        "RespondActivityTaskCompleted": _RESPOND,
        "RespondActivityTaskFailed": _RESPOND,
        "RespondActivityTaskCanceled": _RESPOND,
    },
    # acknowledge() sends nothing on SWF: only the heartbeats are paced.
    paced={
        "poll": "PollForActivityTask",
        "report_progress": "RecordActivityTaskHeartbeat",
        "finish": "RespondActivityTaskCompleted",
        "canceled": "RespondActivityTaskCanceled",
    },
    errors=ErrorRules(
        lease_lost=frozenset({"UnknownResourceFault"}), lease_operations=_TOKEN_OPERATIONS
    ),
    limits={
        "task_token": 1024,
        "identity": 256,
        "result": 32_768,
        "reason": 256,
        "details": 32_768,
        "heartbeat_details": 2048,
        "pollers": 1000,  # per task list
    },
)
