"""A 200 MiB staged file goes down and up again while the runner's memory stays flat.

Opt-in (13-20 s here, most of it moto storing and serving 400 MiB):
``PIPEWORKER_BIG_FILE_TEST=1 pytest tests/taskrunner/test_big_file.py -s`` prints the runner's
peak RSS beside its peak after a trivial task.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from pipeworker.testing import LocalEndpoint
from tests.taskrunner.conftest import Launcher, start_pipeline, wait_done, wire
from tests.taskrunner.test_end_to_end import default, runner_args

MIB = 1024 * 1024
SIZE_MIB = 200
GROWTH_LIMIT_MIB = 40
"""How much the 200 MiB may add to the runner's peak RSS after a trivial task: a few 8 MiB
parts and 1 MiB chunks in flight, nothing near the file's size."""

pytestmark = pytest.mark.skipif(
    os.environ.get("PIPEWORKER_BIG_FILE_TEST") != "1",
    reason="opt-in (13-20 s): set PIPEWORKER_BIG_FILE_TEST=1",
)


def _write(path: Path) -> list[bytes]:
    block = os.urandom(MIB - 16)
    samples = []
    with path.open("wb") as out:
        for index in range(SIZE_MIB):
            chunk = f"{index:015d}|".encode() + block
            out.write(chunk)
            if index in (0, SIZE_MIB // 2, SIZE_MIB - 1):
                samples.append(chunk)
    return samples


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (``VmHWM``), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match, status
    return int(match.group(1)) / 1024


def test_a_200_mib_staged_file_streams_through_with_flat_memory(
    local: LocalEndpoint, s3: Any, launcher: Launcher, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    first, middle, last = _write(source)
    s3.upload_file(
        str(source),
        "data-bucket",
        "big/in/big.bin",
        Config=TransferConfig(multipart_chunksize=16 * MIB),
    )
    source.unlink()
    runner = launcher.start(*runner_args(local))
    warm = start_pipeline(
        local.client, [default(), wire("Warm", type="ShellCommandActivity", command="echo hi")]
    )
    assert wait_done(local.client, warm, ["Warm"], runner) == {"Warm": "FINISHED"}
    baseline = peak_rss_mib(runner.pid)
    pipeline_id = start_pipeline(
        local.client,
        [
            default(),
            wire("In", type="S3DataNode", directoryPath="s3://data-bucket/big/in"),
            wire("Out", type="S3DataNode", directoryPath="s3://data-bucket/big/out"),
            wire(
                "Copy",
                type="ShellCommandActivity",
                stage="true",
                input={"ref": "In"},
                output={"ref": "Out"},
                command="cp ${INPUT1_STAGING_DIR}/big.bin ${OUTPUT1_STAGING_DIR}/copy.bin",
            ),
        ],
    )
    assert wait_done(local.client, pipeline_id, ["Copy"], runner)["Copy"] == "FINISHED"
    peak = peak_rss_mib(runner.pid)
    runner.terminate()
    print(
        f"\nrunner peak RSS: {baseline:.1f} MiB after a trivial task, {peak:.1f} MiB after "
        f"staging a {SIZE_MIB} MiB file in and out"
    )

    head = s3.head_object(Bucket="data-bucket", Key="big/out/copy.bin")
    assert head["ContentLength"] == SIZE_MIB * MIB
    for index, expected in ((0, first), (SIZE_MIB // 2, middle), (SIZE_MIB - 1, last)):
        start = index * MIB
        got = s3.get_object(
            Bucket="data-bucket", Key="big/out/copy.bin", Range=f"bytes={start}-{start + MIB - 1}"
        )["Body"].read()
        assert got == expected
    assert peak - baseline < GROWTH_LIMIT_MIB, f"peak RSS {baseline:.1f} -> {peak:.1f} MiB"
