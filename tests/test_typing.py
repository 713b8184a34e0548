"""What a user's type checker says about their handlers: the worker is generic over its task.

Runs mypy (strict) on a small user module, once; each expected error is pinned to its line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

USER_CODE = textwrap.dedent(
    """
    from pipeworker import ActivityTask, BaseTask, StepFunctionsTask, Task, Worker
    from pipeworker.services.stepfunctions import StepFunctions
    from pipeworker.services.swf import SWF

    dp = Worker()
    swf = Worker(service=SWF(domain="d"))
    sfn = Worker(service=StepFunctions())

    @swf.activity("list")  # error
    async def data_pipeline_handler_on_swf(task: Task) -> None: ...

    @dp.activity("wg-1")  # error
    def step_functions_handler_on_dp(task: StepFunctionsTask) -> None: ...

    @swf.activity("list-2")
    async def swf_handler(task: ActivityTask) -> str:
        return task.activity_id

    @sfn.activity("activity")
    def any_service(task: BaseTask) -> None:
        task.heartbeat()

    @dp.activity("wg-2")
    async def dp_handler(task: Task) -> None:
        await task.heartbeat({"rows": 3})
        task.field("table")

    class Exporter(Worker[Task]):
        @Worker.activity("wg-3")
        async def export(self, task: Task) -> None: ...

        async def on_task_start(self, task: Task) -> None: ...

    reveal_type(swf)
    reveal_type(swf_handler)
    """
)


@pytest.mark.slow
def test_a_handler_typed_for_another_services_task_is_a_type_error(tmp_path: Path) -> None:
    module = tmp_path / "user_app.py"
    module.write_text(USER_CODE)
    stdout, stderr, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), str(module)]
    )
    assert status == 1, stdout + stderr
    errors = {int(line.split(":")[1]): line for line in stdout.splitlines() if ": error:" in line}
    marked = [n for n, line in enumerate(USER_CODE.splitlines(), 1) if line.endswith("# error")]
    assert sorted(errors) == marked, stdout
    assert 'expected "Callable[[ActivityTask]' in errors[marked[0]]
    assert 'expected "Callable[[Task]' in errors[marked[1]]
    notes = [line for line in stdout.splitlines() if "Revealed type" in line]
    assert "Worker[pipeworker.services._swftask.ActivityTask]" in notes[0]
    assert "def (pipeworker.services._swftask.ActivityTask)" in notes[1]
