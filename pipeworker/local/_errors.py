"""Errors the local service answers, shaped the way AWS JSON services shape them."""

from __future__ import annotations

__all__ = [
    "ApiError",
    "internal_error",
    "invalid_request",
    "pipeline_deleted",
    "pipeline_not_found",
    "task_not_found",
]

DATAPIPELINE = "com.amazon.datapipeline"
COMMON = "com.amazon.coral.service"
VALIDATE = "com.amazon.coral.validate"


class ApiError(Exception):
    """An error answer: HTTP *status* with body ``{"__type": "<namespace>#<code>", "message"}``.

    botocore takes the error code from ``__type`` after the last ``#`` and the message from
    ``message``, so boto3 users see ``ClientError`` with ``Error.Code == code``.
    """

    def __init__(
        self, code: str, message: str, *, status: int = 400, namespace: str = DATAPIPELINE
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.namespace = namespace

    def body(self) -> dict[str, str]:
        """The JSON body of the answer."""
        return {"__type": f"{self.namespace}#{self.code}", "message": self.message}


def invalid_request(message: str) -> ApiError:
    """InvalidRequestException: the request is well-formed but not acceptable now."""
    return ApiError("InvalidRequestException", message)


def internal_error(message: str = "Internal service error, please retry") -> ApiError:
    """InternalServiceError (HTTP 500): what AWS answers when it fails; clients retry it."""
    return ApiError("InternalServiceError", message, status=500)


def task_not_found(task_id: str) -> ApiError:
    """TaskNotFoundException: the task id is unknown or its lease was lost."""
    return ApiError(
        "TaskNotFoundException", f"Task {task_id!r} not found or no longer assigned to you"
    )


def pipeline_not_found(pipeline_id: str) -> ApiError:
    """PipelineNotFoundException: no pipeline has this id."""
    return ApiError("PipelineNotFoundException", f"Pipeline {pipeline_id!r} does not exist")


def pipeline_deleted(pipeline_id: str) -> ApiError:
    """PipelineDeletedException: the pipeline existed and was deleted."""
    return ApiError("PipelineDeletedException", f"Pipeline {pipeline_id!r} was deleted")
