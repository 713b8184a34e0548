"""The README's first command, as a newcomer runs it: a fresh environment, no AWS account.

The command is read from the README's first ``sh`` block, so the README cannot drift from it.
Here the fresh environment is a new venv with pipeworker installed by ``pip install -e .``; its
dependencies (rich, of the ``local`` extra, too) come from the test's own environment through a
``.pth`` file, so the test needs no network for them and stays fast. Its output is a pipe, so the
display is plain lines. The command then runs with an empty environment and HOME: no AWS
credentials, no region, no config files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def readme_first_command() -> list[str]:
    """The pipeworker part of the README's first shell command, as argv."""
    text = (REPO / "README.md").read_text()
    block = text[text.index("```sh\n") + len("```sh\n") :]
    command = block[: block.index("```")].strip()
    assert "pip install -e '.[local]'" in command
    last = command.split("&&")[-1].split()
    assert last[:3] == ["python", "-m", "pipeworker"], command
    return last[1:]


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies (and pip itself) from this environment; pipeworker is installed below.
    Path(purelib, "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return python


@pytest.mark.timeout(90)
def test_readme_first_command(fresh_python: Path, tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    found = subprocess.run(
        [fresh_python, "-c", "import pipeworker; print(pipeworker.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert found.stdout.strip() == str(REPO / "pipeworker" / "__init__.py"), found.stderr
    assert Path(sys.executable) != fresh_python

    result = subprocess.run(
        [fresh_python, *readme_first_command()],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("local Data Pipeline service at http://127.0.0.1:")
    assert "tasks: 0 waiting, 0 running, 4 finished, 0 failed" in result.stdout
    assert lines[-1].startswith("pipeline finished in ")
    assert lines[-1].endswith("4 finished, 0 failed, 0 not run")
    assert "Hello, Europe!" in result.stderr
    assert "Traceback" not in result.stderr
    # The fake credentials set for the local service are never shown.
    assert "AKIDLOCALFAKE" not in result.stdout + result.stderr
    assert "local-fake-secret" not in result.stdout + result.stderr
