"""pipeworker: task runners for AWS Data Pipeline, SWF and Step Functions, on asyncio.

The public names load on first use, so ``python -m pipeworker --help`` does not pay for importing
aiobotocore (about 300 ms) before it has anything to do.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

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

try:
    __version__ = importlib.metadata.version("pipeworker")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover (run from a source tree)
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from pipeworker._config import WorkerSettings
    from pipeworker._events import Observer
    from pipeworker.services._dptask import Ref, Task
    from pipeworker.services.base import Outcome, RateLimit
    from pipeworker.services.datapipeline import DataPipeline
    from pipeworker.services.stepfunctions import StepFunctions, StepFunctionsTask
    from pipeworker.services.swf import SWF, ActivityTask
    from pipeworker.task import BaseTask, CancelReason
    from pipeworker.worker import Worker

# Plainly sorted (the public-API test pins it); ruff's isort order would put "SWF" first.
__all__ = [  # noqa: RUF022
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

_LAZY = {
    "ActivityTask": "pipeworker.services.swf",
    "BaseTask": "pipeworker.task",
    "CancelReason": "pipeworker.task",
    "DataPipeline": "pipeworker.services.datapipeline",
    "Observer": "pipeworker._events",
    "Outcome": "pipeworker.services.base",
    "RateLimit": "pipeworker.services.base",
    "Ref": "pipeworker.services._dptask",
    "SWF": "pipeworker.services.swf",
    "StepFunctions": "pipeworker.services.stepfunctions",
    "StepFunctionsTask": "pipeworker.services.stepfunctions",
    "Task": "pipeworker.services._dptask",
    "Worker": "pipeworker.worker",
    "WorkerSettings": "pipeworker._config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeworker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
