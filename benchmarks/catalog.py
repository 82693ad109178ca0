"""The benchmarks this package holds: every module that defines a top-level `main`, found from the source
(nothing is imported to list them, so a benchmark that no longer imports is still listed)."""

from __future__ import annotations

import ast
import pkgutil
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    """One runnable benchmark: `python -m benchmarks NAME`."""

    name: str  # the module's path inside the package: "curator_suite", "suite.build"
    module: str  # the importable name: "benchmarks.curator_suite"
    summary: str  # the first paragraph of its docstring, on one line


def _summary(tree: ast.Module) -> str:
    doc = ast.get_docstring(tree) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def _defines_main(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)


def find_benchmarks(folder: Path = PACKAGE, prefix: str = "") -> dict[str, Benchmark]:
    """Every benchmark below `folder` (sub-packages included), by name; private modules (`_x`) are not."""
    found: dict[str, Benchmark] = {}
    for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda info: info.name):
        if info.name.startswith("_"):
            continue
        name = f"{prefix}{info.name}"
        if info.ispkg:
            found.update(find_benchmarks(folder / info.name, f"{name}."))
            continue
        tree = ast.parse((folder / f"{info.name}.py").read_text("utf-8"))
        if _defines_main(tree):
            found[name] = Benchmark(name, f"benchmarks.{name}", _summary(tree))
    return found
