"""The README's in-memory example ("A whole worker in memory"), run against its complete worker."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _block(after: str) -> str:
    section = README[README.index(after) :]
    block = section[section.index("```python\n") + len("```python\n") :]
    return block[: block.index("```")]


async def test_the_in_memory_example_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    app = types.ModuleType("app")
    exec(compile(_block("## A complete worker"), "app.py", "exec"), app.__dict__)
    monkeypatch.setitem(sys.modules, "app", app)
    namespace: dict[str, Any] = {}
    example = _block("### A whole worker in memory")
    exec(compile(example, "test_app.py", "exec"), namespace)
    await namespace["test_export_survives_a_failing_status_call"]()
