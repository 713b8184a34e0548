"""Both transports send through the proxy the environment names (HTTP_PROXY, HTTPS_PROXY)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipeworker import Task, Worker
from pipeworker.local import LocalService
from tests.helpers import activities, attempts, eventually, start_pipeline


async def test_calls_go_through_the_proxy_of_the_environment(
    service: LocalService,
    dp: Any,
    make_worker: Callable[..., Worker],
    proxy: tuple[int, list[tuple[str, str | None]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "")
    worker = make_worker()

    @worker.activity("wg-proxied")
    async def handle(task: Task) -> None: ...

    pipeline_id = await start_pipeline(dp, activities("wg-proxied", "Through"))
    async with worker:

        async def finished() -> bool:
            found = await attempts(dp, pipeline_id)
            return bool(found) and found[0]["@status"] == "FINISHED"

        await eventually(finished)
    service_host = service.endpoint_url.split("//", 1)[1]
    assert seen
    assert {host for host, _ in seen} == {service_host}
