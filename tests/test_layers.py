"""The engine's import graph: no circle, no import from a lower layer to a higher one, no private name
imported from another module. Read from the source (every import, type-only and function-level ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "turtle_core"

# Lowest first. A module may import from its own package and from lower layers only; packages that
# share a layer are independent of each other.
LAYERS: list[set[str]] = [
    {"base"},  # atomic, paths, progress, constants, names, jobs, pca: plumbing every layer may use
    {"ingest"},
    {"embedding"},
    {"discovery", "maps", "export", "cleaning"},
    {"state"},
    {"operations"},
    {"cli"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    if module == "turtle_core.__main__":
        return "cli"
    return parts[1] if len(parts) > 2 else "base"


def layer_of(package: str) -> int:
    return next(index for index, names in enumerate(LAYERS) if package in names)


def engine_modules() -> dict[str, Path]:
    return {module_name(path): path for path in ENGINE.rglob("*.py")}


def imports_of(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import of `module` that lands in the engine."""
    found: list[tuple[str, str | None]] = []
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    found.append((f"{base}.{alias.name}", None))
                elif base in known:
                    found.append((base, alias.name))
    return [(target, name) for target, name in found if target != module]


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    known = engine_modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    private: list[str] = []
    for module, path in known.items():
        for target, name in imports_of(module, path, known):
            graph[module].add(target)
            if name is not None and name.startswith("_"):
                private.append(f"{module} imports {name} from {target}")
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_engine_has_no_import_circle() -> None:
    graph, _ = import_graph()
    assert len(graph) > 50  # the walk found the engine
    assert cycles(graph) == []


def test_no_import_goes_up_a_layer_or_across_a_layer() -> None:
    graph, _ = import_graph()
    wrong = []
    for module, targets in graph.items():
        source = package_of(module)
        for target in targets:
            destination = package_of(target)
            if destination == source:
                continue
            if layer_of(destination) >= layer_of(source):
                wrong.append(f"{module} ({source}) imports {target} ({destination})")
    assert wrong == []


def test_no_private_name_is_imported_from_another_module() -> None:
    _, private = import_graph()
    assert private == []


def test_every_engine_package_has_a_layer() -> None:
    packages = {package_of(module) for module in engine_modules()}
    placed = set().union(*LAYERS)
    assert packages <= placed, packages - placed


def test_the_checks_catch_a_circle_and_an_upward_import() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert cycles(graph) == [["a", "b"]]
    assert layer_of(package_of("turtle_core.state.store")) > layer_of(
        package_of("turtle_core.discovery.turtle")
    )
    assert package_of("turtle_core.atomic") == "base"
