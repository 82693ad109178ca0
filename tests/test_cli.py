"""`python -m turtle_core discover` end to end in a subprocess on a small generated folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path


def _run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TURTLE_HOME": str(home), "TURTLE_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "turtle_core", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_discover_writes_csv_and_skip_report(make_image_tree, tmp_path: Path, turtle_home: Path) -> None:
    root = make_image_tree({"a": 6, "b": 6, "c": 6})
    (root / "a" / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("not an image")
    out = tmp_path / "out" / "labels.csv"

    done = _run(
        "discover",
        str(root),
        "--clusters",
        "2-4",
        "--out",
        str(out),
        "--backbones",
        "effnet-lite0",
        "--effort",
        "quick",
        home=turtle_home,
    )

    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 18
    assert set(rows[0]) >= {"path", "cluster", "confidence"}
    assert all(0.0 <= float(row["confidence"]) <= 1.0 for row in rows)
    assert 2 <= len({row["cluster"] for row in rows}) <= 4
    skipped = (out.parent / "labels.skipped.csv").read_text()
    assert "a/empty.jpg" in skipped and "notes.png" in skipped
    assert "a/empty.jpg" in done.stderr
    assert "categories" in done.stderr


def test_discover_on_missing_folder_fails_cleanly(tmp_path: Path, turtle_home: Path) -> None:
    done = _run(
        "discover", str(tmp_path / "missing"), "-k", "3", "-o", str(tmp_path / "x.csv"), home=turtle_home
    )
    assert done.returncode == 1
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_cluster_spec_is_a_usage_error(tmp_path: Path, turtle_home: Path) -> None:
    done = _run("discover", str(tmp_path), "-k", "many", "-o", str(tmp_path / "x.csv"), home=turtle_home)
    assert done.returncode == 2
    assert "expected a number" in done.stderr


def test_unknown_effort_is_a_usage_error(tmp_path: Path, turtle_home: Path) -> None:
    done = _run(
        "discover",
        str(tmp_path),
        "-k",
        "3",
        "-o",
        str(tmp_path / "x.csv"),
        "--effort",
        "max",
        home=turtle_home,
    )
    assert done.returncode == 2
    assert "quick" in done.stderr and "standard" in done.stderr
