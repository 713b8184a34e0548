"""The package's shape: no import cycles (lazy imports included) and modules of one concept.

Imports under ``if TYPE_CHECKING:`` are not run, so they do not count; every other ``import``,
at module level or inside a function, does.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeworker"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def known(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            for alias in node.names:
                if alias.name.startswith("pipeworker"):
                    found.add(alias.name)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            module = node.module or ""
            if node.level:
                base = name.split(".")
                keep = len(base) - node.level + (1 if is_package else 0)
                module = ".".join(base[:keep] + ([module] if module else []))
            if not module.startswith("pipeworker"):
                return
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.add(candidate if candidate in modules else module)

    Visitor().visit(ast.parse(path.read_text()))
    return {target for target in map(known, found) if target and target != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_module_imports_one_that_imports_it_back() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # The package's __init__ loads public names lazily by name; it is everyone's parent.
    graph = {name: targets - {"pipeworker"} for name, targets in graph.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


CORE = [
    "pipeworker._supervisor",
    "pipeworker._scope",
    "pipeworker._shutdown",
    "pipeworker._outcome",
    "pipeworker._threads",
    "pipeworker._retry",
    "pipeworker._pacing",
    "pipeworker._lease",
    "pipeworker._events",
    "pipeworker._metrics",
    "pipeworker._health",
    "pipeworker.task",
]


def test_the_core_names_no_service() -> None:
    # Everything the core imports, transitively, is the core itself or the services'
    # interface (services.base): never a service, and never aiobotocore.
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    reached: set[str] = set()
    pending = list(CORE)
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        pending.extend(graph[name] - {"pipeworker"})
    services = {name for name in reached if name.startswith("pipeworker.services.")}
    assert services <= {"pipeworker.services.base"}
    for name in reached:
        assert "aiobotocore" not in modules[name].read_text(), name


def test_the_core_and_the_service_interface_hold_no_services_shape() -> None:
    # Not only no imports: no service's concepts in the code itself (docstrings and comments
    # may name services as examples). Data Pipeline's pipelines, attempts, objects and fields
    # live in services/_dptask.py; SWF's workflows in services/_swftask.py.
    words = ("pipeline", "attempt_id", "workflow", "worker_group", "fields", "objects")
    modules = _modules()
    found = {}
    for name in [*CORE, "pipeworker.services.base"]:
        tree = ast.parse(modules[name].read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
        bad = sorted(n for n in names if any(word in n.lower() for word in words))
        if bad:
            found[name] = bad
    assert found == {}
