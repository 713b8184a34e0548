"""One description per service: its numbers are PROTOCOL.md's, and the worker and the local
service both read them from it (nothing is stated twice)."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from typing import Any

import botocore.session
import pytest

from pipeworker.local import LocalService
from pipeworker.services._description import ServiceDescription
from pipeworker.services._dpdescription import DATA_PIPELINE
from pipeworker.services._sfndescription import STEP_FUNCTIONS
from pipeworker.services._swfdescription import SWF_DESCRIPTION
from pipeworker.services.base import RateLimit
from pipeworker.services.datapipeline import DataPipeline
from pipeworker.services.stepfunctions import StepFunctions
from pipeworker.services.swf import SWF

DESCRIPTIONS = [DATA_PIPELINE, SWF_DESCRIPTION, STEP_FUNCTIONS]
_ids = [d.name for d in DESCRIPTIONS]

# shared/PROTOCOL.md, restated here on purpose: the test pins the descriptions to the document.
PROTOCOL: dict[str, dict[str, Any]] = {
    "datapipeline": {
        "signing_name": "datapipeline",
        "target_prefix": "DataPipeline",
        "content_type": "application/x-amz-json-1.1",
        "poll": "PollForTask",
        "hold": 90.0,
        "ack_window": 120.0,
        "lease": 300.0,
        "poll_stop": "abort",
        "buckets": {
            "PollForTask": (2.0, 100.0),
            "ReportTaskProgress": (10.0, 100.0),
            "SetTaskStatus": (10.0, 100.0),
            "ReportTaskRunnerHeartbeat": (1.0, 100.0),
        },
        "lease_lost": {
            "TaskNotFoundException",
            "PipelineNotFoundException",
            "PipelineDeletedException",
        },
        "limits": {
            "object_fields": 50,
            "object_bytes": 15_360,
            "activity_retries": 5,
            "error_id": 1024,
            "error_message": 1024,
            "error_stack_trace": 1024,
        },
    },
    "swf": {
        "signing_name": "swf",
        "target_prefix": "SimpleWorkflowService",
        "content_type": "application/x-amz-json-1.0",
        "poll": "PollForActivityTask",
        "hold": 60.0,
        "min_read_timeout": 70.0,
        "ack_window": None,
        "lease": math.inf,
        "poll_stop": "drain",
        "buckets": {
            "PollForActivityTask": (200.0, 2000.0),
            "RecordActivityTaskHeartbeat": (160.0, 2000.0),
            "RespondActivityTaskCompleted": (200.0, 2000.0),
            "RespondActivityTaskFailed": (200.0, 2000.0),
            "RespondActivityTaskCanceled": (200.0, 2000.0),
        },
        "lease_lost": {"UnknownResourceFault"},
        "limits": {
            "task_token": 1024,
            "identity": 256,
            "result": 32_768,
            "reason": 256,
            "details": 32_768,
            "heartbeat_details": 2048,
            "pollers": 1000,
        },
    },
    "stepfunctions": {
        "signing_name": "states",
        "target_prefix": "AWSStepFunctions",
        "content_type": "application/x-amz-json-1.0",
        "poll": "GetActivityTask",
        "hold": 60.0,
        "min_read_timeout": 65.0,
        "ack_window": None,
        "lease": math.inf,
        "poll_stop": "drain",
        "buckets": {
            op: (500.0, 3000.0)
            for op in ("GetActivityTask", "SendTaskHeartbeat", "SendTaskSuccess", "SendTaskFailure")
        },
        "lease_lost": {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"},
        "limits": {
            "task_token": 2048,
            "activity_arn": 256,
            "worker_name": 80,
            "output": 262_144,
            "error": 256,
            "cause": 32_768,
            "pollers": 1000,
        },
    },
}


@pytest.mark.parametrize("description", DESCRIPTIONS, ids=_ids)
def test_each_description_says_what_protocol_md_says(description: ServiceDescription) -> None:
    facts = PROTOCOL[description.name]
    assert description.signing_name == facts["signing_name"]
    assert description.target_prefix == facts["target_prefix"]
    assert description.content_type == facts["content_type"]
    assert description.poll_operation == facts["poll"]
    assert description.poll_hold == facts["hold"]
    assert description.poll_read_timeout > description.poll_hold
    assert description.min_poll_read_timeout >= facts.get("min_read_timeout", facts["hold"])
    assert description.ack_window == facts["ack_window"]
    assert description.lease_seconds == facts["lease"]
    assert description.poll_stop == facts["poll_stop"]
    buckets = {op: (lim.rate, lim.burst) for op, lim in description.rate_limits.items()}
    assert buckets == facts["buckets"]
    assert description.errors.lease_lost == facts["lease_lost"]
    assert dict(description.limits) == facts["limits"]


def test_step_functions_has_smaller_buckets_outside_its_large_regions() -> None:
    small = STEP_FUNCTIONS.rate_limits_in("ap-south-1")
    assert {(lim.rate, lim.burst) for lim in small.values()} == {(300.0, 1500.0)}
    assert STEP_FUNCTIONS.rate_limits_in(None) is small  # unknown: the conservative reading
    assert STEP_FUNCTIONS.rate_limits_in("us-east-1") is STEP_FUNCTIONS.rate_limits


@pytest.mark.parametrize(
    ("service", "description"),
    [(DataPipeline(), DATA_PIPELINE), (SWF(domain="d"), SWF_DESCRIPTION)],
    ids=["datapipeline", "swf"],
)
def test_the_worker_reads_its_service_from_the_description(
    service: Any, description: ServiceDescription
) -> None:
    assert service.name == description.name
    assert service.queue_name == description.queue_name
    assert service.lease_seconds == description.lease_seconds
    assert service.poll_stop == description.poll_stop
    assert service.poll_read_timeout == description.poll_read_timeout
    assert dict(service.rate_limits) == description.pacing()
    assert service.wire.description is description


def test_step_functions_paces_by_the_region_of_the_usual_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert dict(StepFunctions().rate_limits) == STEP_FUNCTIONS.pacing("us-west-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    assert dict(StepFunctions().rate_limits) == STEP_FUNCTIONS.pacing("sa-east-1")
    assert StepFunctions().poll_stop == "drain"
    assert StepFunctions().lease_seconds == math.inf


@pytest.mark.parametrize("service", [DataPipeline(), SWF(domain="d"), StepFunctions()], ids=_ids)
def test_every_operation_sent_is_in_botocores_model_under_the_described_names(
    service: Any,
) -> None:
    wire = service.wire
    model = botocore.session.get_session().get_service_model(wire.client_name)
    assert model.signing_name == wire.signing_name
    assert model.metadata["targetPrefix"] == wire.target_prefix
    assert model.metadata["jsonVersion"] == service.description.json_version
    client_methods = {botocore.xform_name(name): name for name in model.operation_names}
    for operation, (method, profile) in wire.operations.items():
        assert client_methods[method] == operation
        assert profile == ("poll" if operation == service.description.poll_operation else "report")
    # The worker's calls all have a lean path; what the local service counts as the worker's
    # calls (faults, rate limits) is the same set.
    assert wire.lean <= service.description.worker_operations
    assert set(service.description.paced.values()) <= service.description.worker_operations


@pytest.mark.parametrize("description", DESCRIPTIONS, ids=_ids)
def test_the_local_service_answers_with_the_described_numbers(
    description: ServiceDescription,
) -> None:
    local = LocalService()
    assert local.dispatcher._services[description.target_prefix][0] is description
    for operation, limit in description.rate_limits_in("us-east-1").items():
        assert local.dispatcher.limiter.limits[operation] == limit
    if description is DATA_PIPELINE:
        assert local.config.poll_hold == description.poll_hold
        assert local.config.ack_timeout == description.ack_window
    else:
        # SWF's and Step Functions' holds are their own, whatever Data Pipeline's is.
        api = local.swf if description is SWF_DESCRIPTION else local.sfn
        assert api.poll_hold == description.poll_hold


def test_a_description_that_paces_by_an_unknown_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="without a limit"):
        replace(DATA_PIPELINE, paced={"poll": "PollForTasks"})
    with pytest.raises(ValueError, match="above the hold"):
        replace(DATA_PIPELINE, poll_read_timeout=90.0)
    with pytest.raises(ValueError, match="one of the worker's operations"):
        replace(
            SWF_DESCRIPTION,
            rate_limits={**SWF_DESCRIPTION.rate_limits, "X": RateLimit("X", 1.0, 1.0)},
            poll_operation="X",
        )


def test_the_descriptions_load_without_a_client_stack() -> None:
    code = (
        "import sys\n"
        "import pipeworker.services._dpdescription, pipeworker.services._swfdescription\n"
        "import pipeworker.services._sfndescription\n"
        "print(sorted(m for m in ('aiohttp', 'aiobotocore', 'botocore') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
