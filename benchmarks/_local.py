"""The local service in its own process, and the unsigned control calls the harness makes to it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

CONTENT_TYPE = "application/x-amz-json-1.1"


class LocalProcess:
    """``python -m pipeworker.local --port 0 ...`` in a subprocess; a context manager."""

    def __init__(self, *options: str) -> None:
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> LocalProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeworker.local", "--port", "0", *self.options],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("pipeworker.local listening on "):
            self.process.kill()
            self.process.wait(10)
            self.process.stdout.close()
            raise RuntimeError(f"unexpected first line: {line!r}")
        self.url = line.rsplit(" ", 1)[-1]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def call(self, operation: str, body: dict[str, Any], prefix: str = "DataPipeline") -> Any:
        """One unsigned JSON call (setup and statistics only)."""
        request = urllib.request.Request(
            self.url + "/",
            data=json.dumps(body).encode(),
            headers={"X-Amz-Target": f"{prefix}.{operation}", "Content-Type": CONTENT_TYPE},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")

    def calls(self) -> dict[str, int]:
        """Calls answered so far, by operation."""
        return dict(self.call("GetStats", {}, prefix="PipeworkerLocal")["calls"])

    def add_tasks(self, group: str, count: int, tag: str, batch: int = 1000) -> None:
        """On-demand pipelines of *count* independent no-op activities on worker group *group*."""
        made = 0
        while made < count:
            size = min(batch, count - made)
            add_pipeline(self, group, size, f"{tag}-{made}")
            made += size


def add_pipeline(
    local: LocalProcess, group: str, activities: int, tag: str, *, activate: bool = True
) -> str:
    """Create and define a pipeline of independent no-op activities; activate it if asked."""
    default = {
        "id": "Default",
        "name": "Default",
        "fields": [
            {"key": "scheduleType", "stringValue": "ondemand"},
            {"key": "workerGroup", "stringValue": group},
            {"key": "maximumRetries", "stringValue": "0"},
        ],
    }
    objects = [default] + [
        {
            "id": f"A{index}",
            "name": f"A{index}",
            "fields": [
                {"key": "type", "stringValue": "ShellCommandActivity"},
                {"key": "command", "stringValue": f"echo {index}"},
            ],
        }
        for index in range(activities)
    ]
    pipeline_id = local.call("CreatePipeline", {"name": tag, "uniqueId": tag})["pipelineId"]
    local.call("PutPipelineDefinition", {"pipelineId": pipeline_id, "pipelineObjects": objects})
    if activate:
        local.call("ActivatePipeline", {"pipelineId": pipeline_id})
    return str(pipeline_id)
