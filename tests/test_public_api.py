"""The public API is exactly what ``pipeworker.__all__`` names; changing it is a decision."""

import pipeworker


def test_all_is_pinned_and_sorted() -> None:
    assert pipeworker.__all__ == [
        "ConfigurationError",
        "DataPipeline",
        "LeaseLost",
        "Outcome",
        "PipeworkerError",
        "PreconditionNotMet",
        "Ref",
        "RequestRejected",
        "ServiceError",
        "Task",
        "TaskFailed",
        "ThrottlingError",
        "TransientServiceError",
        "ValidationError",
        "Worker",
    ]
    assert sorted(pipeworker.__all__) == pipeworker.__all__


def test_every_public_name_resolves() -> None:
    for name in pipeworker.__all__:
        assert getattr(pipeworker, name).__name__ == name
