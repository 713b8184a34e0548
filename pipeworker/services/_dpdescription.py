"""AWS Data Pipeline (2012-10-29), described once for the worker and the local service.

PROTOCOL.md: JSON 1.1 under ``DataPipeline.``, signed as ``datapipeline``; PollForTask holds
90 s; a task unacknowledged for 2 minutes is reassigned; five minutes is the shortest progress
window the API pages give; token buckets of 100 refilling 2/s (poll), 10/s (progress, status)
and 1/s (the runner's heartbeat).
"""

from __future__ import annotations

from typing import Final

from pipeworker.services._description import ErrorRules, ServiceDescription
from pipeworker.services.base import RateLimit

__all__ = ["DATA_PIPELINE"]

_BURST = 100.0

DATA_PIPELINE: Final = ServiceDescription(
    name="datapipeline",
    title="Data Pipeline",
    queue_name="worker group",
    signing_name="datapipeline",
    target_prefix="DataPipeline",
    json_version="1.1",
    poll_operation="PollForTask",
    worker_operations=frozenset(
        {
            "PollForTask",
            "ReportTaskProgress",
            "SetTaskStatus",
            "ReportTaskRunnerHeartbeat",
            "EvaluateExpression",
        }
    ),
    poll_hold=90.0,
    poll_read_timeout=120.0,
    min_poll_read_timeout=90.0,  # strictly above the hold
    ack_window=120.0,
    lease_seconds=300.0,
    # A task handed to an aborted poll is offered again after the acknowledgement window, so a
    # stop need not wait out a 90 s hold.
    poll_stop="abort",
    rate_limits={
        "PollForTask": RateLimit("PollForTask", rate=2.0, burst=_BURST),
        "ReportTaskProgress": RateLimit("ReportTaskProgress", rate=10.0, burst=_BURST),
        "SetTaskStatus": RateLimit("SetTaskStatus", rate=10.0, burst=_BURST),
        "ReportTaskRunnerHeartbeat": RateLimit("ReportTaskRunnerHeartbeat", rate=1.0, burst=_BURST),
    },
    # EvaluateExpression has no documented budget.
    paced={
        "poll": "PollForTask",
        "acknowledge": "ReportTaskProgress",
        "report_progress": "ReportTaskProgress",
        "finish": "SetTaskStatus",
        "heartbeat": "ReportTaskRunnerHeartbeat",
    },
    # PollForTask lists TaskNotFoundException too, but a poll holds no lease to lose.
    errors=ErrorRules(
        lease_lost=frozenset(
            {"TaskNotFoundException", "PipelineNotFoundException", "PipelineDeletedException"}
        ),
        lease_operations=frozenset(
            {
                "ReportTaskProgress",
                "SetTaskStatus",
                "ReportTaskRunnerHeartbeat",
                "EvaluateExpression",
            }
        ),
    ),
    limits={
        # What one object may hold (a ReportTaskProgress lands on the attempt object).
        "object_fields": 50,
        "object_bytes": 15_360,
        "activity_retries": 5,  # maximumRetries at most
        "error_id": 1024,
        "error_message": 1024,  # the model sets none; the API page gives 4095 for the trace
        "error_stack_trace": 1024,
    },
)
