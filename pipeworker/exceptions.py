"""The exceptions pipeworker raises, all under one base class.

::

    PipeworkerError
    ├── ConfigurationError       bad configuration or registration; raised before any call
    ├── ValidationError          a value the service would reject; raised instead of sending it
    ├── ServiceError             a call to the service did not succeed
    │   ├── TransientServiceError    5xx, throttle, timeout, dropped connection: retried
    │   │   └── ThrottlingError          the account's rate limit was exceeded
    │   ├── RequestRejected          a 4xx that would be answered the same again: not retried
    │   └── LeaseLost                the task is no longer this runner's (TaskNotFound,
    │                                PipelineDeleted, PipelineNotFound, UnknownResourceFault)
    └── TaskOutcome              raised by a handler to choose how its task ends
        ├── TaskFailed               FAILED with the given error id and message
        └── PreconditionNotMet       FALSE: the precondition this task checks does not hold
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "LeaseLost",
    "PipeworkerError",
    "PreconditionNotMet",
    "RequestRejected",
    "ServiceError",
    "TaskFailed",
    "TaskOutcome",
    "ThrottlingError",
    "TransientServiceError",
    "ValidationError",
]


class PipeworkerError(Exception):
    """Base class of every exception pipeworker raises."""


class ConfigurationError(PipeworkerError, ValueError):
    """A setting or a registration is invalid; the message says which and how to fix it."""


class ValidationError(PipeworkerError, ValueError):
    """A value breaks the service model's limits (length, pattern); nothing was sent.

    Raised where the value is given, for example by ``Task.report_progress`` for a field value
    longer than the service accepts, so the mistake surfaces in the handler that made it.
    """


class ServiceError(PipeworkerError):
    """A service call failed.

    Attributes:
        operation: the API operation, for example ``"ReportTaskProgress"``.
        code: the service's error code (``"InternalServiceError"``), or the HTTP status as a string.
    """

    def __init__(self, message: str, *, operation: str = "", code: str = "") -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code


class TransientServiceError(ServiceError):
    """A failure worth retrying: a 5xx, a throttle, a timeout or a dropped connection."""


class ThrottlingError(TransientServiceError):
    """The service throttled the call; it is retried with backoff."""


class RequestRejected(ServiceError):
    """The service rejected the request itself (a 4xx); sending it again cannot succeed."""


class LeaseLost(ServiceError):
    """The task is no longer held by this runner; nothing more may be sent for it."""


class TaskOutcome(PipeworkerError):
    """Base of the exceptions a handler raises to choose its task's final status."""


class TaskFailed(TaskOutcome):
    """End the task as FAILED with an error id of the handler's choosing.

    Args:
        error_id: a short code, for example ``"SourceMissing"``; it must not start with ``Service_``
            (that prefix is reserved for the service), and is cut to the service's limit.
        message: what went wrong, for the pipeline's operators.
    """

    def __init__(self, error_id: str, message: str = "") -> None:
        super().__init__(f"{error_id}: {message}" if message else error_id)
        self.error_id = error_id
        self.message = message


class PreconditionNotMet(TaskOutcome):
    """End the task as FALSE: the condition it checks (a precondition activity) does not hold."""
