"""The benchmark harness runs end to end with tiny counts, so it cannot rot unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.run import main


@pytest.mark.timeout(180)  # every row starts a process; a busy 2-core machine needs the room
def test_the_benchmark_harness_runs_and_writes_its_table_and_chart(tmp_path: Path) -> None:
    assert main(["--smoke", "--output", str(tmp_path)]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    for title in ("Throughput", "Scale", "Pickup latency", "20 ms", "Start-up", "Endurance"):
        assert title in text
    assert "| 8 | pipeworker |" in text
    for name in (
        "pipeworker SWF",
        "pipeworker SWF (aiobotocore)",
        "pipeworker Step Functions",
        "pipeworker Step Functions (aiobotocore)",
    ):
        assert f"| 8 | {name} |" in text
        row = next(line for line in text.splitlines() if line.startswith(f"| 8 | {name} |"))
        assert "x Data Pipeline" in row
    try:
        import matplotlib  # noqa: F401 (the chart needs the bench extra)
    except ImportError:
        assert "No chart: matplotlib is not installed" in text
    else:
        assert (tmp_path / "chart.png").stat().st_size > 1000


def test_a_quick_run_never_overwrites_the_committed_results() -> None:
    from benchmarks import run

    committed = (run.RESULTS / "RESULTS.md").read_bytes()
    assert main(["--smoke", "--only", "startup"]) == 0
    assert (run.RESULTS / "RESULTS.md").read_bytes() == committed
