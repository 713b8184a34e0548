"""The public API is exactly what ``pipeworker.__all__`` names; changing it is a decision."""

import subprocess
import sys

import pytest

import pipeworker


def test_all_is_pinned_and_sorted() -> None:
    assert pipeworker.__all__ == [
        "ActivityTask",
        "BaseTask",
        "CancelReason",
        "ConfigurationError",
        "DataPipeline",
        "LeaseLost",
        "Observer",
        "Outcome",
        "PipeworkerError",
        "PreconditionNotMet",
        "RateLimit",
        "Ref",
        "RequestRejected",
        "SWF",
        "ServiceError",
        "StepFunctions",
        "StepFunctionsTask",
        "Task",
        "TaskFailed",
        "ThrottlingError",
        "TransientServiceError",
        "ValidationError",
        "Worker",
        "WorkerSettings",
    ]
    assert sorted(pipeworker.__all__) == pipeworker.__all__


def test_every_public_name_resolves() -> None:
    for name in pipeworker.__all__:
        assert getattr(pipeworker, name).__name__ == name


def test_importing_the_package_does_not_import_aiobotocore() -> None:
    # `python -m pipeworker --help` must answer fast; aiobotocore alone costs ~300 ms to import.
    code = "import sys, pipeworker, pipeworker.cli; print('aiobotocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pipeworker.Nope  # noqa: B018


def test_the_testing_kit_names_are_pinned() -> None:
    import pipeworker.testing

    assert pipeworker.testing.__all__ == [
        "Call",
        "Ending",
        "FakeDataPipeline",
        "FakeSWF",
        "FakeService",
        "FakeStepFunctions",
        "HandlerResult",
        "LocalEndpoint",
        "MockTransport",
        "Request",
        "ServiceErrorAnswer",
        "TaskHarness",
        "local_service",
        "run_handler",
        "serve_in_thread",
    ]
    for name in pipeworker.testing.__all__:
        assert getattr(pipeworker.testing, name) is not None
