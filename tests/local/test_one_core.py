"""The local service's one core: one long-poll queue (Data Pipeline's too), one token bucket per
wire operation at each service's described rate, and one dispatcher routing every service by its
description.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from pipeworker._bucket import TokenBucket
from pipeworker.local import LocalConfig, LocalService
from pipeworker.local._longpoll import LongPollQueue
from pipeworker.services._dpdescription import DATA_PIPELINE
from pipeworker.services._sfndescription import STEP_FUNCTIONS
from pipeworker.services._swfdescription import SWF_DESCRIPTION
from tests.helpers import activities, attempts, calls, eventually, start_pipeline

DESCRIPTIONS = [DATA_PIPELINE, SWF_DESCRIPTION, STEP_FUNCTIONS]


class _RawPoll:
    """A PollForTask on a connection of its own, which :meth:`hang_up` closes."""

    def __init__(self, url: str, worker_group: str, hostname: str) -> None:
        self.session = aiohttp.ClientSession()
        self.request = asyncio.ensure_future(self._post(url, worker_group, hostname))

    async def _post(self, url: str, worker_group: str, hostname: str) -> None:
        async with self.session.post(
            url,
            data=json.dumps({"workerGroup": worker_group, "hostname": hostname}),
            headers={
                "X-Amz-Target": "DataPipeline.PollForTask",
                "Content-Type": DATA_PIPELINE.content_type,
            },
        ) as response:
            await response.read()

    async def hang_up(self) -> None:
        self.request.cancel()  # aiohttp closes a connection whose answer was not read
        await asyncio.gather(self.request, return_exceptions=True)
        await self.session.close()


async def _held_poll_hangs_up(service: LocalService, worker_group: str) -> None:
    """A poll on *worker_group* is held by the service, then its client hangs up; returns once
    the service has seen it go."""
    dead = _RawPoll(service.endpoint_url, worker_group, "dead-host")
    await eventually(lambda: service.scheduler.queues.waiting(worker_group) == 1)
    await dead.hang_up()
    await eventually(lambda: service.scheduler.queues.waiting(worker_group) == 0)


@pytest.fixture
async def real_hold(make_service: Any, make_client: Any) -> tuple[LocalService, Any]:
    """A local service with Data Pipeline's real 90 s hold, and a client that outlasts it."""
    service: LocalService = await make_service(poll_hold=DATA_PIPELINE.poll_hold)
    return service, await make_client(service, read_timeout=DATA_PIPELINE.poll_read_timeout)


async def test_a_data_pipeline_poll_whose_client_hung_up_never_gets_the_task(
    real_hold: tuple[LocalService, Any],
) -> None:
    # The real 90 s hold: the dead poll is still waiting on the server when the task becomes
    # runnable, and it is the oldest.
    service, dp = real_hold
    await _held_poll_hangs_up(service, "wg-hangup")
    live = asyncio.create_task(dp.poll_for_task(workerGroup="wg-hangup", hostname="live-host"))
    await eventually(lambda: service.scheduler.queues.waiting("wg-hangup") == 1)

    pipeline_id = await start_pipeline(dp, activities("wg-hangup", "Only"))
    answer = await asyncio.wait_for(live, 10.0)  # at once, not after the 90 s hold

    assert answer["taskObject"]["objects"]
    (attempt,) = await attempts(dp, pipeline_id)  # one attempt: none went to the dead poll
    assert attempt["hostname"] == "live-host"
    assert calls(service, "PollForTask") == 2


async def test_a_task_offered_while_every_poll_is_dead_waits_for_the_next_poll(
    real_hold: tuple[LocalService, Any],
) -> None:
    service, dp = real_hold
    await _held_poll_hangs_up(service, "wg-empty")
    pipeline_id = await start_pipeline(dp, activities("wg-empty", "Queued"))
    assert await attempts(dp, pipeline_id) == []  # queued, not handed to the dead poll

    answer = await asyncio.wait_for(
        dp.poll_for_task(workerGroup="wg-empty", hostname="next-host"), 10.0
    )

    assert answer["taskObject"]["attemptId"].startswith("@Queued_")
    (attempt,) = await attempts(dp, pipeline_id)
    assert attempt["hostname"] == "next-host"


async def test_one_poll_gets_one_task_and_the_rest_wait_for_the_next_poll(
    real_hold: tuple[LocalService, Any],
) -> None:
    _, dp = real_hold
    pipeline_id = await start_pipeline(dp, activities("wg-many", "A", "B", "C"))
    got = set()
    for _ in range(3):
        answer = await asyncio.wait_for(dp.poll_for_task(workerGroup="wg-many"), 10.0)
        got.add(answer["taskObject"]["attemptId"].split("_")[0])
    assert got == {"@A", "@B", "@C"}
    assert len(await attempts(dp, pipeline_id)) == 3


@pytest.mark.parametrize("description", DESCRIPTIONS, ids=lambda d: d.name)
def test_the_local_buckets_throttle_each_service_at_its_described_rate(description: Any) -> None:
    service = LocalService(LocalConfig(rate_limits=True))
    limiter = service.dispatcher.limiter
    now = [0.0]
    limiter.clock = lambda: now[0]  # stopped: the loop below takes no refill
    limiter.reset()
    limits = description.rate_limits_in("us-east-1")
    assert limits, description.name
    for operation, limit in limits.items():
        assert limiter.limits[operation] == limit  # the worker paces itself by the same
        allowed = 0
        while limiter.allow(operation):
            allowed += 1
            assert allowed <= limit.burst, operation
        assert allowed == int(limit.burst), operation  # the burst, then throttled
    now[0] = 1.0  # one second later: each bucket has its own rate's worth again
    for operation, limit in limits.items():
        assert sum(limiter.allow(operation) for _ in range(int(limit.burst))) == int(limit.rate)
    # Each wire operation has a bucket of its own, even where the worker shares one budget
    # (SWF's Respond* calls, Step Functions' SendTaskSuccess/Failure).
    assert set(limits) <= set(limiter.limits)


def test_rate_scale_scales_every_services_refill_but_not_its_burst() -> None:
    service = LocalService(LocalConfig(rate_limits=True, rate_scale=0.5))
    limiter = service.dispatcher.limiter
    for description in DESCRIPTIONS:
        for operation, limit in description.rate_limits_in("us-east-1").items():
            assert limiter.limits[operation].rate == limit.rate * 0.5
            assert limiter.limits[operation].burst == limit.burst


def test_a_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.25) is False  # half a token
    assert bucket.take(0.5) is True  # one token at 2 per second
    assert bucket.seconds_to_token() == pytest.approx(0.5)
    bucket.refill(100.0)
    assert bucket.tokens == 3.0  # never more than the burst


async def _post(url: str, target: str, content_type: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, data=b"{}", headers={"X-Amz-Target": target, "Content-Type": content_type}
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize("description", DESCRIPTIONS, ids=lambda d: d.name)
async def test_every_service_is_routed_by_its_prefix_to_its_own_model(
    service: LocalService, description: Any
) -> None:
    # A poll with its required members missing: routed to the service's handlers and checked
    # against its own botocore model.
    target = f"{description.target_prefix}.{description.poll_operation}"
    status, body = await _post(service.endpoint_url, target, description.content_type)
    assert status == 400
    assert body["__type"].endswith("#ValidationException")
    assert calls(service, description.poll_operation) == 1


async def test_an_operation_of_another_service_is_unknown_under_this_ones_prefix(
    service: LocalService,
) -> None:
    status, body = await _post(
        service.endpoint_url, "SimpleWorkflowService.PollForTask", SWF_DESCRIPTION.content_type
    )
    assert status == 400
    assert body["__type"].endswith("#UnknownOperationException")


async def test_the_long_poll_queue_passes_over_stale_items_and_keeps_the_poll_waiting() -> None:
    queue: LongPollQueue[str] = LongPollQueue()
    queue.offer("k", "stale")
    poll = asyncio.create_task(queue.take("k", 30.0, usable=lambda item: item != "stale"))
    await eventually(lambda: queue.waiting("k") == 1)  # the stale item dropped, still waiting
    assert queue.offer("k", "fresh") is True  # handed straight to the waiting poll
    assert await asyncio.wait_for(poll, 5.0) == "fresh"


async def test_an_item_handed_to_a_cancelled_poll_goes_back_to_the_head_of_the_queue() -> None:
    queue: LongPollQueue[str] = LongPollQueue()
    poll = asyncio.create_task(queue.take("k", 30.0))
    await eventually(lambda: queue.waiting("k") == 1)
    queue.offer("k", "first")
    queue.offer("k", "second")  # queued: the only poll has its item
    poll.cancel()  # before it could answer
    with pytest.raises(asyncio.CancelledError):
        await poll
    assert await queue.take("k", 0.0) == "first"
    assert await queue.take("k", 0.0) == "second"


@pytest.mark.parametrize("description", DESCRIPTIONS, ids=lambda d: d.name)
async def test_each_services_poll_is_throttled_over_http_once_its_own_burst_is_spent(
    make_service: Any, description: Any
) -> None:
    service: LocalService = await make_service(rate_limits=True, rate_scale=1e-4)
    operation = description.poll_operation
    limit = description.rate_limits_in("us-east-1")[operation]
    limiter = service.dispatcher.limiter
    assert all(limiter.allow(operation) for _ in range(int(limit.burst) - 1))
    target = f"{description.target_prefix}.{operation}"

    last = await _post(service.endpoint_url, target, description.content_type)
    throttled = await _post(service.endpoint_url, target, description.content_type)

    assert last[1]["__type"].endswith("#ValidationException")  # the burst's last token
    assert throttled[0] == 400
    assert throttled[1]["__type"].endswith("#ThrottlingException")
    assert service.stats()["throttled"] == {operation: 1}
