"""`python -m benchmarks` lists every benchmark module and each of them imports, so a benchmark that a
refactor broke fails here (import only: nothing is run)."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.catalog import find_benchmarks

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "benchmarks"


def _package_files() -> list[Path]:
    """The package's and its sub-packages' modules (not the git-ignored data and features folders)."""
    folders = [PACKAGE, *(init.parent for init in PACKAGE.glob("*/__init__.py"))]
    return [path for folder in folders for path in sorted(folder.glob("*.py"))]


def _modules_with_main() -> set[str]:
    """Read from the files, independently of the catalog: every public module with a `def main(`."""
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for path in _package_files()
        if not path.name.startswith("_") and re.search(r"^def main\(", path.read_text("utf-8"), re.M)
    }


@pytest.fixture(scope="module")
def listing() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_listing_names_every_benchmark_module_with_its_one_liner(listing: str) -> None:
    listed = {line.split()[0]: line for line in listing.splitlines() if line.startswith("  ")}
    expected = _modules_with_main()
    assert {"curator_suite", "million", "suite.build", "gpu_check"} <= expected
    assert set(listed) == expected
    for name, benchmark in find_benchmarks().items():
        assert benchmark.summary and "\n" not in benchmark.summary
        assert listed[name].split(None, 1)[1] == benchmark.summary


@pytest.mark.parametrize("name", sorted(find_benchmarks()))
def test_each_benchmark_imports_and_takes_its_arguments(name: str) -> None:
    module = importlib.import_module(find_benchmarks()[name].module)
    assert list(inspect.signature(module.main).parameters) == ["argv"]


def test_an_unknown_name_is_refused_with_a_pointer_to_the_list() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "no_such_benchmark"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no benchmark named 'no_such_benchmark'" in done.stderr


def test_a_benchmark_gets_its_arguments_and_its_name_in_the_usage() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "refine_speed", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m benchmarks refine_speed")
    assert "--classes" in done.stdout


def test_no_benchmark_edits_sys_path() -> None:
    """They import as a package from the repository's root (`python -m benchmarks`), never by path."""
    offenders = [str(path.relative_to(REPO)) for path in _package_files() if "sys.path" in path.read_text()]
    assert offenders == []


def test_timed_gives_the_median_of_the_calls_and_syncs_around_each() -> None:
    from benchmarks.common import timed

    calls, syncs = [], []
    timing = timed(lambda: calls.append(len(calls)) or len(calls), repeat=3, sync=lambda: syncs.append(1))
    assert timing.result == 3 and len(calls) == 3 and len(syncs) == 6
    assert len(timing.runs) == 3 and timing.seconds == sorted(timing.runs)[1]
    assert timing.started <= timing.ended


def test_write_results_adds_the_facts_of_the_run(tmp_path: Path) -> None:
    import json
    import os

    from benchmarks.common import write_results

    payload = {"rows": [1, 2]}
    path = write_results(tmp_path / "deeper" / "x.json", payload)
    written = json.loads(path.read_text())
    assert written["rows"] == [1, 2] and "machine" not in payload
    facts = written["machine"]
    assert facts["cpu_count"] == os.cpu_count()
    assert len(facts["load_average_at_start"]) == 3 and len(facts["load_average_at_end"]) == 3
    assert facts["torch_threads"] >= 1 and facts["date"][:2] == "20"
