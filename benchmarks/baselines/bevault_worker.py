"""The PyPI ``bevault-workers`` (0.3.0), run as its README says: a ``BaseWorker`` subclass in a
``workers`` package, ``WorkerManager(workers_module=...).start()``, settings from the
``stepFunctions__*`` environment variables. It needs Python >= 3.13, so the harness runs this file
with the interpreter of its own venv (:mod:`benchmarks.py313`); it imports nothing of pipeworker.

How it runs, unchanged: ``stepFunctions__DefaultMaxConcurrency`` forked processes per worker
(here the benchmark's concurrency), each one blocking GetActivityTask at a time, a heartbeat
thread per task (one SendTaskHeartbeat at once, then every ``DefaultHeartbeatDelay``, the
README's 5 s), and a ``multiprocessing.Manager`` process for its store registry. The manager
calls CreateActivity itself, on the worker's ``name`` (the run's worker group; an empty
``EnvironmentName`` adds no prefix), which answers the ARN the harness created.

What bounds its rate: once the handler returns, the loop joins the task's heartbeat thread with a
1 s timeout while that thread sleeps out the heartbeat delay, so each task holds its process for
about 1 s whatever the handler does: about ``concurrency`` tasks per second at best. Its read
timeout is 60 s, equal to AWS's poll hold (harmless here: the harness's service holds 1 s).

Measured: a task counts once its SendTaskSuccess answered, counted through the Step Functions
client the library builds (its ``create_stepfunctions_client`` wrapped, as
``sfn_activity_worker`` wraps the client it hands over). ``cpu_seconds`` is this process plus
every process it started (workers, the Manager), read from ``/proc`` before they are killed,
since they never end on their own. ``duplicates`` counts tokens handed to the handler more than
once, written by each worker process to one shared file.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.baselines._common import cpu_seconds, parse_args

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _descendants(root: int) -> list[int]:
    """Every live process under *root*, read from ``/proc`` (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _process_cpu(pid: int) -> float:
    """User plus system CPU of *pid*, its waited-for children included."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime, stime, cutime, cstime are fields 14-17 of stat(5); fields[0] is field 3.
    return sum(int(value) for value in fields[11:15]) / _TICKS


def _write_workers_package(root: Path, activity: str) -> None:
    """The README's layout: a ``workers`` package with one ``BaseWorker`` module."""
    package = root / "bench_workers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "noop_worker.py").write_text(
        "import os\n"
        "from bevault_workers import BaseWorker\n\n\n"
        "class NoopWorker(BaseWorker):\n"
        f"    name = {activity!r}\n\n"
        "    def handle(self, input_data):\n"
        "        # One short O_APPEND write per task: the run-twice count.\n"
        "        os.write(TOKENS, (self.current_task_token + '\\n').encode())\n"
        "        return {'status': 'success'}\n\n\n"
        "TOKENS = os.open(os.environ['BENCH_TOKENS_FILE'], os.O_WRONLY | os.O_APPEND)\n"
    )


def _write_logging_config(root: Path) -> Path:
    """The README's ``logging_config.json``, its log file moved from /var/logs to *root*."""
    path = root / "logging_config.json"
    quiet = {name: "Warning" for name in ("urllib3", "boto3", "botocore", "paramiko", "requests")}
    writers = [{"name": "Console"}, {"name": "File", "args": {"path": str(root / "bevault.log")}}]
    minimum = {"default": "Information", "override": quiet}
    path.write_text(json.dumps({"logging": {"minimumLevel": minimum, "writeTo": writers}}))
    return path


def main() -> None:
    # Installed only in the Python 3.13 venv (benchmarks._py313), never in the project's.
    from bevault_workers import WorkerManager  # type: ignore[import-not-found]

    args = parse_args(__doc__ or "")
    scratch = Path(tempfile.mkdtemp(prefix="bevault-bench-"))
    tokens = scratch / "tokens"
    tokens.touch()
    _write_workers_package(scratch, args.worker_group)
    sys.path.insert(0, str(scratch))
    os.environ.update(
        {
            "BENCH_TOKENS_FILE": str(tokens),
            "STORE_CONFIG": "[]",  # no stores: nothing to load from a config.json
            "stepFunctions__serviceUrl": args.endpoint_url,
            "stepFunctions__awsRegion": args.region,
            "stepFunctions__authenticationKey": os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
            "stepFunctions__authenticationSecret": os.environ.get("AWS_SECRET_ACCESS_KEY", "bench"),
            "stepFunctions__DefaultMaxConcurrency": str(args.concurrency),
            "stepFunctions__DefaultHeartbeatDelay": "5",
            "stepFunctions__EnvironmentName": "",
            "logging_config_path": str(_write_logging_config(scratch)),
        }
    )
    # Shared with the forked workers (the start method is fork on Linux under 3.13).
    succeeded = multiprocessing.Value("i", 0)
    finished = multiprocessing.Event()
    build_client = WorkerManager.create_stepfunctions_client

    def counted_client(endpoint_url_override: str | None = None) -> Any:
        client = build_client(endpoint_url_override)
        send_task_success = client.send_task_success

        def counted_success(**params: Any) -> Any:
            answer = send_task_success(**params)
            with succeeded.get_lock():
                succeeded.value += 1
                if succeeded.value >= args.tasks:
                    finished.set()
            return answer

        client.send_task_success = counted_success
        return client

    WorkerManager.create_stepfunctions_client = staticmethod(counted_client)
    # Its log lines (one per task) go to fd 1 from every process: keep the real stdout for the
    # report and send the rest to /dev/null.
    report = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the process's life)
    me = os.getpid()

    def watch() -> None:
        finished.wait()
        seconds = time.perf_counter() - wall
        others = _descendants(me)
        cpu = cpu_seconds() - cpu0 + sum(_process_cpu(pid) for pid in others)
        for pid in others:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        seen = tokens.read_text().split()
        result = {
            "tasks": args.tasks,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "duplicates": len(seen) - len(set(seen)),
        }
        os.write(report, (json.dumps(result) + "\n").encode())
        shutil.rmtree(scratch, ignore_errors=True)
        os._exit(0)  # its manager loop never ends on its own

    # The clocks start right before the manager: its processes and their clients count.
    wall, cpu0 = time.perf_counter(), cpu_seconds()
    threading.Thread(target=watch, daemon=True).start()
    WorkerManager(workers_module="bench_workers").start()


if __name__ == "__main__":
    main()
