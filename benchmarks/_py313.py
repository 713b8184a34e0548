"""A Python 3.13 venv for the peers that need it (``bevault-workers`` declares
``Requires-Python >=3.13``; this project runs on 3.11), built once and cached.

:func:`python` answers the venv's interpreter, or why there is none: no Python 3.13 on this
machine, or the venv or the install failed. The harness then leaves the row out with that reason
in RESULTS.md; it never fails the run.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pipeworker-bench"
VENV = CACHE / "py313"
REQUIREMENTS = ("bevault-workers==0.3.0",)
"""What the venv holds: the peer pins itself to the version its runner was written against."""
_MARKER = VENV / ".pipeworker-installed"


def _candidates() -> list[str]:
    """Where a Python 3.13 may be: ``$PIPEWORKER_BENCH_PYTHON313``, PATH, then pyenv's versions.

    PATH alone is not enough: pyenv's shim for ``python3.13`` is on PATH even when 3.13 is not
    an active pyenv version, and then it only says "command not found".
    """
    found = [os.environ.get("PIPEWORKER_BENCH_PYTHON313", ""), shutil.which("python3.13") or ""]
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found += sorted(glob.glob(f"{root}/versions/3.13*/bin/python3.13"))
    return [path for path in found if path]


def _find_python313() -> str | None:
    for path in _candidates():
        try:
            done = subprocess.run(
                [path, "-c", "import sys; print(sys.version_info >= (3, 13))"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip() == "True":
            return path
    return None


def _run(command: list[str], timeout: float) -> str | None:
    """Run *command*; None when it worked, else the end of what it said."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def python() -> tuple[str | None, str]:
    """The venv's interpreter and ``""``, or None and why there is none."""
    interpreter = VENV / "bin" / "python"
    wanted = "\n".join(REQUIREMENTS)
    if _MARKER.exists() and _MARKER.read_text() == wanted and interpreter.exists():
        return str(interpreter), ""
    base = _find_python313()
    if base is None:
        return None, "no Python 3.13 found (python3.13 on PATH, or PIPEWORKER_BENCH_PYTHON313)"
    # A half-built venv from an interrupted run is rebuilt from scratch.
    shutil.rmtree(VENV, ignore_errors=True)
    error = _run([base, "-m", "venv", str(VENV)], timeout=300)
    if error:
        return None, f"`{base} -m venv {VENV}` failed: {error}"
    pip = [str(interpreter), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    error = _run([*pip, *REQUIREMENTS], timeout=900)
    if error:
        return None, f"`pip install {' '.join(REQUIREMENTS)}` into {VENV} failed: {error}"
    _MARKER.write_text(wanted)
    return str(interpreter), ""
