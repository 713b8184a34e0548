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
    # The profile names where the CPU goes, and its shares add up to the whole.
    profile = text.split("### Where a no-op task's CPU goes", 1)[1].split("###", 1)[0]
    shares = [
        float(line.split("|")[2].strip(" %")) for line in profile.splitlines()[4:] if "%" in line
    ]
    assert "aiohttp" in profile
    assert "| pipeworker |" in profile
    assert sum(shares) == pytest.approx(100, abs=1)
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


def test_compare_tells_two_runs_that_agree_from_two_that_do_not(tmp_path: Path) -> None:
    from benchmarks.compare import main as compare

    table = "### Throughput\n\n| concurrency | runner | tasks/s | CPU |\n|---|---|---|---|\n"
    first, near, far = (tmp_path / name for name in ("first.md", "near.md", "far.md"))
    first.write_text(table + "| 32 | pipeworker | 850 (700-900) | 1.16 |\n")
    near.write_text(table + "| 32 | pipeworker | 820 (800-880) | 1.20 |\n")
    far.write_text(table + "| 32 | pipeworker | 600 (580-650) | 1.50 |\n")
    assert compare([str(first), str(near)]) == 0
    assert compare([str(first), str(far)]) == 1
