"""A Worker checks its settings and registrations before anything is sent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pipeworker import SWF, ConfigurationError, DataPipeline, Task, Worker


async def noop(task: Task) -> None:
    """A handler that does nothing."""


def test_defaults_are_normalised_once() -> None:
    worker = Worker()
    config = worker.config
    assert config.max_concurrency == 10
    assert config.progress_interval == 60.0
    assert config.heartbeat_interval == 900.0
    assert config.shutdown_grace == 25.0
    assert config.taskrunner_id.startswith("pipeworker-")
    assert config.hostname
    assert isinstance(config.service, DataPipeline)


def test_each_worker_gets_its_own_runner_id() -> None:
    assert Worker().config.taskrunner_id != Worker().config.taskrunner_id


def test_durations_accept_seconds_and_timedelta() -> None:
    worker = Worker(
        progress_interval=timedelta(seconds=30),
        heartbeat_interval=timedelta(minutes=5),
        shutdown_grace=0,
    )
    assert worker.config.progress_interval == 30.0
    assert worker.config.heartbeat_interval == 300.0
    assert worker.config.shutdown_grace == 0.0


def test_config_is_frozen() -> None:
    worker = Worker()
    with pytest.raises(AttributeError):
        worker.config.max_concurrency = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency must be at least 1"),
        ({"max_concurrency": 2.5}, "max_concurrency must be an int"),
        ({"progress_interval": 0}, "progress_interval must be > 0 seconds"),
        ({"heartbeat_interval": -1}, "heartbeat_interval must be > 0 seconds"),
        ({"shutdown_grace": "30"}, "shutdown_grace must be a number of seconds or a timedelta"),
        ({"progress_interval": 290}, "is not shorter than the 300s datapipeline lease"),
        ({"taskrunner_id": ""}, "taskrunnerId: 0 characters, the minimum is 1"),
        ({"hostname": "h" * 1025}, "hostname: 1025 characters, the maximum is 1024"),
        ({"hostname": "bad\x00host"}, "hostname: contains characters outside the pattern"),
    ],
)
def test_bad_settings_fail_at_construction_naming_the_setting(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        Worker(**kwargs)  # type: ignore[arg-type]


def test_progress_interval_is_checked_against_the_services_lease() -> None:
    # A shorter lease (pipelines with a short reportProgressTimeout) tightens the check.
    with pytest.raises(ConfigurationError, match="120s datapipeline lease"):
        Worker(service=DataPipeline(lease=timedelta(minutes=2)), progress_interval=110)
    assert Worker(service=DataPipeline(lease=120), progress_interval=100)


def test_decorator_returns_the_function_unchanged_and_registers_it() -> None:
    worker = Worker()
    decorated = worker.activity("wg-1")(noop)
    assert decorated is noop
    (activity,) = worker.activities.values()
    assert activity.queue == "wg-1"
    assert activity.type is None
    assert activity.handler is noop
    assert activity.is_async


def test_plain_functions_are_registered_as_sync() -> None:
    worker = Worker()

    @worker.activity("wg-1")
    def handle(task: Task) -> None:
        pass

    assert not worker.activities["wg-1", None].is_async


def test_registries_belong_to_their_worker() -> None:
    first, second = Worker(), Worker()
    first.activity("wg-1")(noop)
    assert second.activities == {}


@pytest.mark.parametrize(
    ("queue", "message"),
    [
        ("", "activity noop: invalid worker group '': a worker group must not be empty"),
        ("w" * 1025, "workerGroup: 1025 characters, the maximum is 1024"),
        ("tab\x07", "contains characters outside the pattern"),
    ],
)
def test_bad_worker_group_fails_at_decoration_naming_the_activity(queue: str, message: str) -> None:
    worker = Worker()
    with pytest.raises(ConfigurationError, match="activity noop") as info:
        worker.activity(queue)(noop)
    assert message in str(info.value)


def test_duplicate_registration_names_both_handlers() -> None:
    worker = Worker()
    worker.activity("wg-1")(noop)

    async def other(task: Task) -> None:
        pass

    with pytest.raises(ConfigurationError, match="already handled by noop"):
        worker.activity("wg-1")(other)
    # A handler limited to one activity type may share the worker group.
    worker.activity("wg-1", type="ShellCommandActivity")(other)
    assert set(worker.activities) == {("wg-1", None), ("wg-1", "ShellCommandActivity")}


def test_handler_that_cannot_take_a_task_is_refused() -> None:
    worker = Worker()

    async def no_arguments() -> None:
        pass

    async def generator(task: Task):  # type: ignore[no-untyped-def]
        yield

    takes_one = r"activity .*no_arguments: a handler takes exactly one argument, the task"
    with pytest.raises(ConfigurationError, match=takes_one):
        worker.activity("wg-1")(no_arguments)
    with pytest.raises(ConfigurationError, match="not a generator"):
        worker.activity("wg-1")(generator)


async def test_serving_without_activities_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="no activity is registered"):
        await Worker().serve()


async def test_missing_credentials_fail_at_start_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    worker = Worker(region="us-east-1", endpoint_url="http://127.0.0.1:9")
    worker.activity("wg-1")(noop)
    with pytest.raises(ConfigurationError, match="no AWS credentials found"):
        await worker.serve()


async def test_missing_region_fails_at_start_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    worker = Worker()
    worker.activity("wg-1")(noop)
    with pytest.raises(ConfigurationError, match="no AWS region"):
        async with worker:
            pass


def test_repr_names_the_runner_and_its_worker_groups() -> None:
    worker = Worker(taskrunner_id="runner-1")
    worker.activity("wg-b")(noop)
    worker.activity("wg-a", type="CopyActivity")(noop)
    assert repr(worker) == "<Worker 'runner-1' worker groups=['wg-a', 'wg-b']>"


def test_the_transport_switch_from_the_service_the_flag_and_the_environment() -> None:
    from pipeworker.cli import apply_settings, parse_options

    assert DataPipeline().transport == "lean"
    assert DataPipeline(transport="aiobotocore").transport == "aiobotocore"
    with pytest.raises(ConfigurationError, match="transport='http'"):
        DataPipeline(transport="http")  # type: ignore[arg-type]
    worker = Worker(service=DataPipeline(lease=200), region="us-east-1")
    apply_settings(worker, parse_options(["app:w", "--transport", "aiobotocore"], {}))
    service = worker.config.service
    assert isinstance(service, DataPipeline)
    assert (service.transport, service.lease_seconds) == ("aiobotocore", 200)
    apply_settings(worker, parse_options(["app:w"], {"PIPEWORKER_TRANSPORT": "lean"}))
    assert worker.config.service.transport == "lean"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "service",
    [DataPipeline(lease=120, poll_read_timeout=100), SWF(domain="orders", identity="me")],
    ids=["datapipeline", "swf"],
)
def test_with_transport_copies_every_other_setting_and_checks_the_name(service: Any) -> None:
    switched = service.with_transport("aiobotocore")
    assert switched.transport == "aiobotocore"
    assert service.transport == "lean"  # the original is left as it was
    assert {k: v for k, v in vars(switched).items() if k != "transport"} == {
        k: v for k, v in vars(service).items() if k != "transport"
    }
    with pytest.raises(ConfigurationError, match="transport='grpc'"):
        service.with_transport("grpc")
