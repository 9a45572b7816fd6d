"""The package's import graph: no cycles, and imports that run one way.

Every `import` and `from ... import` in every module is read from the source (those inside
functions too, which a run-time check would miss), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mask2hand

PACKAGE_ROOT = Path(mask2hand.__file__).parent

# Which top-level part of the package each layer holds, lowest first.
FOUNDATION = {"errors", "utils", "version"}
MODEL = {"hand", "image", "render", "nn"}
LEARNING = {"data", "losses", "fit", "train", "evaluation"}
USE = {"inference", "export", "serve"}  # in this order: see the test below
INTERFACE = {"commands", "cli", "__main__", ""}  # "" is mask2hand/__init__.py
TESTING = {"testing"}  # test scenes and reference implementations


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def imported_modules(path: Path, modules: set[str], name: str) -> set[str]:
    """The package modules `path` imports anywhere in its body; `from P import N` counts as P.N
    where that is a module, else as P. Relative imports are resolved against `name`."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in modules:
                    found.add(target)
                elif base in modules:
                    found.add(base)
    found.discard(name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = package_modules()
    names = set(modules)
    return {name: imported_modules(path, names, name) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components of more than one module, or of one that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
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
                    work.append((child, iter(sorted(graph[child]))))
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
                    components.append(sorted(component))
    return components


def part(module: str) -> str:
    """The top-level part of the package a module belongs to ("" for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions(graph):
    # inference.api imports the fitting glue only inside finish_each
    assert "mask2hand.inference.fitting" in graph["mask2hand.inference.api"]


def test_no_import_cycles(graph):
    assert strongly_connected(graph) == []


def test_every_module_belongs_to_a_layer(graph):
    layers = FOUNDATION | MODEL | LEARNING | USE | INTERFACE | TESTING
    assert {part(m) for m in graph} <= layers


def _violations(graph, importers: set[str], forbidden: set[str]) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in graph.items() if part(m) in importers
                  for d in deps if part(d) in forbidden)


def test_foundation_imports_nothing_above_it(graph):
    assert _violations(graph, FOUNDATION, MODEL | LEARNING | USE | INTERFACE) == []


def test_model_pieces_never_import_learning_or_use(graph):
    assert _violations(graph, MODEL, LEARNING | USE | INTERFACE) == []
    # and the flow parameters -> hand -> render: the hand knows no renderer, the renderer no network
    assert _violations(graph, {"hand", "image"}, {"render", "nn"}) == []
    assert _violations(graph, {"render"}, {"nn"}) == []


def test_nothing_below_inference_imports_it(graph):
    # evaluation.fitting measures the user-facing pipeline (predict with fitting), so evaluation sits
    # above inference; data, losses, fitting itself and training never use it
    assert _violations(graph, {"data", "losses", "fit", "train"}, USE | INTERFACE) == []
    assert _violations(graph, USE | {"evaluation"}, INTERFACE) == []


def test_the_use_layer_runs_inference_then_export_then_serve(graph):
    # export writes a Prediction's files and serve answers with both: neither is imported from below
    assert _violations(graph, {"inference"}, {"export", "serve"}) == []
    assert _violations(graph, {"export"}, {"serve"}) == []


# Every folder (and loose module) of the package in one order, lowest first: an import may only
# point to its own part or to one listed before it, so no arrow runs back up between folders.
FLOORS = ("errors", "version", "utils", "image", "hand", "render", "nn", "data", "fit", "losses", "inference",
          "export", "evaluation", "train", "serve", "testing", "commands", "cli", "", "__main__")


def test_every_arrow_between_folders_points_down(graph):
    assert {part(m) for m in graph} <= set(FLOORS)
    floor = {name: level for level, name in enumerate(FLOORS)}
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps if floor[part(d)] > floor[part(m)])
    assert upward == []


def test_the_floor_check_sees_an_arrow_back_up():
    floor = {name: level for level, name in enumerate(FLOORS)}
    assert floor[part("mask2hand.evaluation.network")] > floor[part("mask2hand.data.storage")]
    assert floor[part("mask2hand.inference.result")] < floor[part("mask2hand.export.prediction")]


def test_the_runtime_never_imports_the_testing_helpers(graph):
    runtime = FOUNDATION | MODEL | LEARNING | USE | INTERFACE
    assert _violations(graph, runtime, TESTING) == []


def test_few_loose_modules_at_the_top():
    loose = sorted(p.name for p in PACKAGE_ROOT.glob("*.py"))
    assert len(loose) <= 6, loose
