"""The testing kit's local service, for tests that run a whole worker (see pipeworker.testing).

``serve_in_thread`` runs a :class:`~pipeworker.local.LocalService` on its own loop in a daemon
thread, so sync boto3 calls and async workers can both talk to it; ``local_service`` is the
pytest fixture around it (defined only when pytest is installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeworker.local import LocalConfig, LocalService

__all__ = ["LocalEndpoint", "local_service", "serve_in_thread"]


@dataclass(frozen=True)
class LocalEndpoint:
    """A local service running in a background thread.

    Attributes:
        endpoint_url: ``http://127.0.0.1:PORT``: give it to ``Worker(endpoint_url=...)``.
        region: the region the client uses (any name works locally).
        client: a boto3 Data Pipeline client for it (using it without boto3 installed raises
            an error that says what to install).
        service: the service itself, for its local-only controls (``terminate_runner``,
            ``configure_faults``, ``stats``); call them through ``call_soon`` since it runs on
            another thread's loop, or use the client's API calls.
    """

    endpoint_url: str
    region: str
    client: Any
    service: LocalService
    loop: asyncio.AbstractEventLoop

    def call_soon(self, fn: Callable[[], Any]) -> Any:
        """Run *fn* on the service's own thread and return its result."""
        future = asyncio.run_coroutine_threadsafe(_call(fn), self.loop)
        return future.result(timeout=10)


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


@contextlib.contextmanager
def serve_in_thread(config: LocalConfig | None = None) -> Iterator[LocalEndpoint]:
    """Run a local service in a daemon thread for the duration of the ``with`` block.

    Its own event loop keeps it independent of the test's: sync boto3 calls and async workers
    can both talk to it.
    """
    from pipeworker.local import LocalConfig, LocalService

    service = LocalService(config or LocalConfig(poll_hold=0.5, time_scale=0.001))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    async def main(stop: asyncio.Event) -> None:
        try:
            await service.start()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            await stop.wait()
        finally:
            await service.stop()

    stop_holder: list[asyncio.Event] = []

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        stop = asyncio.Event()
        stop_holder.append(stop)
        loop.run_until_complete(main(stop))
        loop.close()

    thread = threading.Thread(target=thread_main, name="pipeworker-local-service", daemon=True)
    thread.start()
    ready.wait(10)
    if failure:
        raise failure[0]
    client = _boto3_client(service.endpoint_url)
    try:
        yield LocalEndpoint(service.endpoint_url, "us-east-1", client, service, loop)
    finally:
        client.close()
        loop.call_soon_threadsafe(stop_holder[0].set)
        thread.join(10)


class _NoBoto3:
    """Stands in for the boto3 client when boto3 is not installed, and says so when used."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            "local_service.client is a boto3 client, and boto3 is not installed: "
            "pip install pytest pytest-asyncio boto3 (or -e '.[testing]' from a clone)"
        )

    def close(self) -> None:
        pass


def _boto3_client(endpoint_url: str) -> Any:
    try:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config
    except ImportError:
        return _NoBoto3()
    return boto3.client(
        "datapipeline",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30),
    )


try:
    import pytest
except ImportError:  # only the fixture needs pytest

    def local_service(*args: Any, **kwargs: Any) -> Any:
        """The pytest fixture; pytest is not installed, so it says what to install."""
        raise RuntimeError(
            "the local_service fixture needs pytest: pip install pytest pytest-asyncio boto3 "
            "(or -e '.[testing]' from a clone)"
        )

else:

    @pytest.fixture
    def local_service(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[LocalEndpoint]:
        """A local Data Pipeline service for one test, with fake AWS credentials in the environment.

        Yields a :class:`LocalEndpoint`: ``endpoint_url`` for ``Worker(endpoint_url=...)``,
        ``client`` (boto3) to create and inspect pipelines. The credentials are fakes set with
        monkeypatch, so neither the worker nor the client can reach a real AWS account.

        The service runs with a 0.5 s poll hold and definition durations scaled by 0.001 (a
        ``retryDelay`` of "2 Minutes" takes 0.12 s); define a ``local_service_config`` fixture
        returning a :class:`~pipeworker.local.LocalConfig` to change that.
        """
        try:
            config = request.getfixturevalue("local_service_config")
        except pytest.FixtureLookupError:
            config = None
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        with serve_in_thread(config) as endpoint:
            yield endpoint
