"""pipeworker: task runners for AWS Data Pipeline, SWF and Step Functions, on asyncio."""

from pipeworker.exceptions import (
    ConfigurationError,
    LeaseLost,
    PipeworkerError,
    PreconditionNotMet,
    RequestRejected,
    ServiceError,
    TaskFailed,
    ThrottlingError,
    TransientServiceError,
)

__all__ = [
    "ConfigurationError",
    "LeaseLost",
    "PipeworkerError",
    "PreconditionNotMet",
    "RequestRejected",
    "ServiceError",
    "TaskFailed",
    "ThrottlingError",
    "TransientServiceError",
]
