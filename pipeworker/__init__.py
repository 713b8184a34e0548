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
    ValidationError,
)
from pipeworker.services.base import Outcome, Ref
from pipeworker.services.datapipeline import DataPipeline
from pipeworker.task import Task
from pipeworker.worker import Worker

__all__ = [
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
