"""The runtime: which instance may run, who waits for it, its leases, and what its outcome does.

Readiness is event-driven. When an instance becomes runnable it goes straight to a PollForTask
waiting on its exact worker group, if one is waiting, else to that group's FIFO queue; a later poll
takes it from there. Leases are one timer per task that re-arms itself lazily, so the hot path
(a progress report) only moves a deadline.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

from pipeworker.local._config import LocalConfig
from pipeworker.local._hooks import Hooks
from pipeworker.local._runnerqueues import RunnerQueues
from pipeworker.local._state import (
    FAILED_LIKE,
    TERMINAL,
    Attempt,
    Instance,
    Pipeline,
    ServiceState,
    Task,
)
from pipeworker.local._values import Ref

__all__ = ["Scheduler"]

WAITING = frozenset({"WAITING_ON_DEPENDENCIES", "WAITING_FOR_RUNNER", "PAUSED"})


class Scheduler:
    """Owns the runnable queues, the waiting polls and the task leases of one service."""

    def __init__(self, state: ServiceState, config: LocalConfig) -> None:
        self.state = state
        self.config = config
        self.hooks = Hooks(self)
        self._depth = 0
        # Called by close(): owners of other timers (the schedule clock) stop them there.
        self.on_close: list[Callable[[], None]] = []
        self.queues = RunnerQueues(self._hand_out)
        self._closed_at: float | None = None  # time.monotonic() of close(), until reopen()

    # --- runs -------------------------------------------------------------------------------

    def start_run(
        self, pipeline: Pipeline, instances: list[Instance], errors: dict[str, str]
    ) -> None:
        """Set the new run's statuses and release what depends on nothing.

        As on AWS (the AWS CLI's ``list-runs`` example): resources are CREATING until a task
        runs on them, data nodes wait for their producers (an input nobody produces is there
        at once), and activities wait for their dependencies, inputs and preconditions.
        """
        tasks = [instance for instance in instances if instance.is_activity]
        if not pipeline.open_activities:
            # Nothing of earlier runs is still going: forget them (a scheduled pipeline's runs
            # overlap, and then they are all current).
            pipeline.current_run = []
            pipeline.current_objects = []
        pipeline.current_run.extend(tasks)
        pipeline.current_objects.extend(i for i in instances if not i.is_activity)
        for instance in tasks:
            self._open(instance)
        for instance in instances:
            if instance.kind == "resource":
                instance.set_status("CREATING")
            else:
                instance.set_status("WAITING_ON_DEPENDENCIES")
        self.hooks.run_started(pipeline, instances)
        for instance in tasks:
            if instance.id in errors:
                instance.set("errorId", "ExpressionError")
                instance.set("errorMessage", errors[instance.id])
                self._finish_instance(instance, "FAILED")
        for instance in instances:
            self.reconsider(instance)
        if instances:
            self._check_run(pipeline, _run_of(instances[0]))

    def _open(self, instance: Instance) -> None:
        pipeline = instance.pipeline
        pipeline.open_activities.add(instance.id)
        pipeline.open_by_run.setdefault(_run_of(instance), set()).add(instance.id)

    def precondition_result(self, instance: Instance, *, met: bool, note: str = "") -> None:
        """A service-checked precondition's outcome: met finishes it, else it is FALSE."""
        if instance.status in TERMINAL:
            return
        if note:
            instance.set("errorMessage", note)
        self._finish_instance(instance, "FINISHED" if met else "FAILED")

    def held(self, instance: Instance) -> bool:
        """True while a pause (of the component or of the whole pipeline) holds *instance* back."""
        pipeline = instance.pipeline
        return pipeline.state == "INACTIVE" or instance.component_id in pipeline.paused_components

    def reconsider(self, instance: Instance) -> None:
        """Move a waiting instance on if its dependencies allow: run it, or cascade a failure."""
        if instance.status not in WAITING or instance.retry_handle is not None:
            return
        statuses = [dependency.status for dependency in instance.depends_on]
        if any(status in FAILED_LIKE for status in statuses):
            self._finish_instance(instance, "CASCADE_FAILED")
        elif self.held(instance):
            instance.set_status("PAUSED")
        elif all(status == "FINISHED" for status in statuses):
            if instance.is_activity:
                instance.set_status("WAITING_FOR_RUNNER")
                self.queues.offer(instance)
            elif instance.kind == "precondition":
                self.hooks.check_precondition(instance)
            else:
                self._finish_instance(instance, "FINISHED")
        else:
            instance.set_status("WAITING_ON_DEPENDENCIES")

    def _finish_instance(self, instance: Instance, status: str) -> None:
        """Give *instance* a terminal status and tell its dependents."""
        if instance.retry_handle is not None:
            instance.retry_handle.cancel()
            instance.retry_handle = None
        instance.set_status(status)
        instance.stamp("@actualEndTime")
        pipeline = instance.pipeline
        pipeline.open_activities.discard(instance.id)
        pipeline.open_by_run.get(_run_of(instance), set()).discard(instance.id)
        self.hooks.finished(instance, status)
        # Whether the run is over is decided once the whole cascade has settled, not in the
        # middle of it (an activity's second output would be seen as stranded).
        self._depth += 1
        try:
            for dependent in instance.dependents:
                self.reconsider(dependent)
        finally:
            self._depth -= 1
        if not self._depth:
            self._check_run(pipeline, _run_of(instance))

    def _check_run(self, pipeline: Pipeline, run: str) -> None:
        """When run *run* has no task left, settle its other objects; when no run of the
        pipeline has, its health and state."""
        if pipeline.open_by_run.get(run):
            return
        pipeline.open_by_run.pop(run, None)
        for instance in pipeline.current_objects:
            if _run_of(instance) != run:
                continue
            if instance.kind == "resource" and instance.status not in TERMINAL:
                # The run is over: its resources shut down (those never used are cancelled).
                used = instance.status == "RUNNING"
                instance.set_status("FINISHED" if used else "CANCELED")
                instance.stamp("@actualEndTime")
            elif instance.status not in TERMINAL:
                instance.set_status("CANCELED")
                instance.stamp("@actualEndTime")
        if pipeline.open_activities or not pipeline.current_run:
            return
        failed = any(instance.status != "FINISHED" for instance in pipeline.current_run)
        pipeline.health = "ERROR" if failed else "HEALTHY"
        self.hooks.run_over(pipeline)

    # --- polls and leases -------------------------------------------------------------------

    async def wait_for_task(
        self, worker_group: str, hostname: str, alive: Callable[[], bool] | None = None
    ) -> Task | None:
        """A task for *worker_group*: at once if one is runnable, else the first within the hold.

        *alive* tells whether the polling client is still connected.
        """
        return await self.queues.wait(worker_group, hostname, alive, self.config.poll_hold)

    def _hand_out(self, instance: Instance, hostname: str) -> Task:
        """Start a new attempt of *instance* and lease it to the polling runner."""
        pipeline = instance.pipeline
        number = len(instance.attempts) + 1
        attempt = Attempt(
            f"{instance.id}_Attempt={number}",
            {
                "@instanceParent": [Ref(instance.id)],
                "@componentParent": [Ref(instance.component_id)],
                "@attemptNumber": [str(number)],
            },
            instance,
        )
        attempt.set_status("RUNNING")
        attempt.stamp("@actualStartTime")
        if hostname:
            attempt.set("hostname", hostname)
        instance.attempts.append(attempt)
        pipeline.attempts[attempt.id] = attempt
        instance.set_status("RUNNING")
        if "@actualStartTime" not in instance.fields:
            instance.stamp("@actualStartTime")
        instance.set("@headAttempt", Ref(attempt.id))
        instance.set("@attemptCount", str(number))
        if hostname:
            instance.set("hostname", hostname)
        resource = instance.fields.get("runsOn", [None])[0]
        if isinstance(resource, Ref):
            target = pipeline.instances.get(resource.id)
            if target is not None and target.status == "CREATING":
                target.set_status("RUNNING")
        loop = asyncio.get_running_loop()
        now = loop.time()
        task = Task(secrets.token_urlsafe(24), attempt, deadline=now, started=now)
        task.deadline = self._deadline(task, now, self.config.ack_timeout)
        attempt.task = task
        self.state.tasks[task.id] = task
        task.timer = loop.call_at(task.deadline, self._check_lease, task)
        return task

    def _deadline(self, task: Task, now: float, window: float) -> float:
        limit = task.attempt.instance.attempt_timeout
        deadline = now + window
        return min(deadline, task.started + limit) if limit is not None else deadline

    def progress(self, task: Task) -> None:
        """Record a progress report: the task is acknowledged and its lease extended."""
        task.acknowledged = True
        window = task.attempt.instance.report_progress_timeout
        if window is None:
            window = self.config.default_report_progress_timeout
        loop = asyncio.get_running_loop()
        task.deadline = self._deadline(task, loop.time(), window)
        timer = task.timer
        # The timer re-arms itself when a deadline moves later; only an earlier one needs a new
        # timer (the acknowledgement window can be longer than the progress window).
        if timer is None or task.deadline < timer.when():
            if timer is not None:
                timer.cancel()
            task.timer = loop.call_at(task.deadline, self._check_lease, task)

    def _check_lease(self, task: Task) -> None:
        if self.state.tasks.get(task.id) is not task or task.final_status or task.cancel_requested:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now < task.deadline:
            task.timer = loop.call_at(task.deadline, self._check_lease, task)
            return
        del self.state.tasks[task.id]
        attempt = task.attempt
        instance = attempt.instance
        limit = instance.attempt_timeout
        attempt.set_status("TIMEDOUT")
        attempt.stamp("@actualEndTime")
        if limit is not None and now >= task.started + limit:
            attempt.set("errorMessage", "The attempt ran longer than its attemptTimeout")
            self._failed_try(instance, attempt, "TIMEDOUT", instance.retry_delay)
        elif not task.acknowledged:
            # Never acknowledged: the runner may never have seen it, so this is no failed try.
            attempt.set("errorMessage", "The task was not acknowledged in time; reassigned")
            instance.set_status("WAITING_FOR_RUNNER")
            self.reconsider(instance)
        else:
            attempt.set("errorMessage", "No progress report within reportProgressTimeout")
            self._failed_try(instance, attempt, "TIMEDOUT", 0.0)

    # --- outcomes ---------------------------------------------------------------------------

    def finished(self, task: Task) -> None:
        """SetTaskStatus FINISHED."""
        self._end_lease(task, "FINISHED")
        self._finish_instance(task.attempt.instance, "FINISHED")

    def failed(self, task: Task, status: str, error: dict[str, str]) -> None:
        """SetTaskStatus FAILED or FALSE: retry after retryDelay while retries are left."""
        attempt = task.attempt
        for key, value in error.items():
            attempt.set(key, value)
        self._end_lease(task, status)
        instance = attempt.instance
        if status == "FALSE" and instance.kind == "precondition":
            self.hooks.precondition_false(instance)
            return
        self._failed_try(instance, attempt, "FAILED", instance.retry_delay)

    def finish(self, instance: Instance, status: str) -> None:
        """End *instance* with *status* (a precondition check that timed out, say)."""
        if instance.status not in TERMINAL:
            self._finish_instance(instance, status)

    def retry_later(self, instance: Instance, delay: float) -> None:
        """Offer *instance* again after *delay* seconds (a precondition not met yet)."""
        instance.set_status("WAITING_FOR_RUNNER")
        self._retry_in(instance, delay)

    def _retry_in(self, instance: Instance, delay: float) -> None:
        loop = asyncio.get_running_loop()
        instance.retry_handle = loop.call_later(delay, self._retry_due, instance)
        instance.retry_at = time.time() + delay

    def _end_lease(self, task: Task, status: str) -> None:
        if task.timer is not None:
            task.timer.cancel()
        task.attempt.set_status(status)
        task.attempt.stamp("@actualEndTime")

    def _failed_try(self, instance: Instance, attempt: Attempt, final: str, delay: float) -> None:
        instance.tries_failed += 1
        if instance.tries_failed <= instance.max_retries:
            instance.set_status("WAITING_FOR_RUNNER")
            if delay > 0:
                self._retry_in(instance, delay)
            else:
                self.reconsider(instance)
            return
        for key in ("errorId", "errorMessage", "errorStackTrace"):
            instance.set(key, attempt.fields.get(key, [None])[0])
        self._finish_instance(instance, final)

    def _retry_due(self, instance: Instance) -> None:
        instance.retry_handle = None
        instance.retry_at = 0.0
        self.reconsider(instance)

    def rearm(self) -> None:
        """After a kept state was loaded: leases, retries and waiting work go on."""
        loop = asyncio.get_running_loop()
        for task in self.state.tasks.values():
            task.timer = loop.call_at(max(task.deadline, loop.time()), self._check_lease, task)
        for pipeline in self.state.pipelines.values():
            for instance in pipeline.instances.values():
                if instance.status == "WAITING_FOR_RUNNER" and instance.retry_at:
                    self._retry_in(instance, max(instance.retry_at - time.time(), 0.0))
                elif instance.status == "WAITING_FOR_RUNNER" or (
                    instance.kind == "precondition"
                    and instance.status == "RUNNING"
                    and not instance.is_activity
                ):
                    instance.status = "WAITING_ON_DEPENDENCIES"
                    self.reconsider(instance)

    def close(self) -> None:
        """Answer every waiting poll with no task and pause every timer (the service stops).

        The stopped timers stay on their tasks and instances, so :meth:`reopen` can re-arm them.
        """
        self._closed_at = time.monotonic()
        self.hooks.close()
        for close in self.on_close:
            close()
        self.queues.close()
        for task in self.state.tasks.values():
            if task.timer is not None:
                task.timer.cancel()
        for pipeline in self.state.pipelines.values():
            for instance in pipeline.instances.values():
                if instance.retry_handle is not None:
                    instance.retry_handle.cancel()

    def reopen(self) -> None:
        """Re-arm the timers :meth:`close` paused (the service starts again).

        Time stands still while the service is stopped: no runner could report progress then,
        so a lease, an attempt timeout or a retry delay keeps the time it had left at the stop.
        Without this, instances waiting out a retry delay, and leases, would never move again.
        """
        closed_at, self._closed_at = self._closed_at, None
        if closed_at is None:
            return
        paused = max(0.0, time.monotonic() - closed_at)
        loop = asyncio.get_running_loop()
        for task in self.state.tasks.values():
            if task.timer is not None and task.timer.cancelled() and not task.final_status:
                task.deadline += paused
                task.started += paused
                task.timer = loop.call_at(task.deadline, self._check_lease, task)
        for pipeline in self.state.pipelines.values():
            for instance in pipeline.instances.values():
                handle = instance.retry_handle
                if handle is not None and handle.cancelled():
                    instance.retry_handle = loop.call_at(
                        handle.when() + paused, self._retry_due, instance
                    )

    # --- interventions (SetStatus, DeactivatePipeline, DeletePipeline) ----------------------

    def cancel(self, instance: Instance, status: str = "CANCELED") -> None:
        """Stop *instance*: a waiting one at once, a running one at its runner's next report."""
        if instance.status in TERMINAL:
            return
        attempt = instance.current
        if instance.status == "RUNNING" and attempt is not None and attempt.task is not None:
            attempt.task.cancel_requested = True
            if attempt.task.timer is not None:
                attempt.task.timer.cancel()
            attempt.set_status("CANCELED")
            attempt.stamp("@actualEndTime")
        self._finish_instance(instance, status)

    def rerun(self, instance: Instance) -> None:
        """Run a finished or failed instance again, and the dependents its failure cascaded to."""
        if instance.status not in TERMINAL:
            return
        instance.tries_failed = 0
        for key in ("errorId", "errorMessage", "errorStackTrace", "@actualEndTime"):
            instance.set(key, None)
        instance.set_status("WAITING_ON_DEPENDENCIES")
        self._open(instance)
        self._revive(instance)
        self.reconsider(instance)
        if instance.pipeline.state == "FINISHED":
            instance.pipeline.state = "SCHEDULED"

    def _revive(self, instance: Instance) -> None:
        for dependent in instance.dependents:
            # A data node waits for its producer again; an activity only if the failure had
            # cascaded to it.
            data = not dependent.is_activity and dependent.status in TERMINAL
            if dependent.status == "CASCADE_FAILED" or data:
                dependent.set("@actualEndTime", None)
                dependent.set_status("WAITING_ON_DEPENDENCIES")
                if dependent.is_activity:
                    self._open(dependent)
                self._revive(dependent)

    def mark_finished(self, instance: Instance) -> None:
        """Treat *instance* as FINISHED (its running attempt is cancelled) and move on."""
        if instance.status == "FINISHED":
            return
        if instance.status == "RUNNING":
            self.cancel(instance, "FINISHED")
        else:
            self._finish_instance(instance, "FINISHED")
        self._revive(instance)
        for dependent in instance.dependents:
            self.reconsider(dependent)

    def resume_held(self, pipeline: Pipeline) -> None:
        """After RESUME or re-activation: move paused instances on."""
        for instance in pipeline.current_run:
            if instance.status == "PAUSED":
                instance.set_status("WAITING_ON_DEPENDENCIES")
                self.reconsider(instance)

    def hold(self, pipeline: Pipeline) -> None:
        """After PAUSE or deactivation: waiting instances that are now held show PAUSED."""
        for instance in pipeline.current_run:
            if instance.status in WAITING and self.held(instance) and not instance.retry_handle:
                instance.set_status("PAUSED")


def _run_of(instance: Instance) -> str:
    """The run an instance belongs to: its scheduled start."""
    stamp = instance.fields.get("@scheduledStartTime", [""])[0]
    return stamp if isinstance(stamp, str) else ""
