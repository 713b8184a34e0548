"""What happens around the scheduler's runtime, as hooks the service fills in.

The scheduler calls them at fixed points (a run started, an object ended, a precondition to
check); ``_actions`` installs the service's own (actions fired, S3 preconditions checked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeworker.local._state import Instance, Pipeline

if TYPE_CHECKING:
    from pipeworker.local._scheduler import Scheduler

__all__ = ["Hooks"]


class Hooks:
    """What happens around the runtime: actions fired, service-side checks, schedules.

    The defaults do nothing (a precondition the service checks is met at once); the service
    installs the real ones.
    """

    def run_started(self, pipeline: Pipeline, instances: list[Instance]) -> None:
        """A run's instances were created (*instances*, tasks and the rest)."""

    def finished(self, instance: Instance, status: str) -> None:
        """*instance* reached terminal *status*."""

    def close(self) -> None:
        """The service stops: cancel what is pending."""

    def precondition_false(self, instance: Instance) -> None:
        """A runner found precondition *instance* not met; the default checks again later."""
        self.scheduler.retry_later(instance, instance.retry_delay)

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def check_precondition(self, instance: Instance) -> None:
        """Check a precondition the service evaluates itself; the default holds it met."""
        self.scheduler.precondition_result(instance, met=True)

    def run_over(self, pipeline: Pipeline) -> None:
        """Every task of *pipeline*'s runs so far has ended."""
        if pipeline.state == "SCHEDULED" and not pipeline.schedule_active:
            pipeline.state = "FINISHED"
