"""Several worker groups, one of them idle, at the service's real 90 s poll hold.

An idle group's poll holds its slot for the whole hold; before pollers scaled with the work, an
idle group took every slot and stalled the busy one for 90 s at a time. The local service here
keeps Data Pipeline's production hold (90 s); only the definitions' durations are scaled.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeworker import ConfigurationError, Task, Worker
from pipeworker.local import LocalConfig, LocalService
from tests.helpers import CountingPolls, activities, calls, eventually, instances, start_pipeline

pytestmark = pytest.mark.timeout(60)

PRODUCTION_HOLD = LocalConfig(time_scale=0.001)  # poll_hold: the default, 90 s
assert PRODUCTION_HOLD.poll_hold == 90.0


@pytest.mark.parametrize("concurrency", [2, 10])
async def test_an_idle_worker_group_never_starves_a_busy_one(
    make_worker: Callable[..., Worker], concurrency: int
) -> None:
    async with LocalService(PRODUCTION_HOLD) as service:
        counting = CountingPolls()
        worker = make_worker(
            service=counting, endpoint_url=service.endpoint_url, max_concurrency=concurrency
        )
        done: list[str] = []

        @worker.activity("wg-a")
        async def busy(task: Task) -> None:
            done.append(task.id)

        @worker.activity("wg-b")
        async def idle(task: Task) -> None:
            raise AssertionError("wg-b has no work")

        from aiobotocore.session import get_session

        client = get_session().create_client(
            "datapipeline", region_name="us-east-1", endpoint_url=service.endpoint_url
        )
        names = [f"T{n}" for n in range(4 * concurrency)]
        async with client as dp, worker:
            pipeline_id = await start_pipeline(dp, activities("wg-a", *names))

            async def all_finished() -> bool:
                found = await instances(dp, pipeline_id)
                return len(found) == len(names) and all(
                    f["@status"] == "FINISHED" for f in found.values()
                )

            # Far less than one 90 s hold: no task of wg-a waited behind wg-b's poll.
            await eventually(all_finished, within=30)
        assert len(done) == len(names)
        assert counting.peak_by_group["wg-b"] == 1  # the idle group held one poll, and one slot
        assert calls(service, "PollForTask") >= len(names)


async def test_max_concurrency_below_the_number_of_worker_groups_is_refused(
    make_worker: Callable[..., Worker],
) -> None:
    worker = make_worker(max_concurrency=1)

    @worker.activity("wg-one")
    async def one(task: Task) -> None: ...

    with pytest.raises(ConfigurationError, match=r"max_concurrency=1 is below the 2 worker groups"):
        worker.activity("wg-two")(one)
