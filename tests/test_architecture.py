"""The package's shape, measured from its own imports (module level and inside functions).

- no import cycle between modules;
- the layers point one way: core types ← rungs ← engine ← search / calibrate ← commands;
- ``calibrate`` and ``engine`` use nothing of ``search``; only ``composer_automl/adapters/`` imports
  the private internals of hpbandster, Pyro4, Hydra (``hydra._internal``) and Lightning's loops.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from composer_automl.paths import PACKAGE_DIR


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module → the package modules it imports (``from x import name`` counts ``x.name`` when that is a module)."""
    modules = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_import_cycle():
    graph = imports()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " → ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


PACKAGES_BELOW = {
    # package: packages it must not import (arrows only point down)
    "composer_automl.rungs": ("engine", "search", "calibrate", "aggregate", "train"),
    "composer_automl.engine": ("search", "calibrate", "aggregate", "train"),
    "composer_automl.calibrate": ("search",),
    "composer_automl.search": ("calibrate",),
    "composer_automl.adapters": ("engine", "search", "calibrate", "rungs", "train", "mad", "pretrain"),
}


@pytest.mark.parametrize("package, forbidden", PACKAGES_BELOW.items())
def test_arrows_point_down(package, forbidden):
    bad = sorted((m, i) for m, deps in imports().items() if m.startswith(package)
                 for i in deps if i.split(".")[1] in forbidden)
    assert not bad, f"{package} imports from above: {bad}"


PRIVATE = ("hpbandster", "Pyro4", "hydra._internal", "serpent")
"""Libraries whose internals only the adapters touch."""


def test_library_internals_only_in_adapters():
    offenders = []
    for path in PACKAGE_DIR.rglob("*.py"):
        if "adapters" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [(module_name(path), n) for n in names if n.startswith(PRIVATE)]
        if "fit_loop" in path.read_text() or "_should_accumulate" in path.read_text():
            offenders.append((module_name(path), "Lightning loop internals"))
    public_pyro = {("composer_automl.engine.pool", "Pyro4"), ("composer_automl.engine.worker", "Pyro4")}
    assert sorted(set(offenders) - public_pyro) == []  # the pool and the worker use Pyro4's public API
