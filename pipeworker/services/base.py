"""The small interface the supervisor speaks to a polling-worker service.

A *service* is a configuration object (``DataPipeline()``, later ``SWF(domain=...)``): it checks
names before anything is sent and opens a :class:`Connection`. A connection does five things::

    poll(queue)                  -> ReceivedTask | None     one long poll on one queue
    acknowledge(task)            -> canceled?               the first report, sent at once
    report_progress(task, ...)   -> canceled?               the report that keeps the lease
    finish(task, outcome)        -> None                    the final status
    heartbeat(queue)             -> terminate?              the runner's own heartbeat

and, where the service has them, ``evaluate(task, expression)``. Everything a service says is
translated into the exception tree at the connection's edge:

- :class:`~pipeworker.exceptions.LeaseLost`: the task is not this runner's any more; the supervisor
  cancels the handler and sends nothing more for it.
- :class:`~pipeworker.exceptions.TransientServiceError`: worth sending again; the supervisor's retry
  layer (``pipeworker._retry``) does so, and connections never retry on their own.
- :class:`~pipeworker.exceptions.RequestRejected`: sending the same request again cannot help.

A connection knows nothing about handlers; the supervisor knows nothing about the wire.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

if TYPE_CHECKING:
    from pipeworker.task import BaseTask

__all__ = [
    "Connection",
    "ConnectionSettings",
    "MalformedAnswer",
    "Outcome",
    "RateLimit",
    "ReceivedTask",
    "Service",
    "Status",
    "TaskT",
    "truncate_head",
    "truncate_tail",
]

Status = Literal["FINISHED", "FAILED", "FALSE"]

TaskT = TypeVar("TaskT", bound="BaseTask", covariant=True)
"""The task class a service's handlers receive (``Service[Task]``, ``Worker[ActivityTask]``)."""

TRUNCATION_MARKER = "...[truncated]..."


@dataclass(frozen=True, slots=True)
class ReceivedTask:
    """A task as a poll delivered it, already translated from the wire.

    Attributes:
        id: the token every later call for this task carries.
        queue: what was polled (a worker group, a task list, an activity).
        type: the task's type where the service routes on one (``type=`` in
            ``@worker.activity``), or None.
        lease_seconds: this task's own lease when it sets one shorter than the service's
            (Data Pipeline's ``reportProgressTimeout``, SWF's heartbeat timeout); progress is
            reported well inside it.
        attributes: what else the service delivered, for the service's own task class (SWF:
            ``activityId``, ``activityType``, ``workflowExecution``, ``input``). A service may
            instead subclass this class with typed fields of its own (Data Pipeline does).
    """

    id: str
    queue: str
    type: str | None = None
    lease_seconds: float | None = None
    attributes: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a task ended, before it is fitted to a service's limits.

    Build it with :meth:`finished`, :meth:`failed` or :meth:`false`; the service truncates the
    texts to its own limits when it sends them. ``result`` is what the handler returned; services
    with a result (SWF) encode and send it, the others (Data Pipeline) ignore it.
    """

    status: Status
    error_id: str | None = None
    message: str | None = None
    stack_trace: str | None = None
    result: Any = None

    @classmethod
    def finished(cls, result: Any = None) -> Outcome:
        """The handler returned *result*."""
        return _FINISHED if result is None else cls("FINISHED", result=result)

    @classmethod
    def failed(cls, error_id: str, message: str = "", stack_trace: str | None = None) -> Outcome:
        """The handler failed with *error_id*; *message* and *stack_trace* explain it."""
        return cls("FAILED", error_id, message, stack_trace)

    @classmethod
    def false(cls, message: str = "") -> Outcome:
        """The precondition the task checks does not hold."""
        return cls("FALSE", None, message or None)


_FINISHED = Outcome("FINISHED")


class MalformedAnswer(ValueError):
    """A successful answer whose body is not what the service model says it is.

    Raised while an answer is read (not JSON, not an object, a member missing or of the wrong
    type, larger than the transport accepts) and translated at the connection's edge into a
    :class:`~pipeworker.exceptions.TransientServiceError` with code :attr:`code`: a proxy's
    error page or a cut connection is worth sending again, and a runner must never crash on it.
    Never escapes a connection.

    Attributes:
        code: ``"MalformedResponse"``, or ``"ResponseTooLarge"`` for an answer over the cap.
        task_id: the task the answer was about, when it could still be read (for the logs).
    """

    def __init__(
        self, message: str, *, code: str = "MalformedResponse", task_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.task_id = task_id


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One of the account's budgets for a call: a token bucket, shared by every runner.

    Attributes:
        operation: the budget's name, the wire operation it limits (``"ReportTaskProgress"``);
            connection methods declaring the same name share one budget (Data Pipeline's
            acknowledgement and progress reports are both ReportTaskProgress).
        rate: tokens added per second.
        burst: the most tokens the bucket holds.
    """

    operation: str
    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1):
            raise ValueError(
                f"RateLimit {self.operation!r}: rate must be > 0 and burst >= 1, "
                f"got rate={self.rate!r}, burst={self.burst!r}"
            )

    def scaled(self, factor: float) -> RateLimit:
        """This budget refilled *factor* times as fast (the burst unchanged); for tests."""
        return RateLimit(self.operation, self.rate * factor, self.burst)


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """What a worker tells its service when it connects.

    Attributes:
        region: AWS region, or None for the usual AWS settings (environment, config files).
        endpoint_url: a different endpoint, for example the local service's.
        taskrunner_id: the runner's unique id.
        hostname: the host the runner reports.
        queues: every queue the worker polls; at most one poll per queue is in flight.
        max_concurrency: the most tasks the worker runs at once.
    """

    region: str | None
    endpoint_url: str | None
    taskrunner_id: str
    hostname: str
    queues: Sequence[str]
    max_concurrency: int


class Connection(abc.ABC):
    """An open connection to a service: the five calls the supervisor makes.

    Attributes:
        runner_heartbeat: False for services without a runner heartbeat (SWF): the supervisor
            then never calls :meth:`heartbeat`.
    """

    runner_heartbeat: bool = True

    @abc.abstractmethod
    async def poll(self, queue: str) -> ReceivedTask | None:
        """Long-poll *queue* once; return the task received, or None when the hold ran out."""

    @abc.abstractmethod
    async def acknowledge(self, task: ReceivedTask) -> bool:
        """Tell the service the task has started; return True if it was cancelled meanwhile."""

    @abc.abstractmethod
    async def report_progress(
        self, task: ReceivedTask, details: Mapping[str, Any] | None = None
    ) -> bool:
        """Keep the lease on *task*, sending *details* along (what the task's ``heartbeat()``
        queued, by name); return True if it was cancelled."""

    @abc.abstractmethod
    async def finish(self, task: ReceivedTask, outcome: Outcome) -> None:
        """Report the final *outcome* of *task*."""

    @abc.abstractmethod
    async def heartbeat(self, queue: str) -> bool:
        """Report the runner alive for *queue*; return True if the service asks it to stop."""

    async def canceled(self, task: ReceivedTask) -> None:
        """Confirm a cancellation the service asked for, once the handler has stopped.

        Data Pipeline needs nothing (the default); SWF answers RespondActivityTaskCanceled.
        """
        return None

    async def evaluate(self, task: ReceivedTask, expression: str) -> str:
        """Evaluate *expression* against the task's object, where the service supports it."""
        raise NotImplementedError(f"{type(self).__name__} cannot evaluate expressions")


class Service(abc.ABC, Generic[TaskT]):
    """A polling-worker service, as configuration: checks names, then opens connections.

    Generic over the task class its handlers receive, so ``Worker(service=SWF(...))`` is a
    ``Worker[ActivityTask]`` and a handler typed for another service's task is a type error.

    Attributes:
        name: a short name for messages and logs (``"datapipeline"``).
        queue_name: what a queue is called in this service (``"worker group"``), for messages.
        lease_seconds: how long a task stays this runner's without a progress report; the
            worker refuses a progress interval that could let it lapse.
        ack_window: how long a task handed out by a poll stays this runner's before its
            acknowledgement lands (Data Pipeline: 120 s); None where the poll itself starts the
            task (its lease then runs from the poll).
        task_class: the :class:`~pipeworker.Task` subclass handlers receive.
        rate_limits: the account's documented budgets, by connection method (``poll``,
            ``acknowledge``, ``report_progress``, ``finish``, ``canceled``, ``heartbeat``);
            methods absent are not paced. The worker paces its calls by them (see
            ``pipeworker._pacing``).
        typed_tasks: whether tasks carry an activity type that ``type=`` can route on (Step
            Functions' do not: a handler per activity ARN).
        poll_stop: what a stop does to polls in flight. ``"abort"``: at once (right for a
            service that offers an unacknowledged task again, as Data Pipeline does after its
            acknowledgement window). ``"drain"``: they may return (and their task runs) until
            the shutdown grace ends, then are aborted (right where a task handed to an aborted
            poll waits for its timeout, as on SWF and Step Functions).
    """

    name: str = ""
    queue_name: str = "queue"
    lease_seconds: float = 300.0
    ack_window: float | None = None
    poll_stop: Literal["abort", "drain"] = "drain"
    typed_tasks: bool = True
    rate_limits: Mapping[str, RateLimit] = {}

    @property
    @abc.abstractmethod
    def task_class(self) -> type[TaskT]:
        """The class of the task handlers receive."""

    @abc.abstractmethod
    def check_queue(self, queue: str) -> list[str]:
        """Return what is wrong with *queue* as a name to poll; empty when it is valid."""

    @abc.abstractmethod
    def check_identity(self, taskrunner_id: str, hostname: str) -> list[str]:
        """Return what is wrong with the runner's id and hostname; empty when both are valid."""

    @abc.abstractmethod
    def connect(self, settings: ConnectionSettings) -> AbstractAsyncContextManager[Connection]:
        """Open a connection for a worker; closing the context closes its clients."""


def truncate_head(text: str, limit: int) -> str:
    """Keep the start of *text*, at most *limit* characters, marking a cut at the end."""
    if len(text) <= limit:
        return text
    keep = max(limit - len(TRUNCATION_MARKER), 0)
    return text[:keep] + TRUNCATION_MARKER[: limit - keep]


def truncate_tail(text: str, limit: int) -> str:
    """Keep the end of *text*, at most *limit* characters, marking a cut at the start.

    Used for stack traces: the innermost frames and the exception line are at the end.
    """
    if len(text) <= limit:
        return text
    keep = max(limit - len(TRUNCATION_MARKER), 0)
    return TRUNCATION_MARKER[: limit - keep] + text[len(text) - keep :]
