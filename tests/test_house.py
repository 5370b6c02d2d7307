"""The house's shape, checked: what the API and the relay load, module sizes, no import cycles, the map.

The import rules themselves are import-linter contracts (`pyproject.toml`, run by `lint-imports` in CI);
these check what the contracts cannot: what a process really loads, and that the map in
`docs/architecture.md` names every room.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
OUR_PACKAGES = ("schemas", "workers", "service", "evaluation", "bench")
MAX_MODULE_LINES = 450
MAX_WORKERS_MODULES = 5


def _workers_modules_after_import(module: str) -> list[str]:
    """The `workers.*` modules in a fresh interpreter's `sys.modules` once `module` is imported."""
    code = (
        f"import json, sys; import {module}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('workers.'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("module", ["service.api", "service.jobs.relay"], ids=["api", "relay"])
def test_the_api_and_the_relay_load_no_pipeline_and_no_engine(module: str) -> None:
    loaded = _workers_modules_after_import(module)
    assert len(loaded) <= MAX_WORKERS_MODULES, loaded
    assert not [m for m in loaded if m.startswith(("workers.pipeline", "workers.engines"))], loaded
    assert "workers.tasks" not in loaded and "workers.jobs" not in loaded, loaded


def test_no_module_of_ours_is_over_the_line_limit() -> None:
    sizes = {
        str(path.relative_to(REPO)): len(path.read_text(encoding="utf-8").splitlines())
        for package in OUR_PACKAGES
        for path in (REPO / package).rglob("*.py")
    }
    assert len(sizes) > 100  # the walk found the tree
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_our_modules() -> None:
    """Function-level (lazy) imports count: a cycle hidden in a function still ties the modules together."""
    graph = grimp.build_graph(*OUR_PACKAGES, cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert len(edges) > 100
    assert _cycles(edges) == []


def _rooms() -> list[str]:
    """Every package of ours and every module directly inside `schemas`, `workers`, `service` and their
    packages, as a dotted name (what a newcomer must be able to find on the map)."""
    names = []
    for package in OUR_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            elif parts[-1].startswith("_"):
                continue
            names.append(".".join(parts))
    return names


def test_the_architecture_map_names_every_room() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    rooms = _rooms()
    assert "service.jobs.submit" in rooms
    missing = [name for name in rooms if f"`{name}`" not in text and f"`{name.replace('.', '/')}" not in text]
    assert missing == []
