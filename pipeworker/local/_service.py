"""LocalService: the local Data Pipeline service, started and stopped in-process."""

from __future__ import annotations

import inspect
import socket
from types import TracebackType
from typing import Any

from aiohttp import web

from pipeworker.local import _actions
from pipeworker.local._app import Dispatcher, Handler, ServiceApi
from pipeworker.local._config import LocalConfig
from pipeworker.local._errors import invalid_request
from pipeworker.local._faults import FaultInjector, FaultSettings
from pipeworker.local._http import JsonErrorRunner
from pipeworker.local._persist import GroupSaver, StateStore
from pipeworker.local._pipelines import PipelineApi
from pipeworker.local._queries import QueryApi
from pipeworker.local._ratelimit import RateLimiter
from pipeworker.local._scheduler import Scheduler
from pipeworker.local._sfn import REGION, SfnApi
from pipeworker.local._sigv4 import SignatureVerifier
from pipeworker.local._state import ServiceState
from pipeworker.local._swf import SwfApi
from pipeworker.local._taskrunner import TaskRunnerApi, find_pipeline
from pipeworker.services._dpdescription import DATA_PIPELINE
from pipeworker.services._sfndescription import STEP_FUNCTIONS
from pipeworker.services._swfdescription import SWF_DESCRIPTION

__all__ = ["LocalService"]


class LocalService:
    """The local Data Pipeline service on ``host:port`` (port 0 picks a free one).

    Use it as an async context manager; inside, :attr:`endpoint_url` is the URL to give boto3,
    aiobotocore or ``aws --endpoint-url``::

        async with LocalService(LocalConfig(poll_hold=1.0)) as service:
            client = session.create_client("datapipeline", endpoint_url=service.endpoint_url)

    Args:
        config: time rules, rate limits and faults; the real service's rules by default.
        host: the interface to bind; loopback by default, since nothing here is authenticated.
        port: the TCP port; 0 picks a free one.
    """

    def __init__(
        self, config: LocalConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or LocalConfig()
        self.host = host
        self.port = port
        self.state = ServiceState()
        self.scheduler = Scheduler(self.state, self.config)
        self.scheduler.hooks = _actions.ActionHooks(self.scheduler)
        self._faults = FaultInjector(self.config)
        self._runner: web.AppRunner | None = None
        self.swf = SwfApi(self.config)
        self.sfn = SfnApi(self.config)
        pipelines = self._pipelines = PipelineApi(self.scheduler)
        queries = QueryApi(self.scheduler)
        tasks = TaskRunnerApi(self.scheduler)
        operations: dict[str, Handler] = {
            "ActivatePipeline": pipelines.activate_pipeline,
            "AddTags": pipelines.add_tags,
            "CreatePipeline": pipelines.create_pipeline,
            "DeactivatePipeline": pipelines.deactivate_pipeline,
            "DeletePipeline": pipelines.delete_pipeline,
            "DescribeObjects": queries.describe_objects,
            "DescribePipelines": pipelines.describe_pipelines,
            "EvaluateExpression": tasks.evaluate_expression,
            "GetPipelineDefinition": pipelines.get_pipeline_definition,
            "ListPipelines": pipelines.list_pipelines,
            "PollForTask": tasks.poll_for_task,
            "PutPipelineDefinition": pipelines.put_pipeline_definition,
            "QueryObjects": queries.query_objects,
            "RemoveTags": pipelines.remove_tags,
            "ReportTaskProgress": tasks.report_task_progress,
            "ReportTaskRunnerHeartbeat": tasks.report_task_runner_heartbeat,
            "SetStatus": queries.set_status,
            "SetTaskStatus": tasks.set_task_status,
            "ValidatePipelineDefinition": pipelines.validate_pipeline_definition,
        }
        control: dict[str, Handler] = {
            "ConfigureFaults": self._configure_faults_call,
            "DescribeFiredActions": self._fired_actions_call,
            "GetStats": lambda _: self.stats(),
            "ResetStats": self._reset_stats_call,
            "TerminateTaskRunner": self._terminate_call,
            **self.swf.control(),
        }
        self._store: StateStore | None = None
        self._saver: GroupSaver | None = None
        if self.config.state_path is not None:
            operations = {name: self._saving(handler) for name, handler in operations.items()}
        services = [
            ServiceApi(DATA_PIPELINE, operations),
            ServiceApi(SWF_DESCRIPTION, self.swf.operations()),
            ServiceApi(STEP_FUNCTIONS, self.sfn.operations()),
        ]
        self.dispatcher = Dispatcher(
            services,
            control,
            faults=self._faults,
            # The buckets the worker paces itself by, one per wire operation; the local service
            # answers as one region (its ARNs' region), with that region's buckets.
            limiter=RateLimiter(
                {
                    operation: limit.scaled(self.config.rate_scale)
                    for api in services
                    for operation, limit in api.description.rate_limits_in(REGION).items()
                }
            ),
            rate_limits=self.config.rate_limits,
        )

    @property
    def endpoint_url(self) -> str:
        """``http://HOST:PORT`` of the running service."""
        if self._runner is None:
            raise RuntimeError("LocalService is not running; use 'async with' or start()")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and start answering; :attr:`endpoint_url` is valid afterwards."""
        if self._runner is not None:
            raise RuntimeError("LocalService is already running")
        if self.config.verify_signatures:
            self.dispatcher.verifier = SignatureVerifier(self.config.credentials)
        if self.config.state_path is not None and self._store is None:
            self._store = StateStore(self.config.state_path)
            self._store.load(self.state)
            self._saver = GroupSaver(self._store, self.state)
            self.scheduler.rearm()
            self._pipelines.resume_schedules()
        # No access log: one log line per request would cost more than the request.
        runner = JsonErrorRunner(self.dispatcher.app(), access_log=None, handle_signals=False)
        await runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            await runner.cleanup()
            raise
        self.port = sock.getsockname()[1]
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner
        # After a stop(): the lease, retry and heartbeat timers it paused run again.
        self.scheduler.reopen()
        self.swf.reopen()

    async def stop(self) -> None:
        """Answer waiting polls (with no task), pause timers and close the server.

        A later :meth:`start` serves the same state again, on the same port, and re-arms the
        paused timers with the time they had left.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.scheduler.close()
        self.swf.close()
        self.sfn.close()
        await runner.cleanup()
        if self._store is not None:
            self._store.save(self.state)
            self._store.close()
            self._store = self._saver = None

    async def __aenter__(self) -> LocalService:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _saving(self, handler: Handler) -> Handler:
        """*handler*, saving what it changed to the kept state before its answer goes out."""

        async def run(params: dict[str, Any]) -> Any:
            result: Any = None
            try:
                outcome = handler(params)
                result = (await outcome) if inspect.isawaitable(outcome) else outcome
                return result
            finally:
                if self._saver is not None:
                    touched = {params.get("pipelineId"), (result or {}).get("pipelineId")}
                    await self._saver.save(t for t in touched if isinstance(t, str))

        return run

    # --- local-only controls ----------------------------------------------------------------

    def terminate_runner(self, taskrunner_id: str) -> None:
        """Make heartbeats of *taskrunner_id* answer ``terminate: true`` from now on."""
        self.state.terminating.add(taskrunner_id)

    def configure_faults(
        self,
        *,
        error_rate: float | None = None,
        throttle_rate: float | None = None,
        drop_rate: float | None = None,
        drop_after_fraction: float | None = None,
        latency: tuple[float, float] | None = None,
        rate_limits: bool | None = None,
        seed: int | None = None,
    ) -> None:
        """Change fault injection while running; arguments left out keep their value.

        Args:
            error_rate: fraction of task-runner calls answered InternalServiceError (500).
            throttle_rate: fraction answered ThrottlingException.
            drop_rate: fraction whose connection is dropped without an answer.
            drop_after_fraction: of the dropped calls, the fraction dropped after taking effect.
            latency: (min, max) seconds added to each task-runner call, uniformly drawn.
            rate_limits: switch the account's token buckets on or off (buckets restart full).
            seed: restart the fault RNG from this seed.

        Raises:
            ValueError: a rate outside 0..1, rates adding up above 1, or a bad latency range.
        """
        current = self._faults.settings
        settings = FaultSettings(
            current.error_rate if error_rate is None else error_rate,
            current.throttle_rate if throttle_rate is None else throttle_rate,
            current.drop_rate if drop_rate is None else drop_rate,
            current.latency_min if latency is None else latency[0],
            current.latency_max if latency is None else latency[1],
            current.drop_after_fraction if drop_after_fraction is None else drop_after_fraction,
        )
        settings.validate()
        self._faults.settings = settings
        if seed is not None:
            self._faults.reseed(seed)
        if rate_limits is not None:
            self.dispatcher.rate_limits = rate_limits
            self.dispatcher.limiter.reset()

    def stats(self) -> dict[str, Any]:
        """Counters: ``calls`` per operation, ``faults`` per kind, ``throttled`` per operation
        (rate limits), ``errors`` per error code answered, and the current fault settings."""
        snapshot: dict[str, Any] = self.dispatcher.stats.snapshot()
        settings = self._faults.settings
        snapshot["settings"] = {
            "errorRate": settings.error_rate,
            "throttleRate": settings.throttle_rate,
            "dropRate": settings.drop_rate,
            "dropAfterFraction": settings.drop_after_fraction,
            "latencyMinMs": settings.latency_min * 1000,
            "latencyMaxMs": settings.latency_max * 1000,
            "rateLimits": self.dispatcher.rate_limits,
        }
        return snapshot

    def schedule_activity_task(
        self,
        domain: str,
        activity_type: tuple[str, str],
        *,
        task_list: str | None = None,
        input: str | None = None,
        activity_id: str | None = None,
        heartbeat_timeout: float | str | None = None,
    ) -> str:
        """Schedule an SWF activity task (as a decider would); return its activity id.

        The domain and type must be registered (RegisterDomain, RegisterActivityType); the task
        list and heartbeat timeout default to the type's, and the timeout may be fractional.
        Also ``PipeworkerLocal.ScheduleActivityTask`` on the wire.
        """
        return self.swf.schedule(
            domain=domain,
            activity_type=activity_type,
            task_list=task_list,
            input=input,
            activity_id=activity_id,
            heartbeat_timeout=heartbeat_timeout,
        ).activity_id

    def request_cancel_activity_task(self, domain: str, activity_id: str) -> str:
        """Request an SWF activity task's cancellation; return its status now.

        A task not yet polled is CANCELED at once; a started one is told by its next heartbeat.
        Also ``PipeworkerLocal.RequestCancelActivityTask`` on the wire.
        """
        return self.swf.request_cancel(domain, activity_id).status

    def swf_task_history(self, domain: str | None = None) -> list[dict[str, Any]]:
        """Every SWF activity task scheduled, oldest first: ``status`` (SCHEDULED, STARTED,
        COMPLETED, FAILED, CANCELED, TIMED_OUT), ``result``, ``reason``, ``details``,
        ``heartbeats``, ``lastHeartbeatDetails``, ``cancelRequested``, ``identity``.
        Also ``PipeworkerLocal.DescribeActivityTasks`` on the wire."""
        return self.swf.history(domain)

    def fired_actions(self, pipeline_id: str) -> list[dict[str, Any]]:
        """The actions (onSuccess, onFail, onLateAction) *pipeline_id* fired, oldest first, with
        what each would have sent. Also ``PipeworkerLocal.DescribeFiredActions`` on the wire."""
        return list(_actions.describe(find_pipeline(self.state, pipeline_id))["actions"])

    def _fired_actions_call(self, params: dict[str, Any]) -> dict[str, Any]:
        pipeline_id = params.get("pipelineId")
        if not isinstance(pipeline_id, str) or not pipeline_id:
            raise invalid_request("DescribeFiredActions needs a pipelineId string")
        return dict(_actions.describe(find_pipeline(self.state, pipeline_id)))

    def reset_stats(self) -> None:
        """Zero every counter."""
        self.dispatcher.stats.reset()

    def _terminate_call(self, params: dict[str, Any]) -> dict[str, Any]:
        runner_id = params.get("taskrunnerId")
        if not isinstance(runner_id, str) or not runner_id:
            raise invalid_request("TerminateTaskRunner needs a taskrunnerId string")
        self.terminate_runner(runner_id)
        return {}

    def _reset_stats_call(self, params: dict[str, Any]) -> dict[str, Any]:
        self.reset_stats()
        return {}

    def _configure_faults_call(self, params: dict[str, Any]) -> dict[str, Any]:
        known = {
            "errorRate",
            "throttleRate",
            "dropRate",
            "dropAfterFraction",
            "latencyMinMs",
            "latencyMaxMs",
            "rateLimits",
            "seed",
        }
        unknown = set(params) - known
        if unknown:
            raise invalid_request(f"ConfigureFaults: unknown members {sorted(unknown)}")
        latency = None
        if "latencyMinMs" in params or "latencyMaxMs" in params:
            low = params.get("latencyMinMs", params.get("latencyMaxMs"))
            high = params.get("latencyMaxMs", low)
            latency = (_number(low, "latencyMinMs") / 1000, _number(high, "latencyMaxMs") / 1000)
        rate_limits = params.get("rateLimits")
        if rate_limits is not None and not isinstance(rate_limits, bool):
            raise invalid_request("ConfigureFaults: rateLimits must be a boolean")
        seed = params.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise invalid_request("ConfigureFaults: seed must be an integer")
        try:
            self.configure_faults(
                error_rate=_optional(params, "errorRate"),
                throttle_rate=_optional(params, "throttleRate"),
                drop_rate=_optional(params, "dropRate"),
                drop_after_fraction=_optional(params, "dropAfterFraction"),
                latency=latency,
                rate_limits=rate_limits,
                seed=seed,
            )
        except ValueError as exc:
            raise invalid_request(f"ConfigureFaults: {exc}") from exc
        return {}


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_request(f"ConfigureFaults: {name} must be a number")
    return float(value)


def _optional(params: dict[str, Any], name: str) -> float | None:
    return _number(params[name], name) if name in params else None
