"""`python -m turtle_core discover` end to end in a subprocess on a small generated folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from turtle_core.state.errors import StaleEdit


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


def test_discover_refuses_to_replace_a_curation_with_edits(
    make_image_tree, tmp_path: Path, turtle_home: Path
) -> None:
    """Defect 4: the CLI never replaces the app's curated work unasked, and the app notices when asked."""
    from state_helpers import synthetic_discovery

    from turtle_core.operations.project import Project
    from turtle_core.state import edits

    root = make_image_tree({"a": 6, "b": 6, "c": 6})
    app = Project.open(root)  # the app's project object, in this process
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    grouped = synthetic_discovery(paths)
    grouped.labels = np.asarray(["abc".index(path[0]) for path in paths], dtype=np.int32)  # one per folder
    grouped.images = app.scan().images  # the files' real content hashes, as a discovery records them
    assert [record.path for record in grouped.images] == paths
    app.state.install_discovery(grouped)
    snap = app.snapshot()
    app.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name="curated"))
    args = ["discover", str(root), "-k", "3", "-o", str(tmp_path / "l.csv"), "--backbones", "effnet-lite0"]

    refused = _run(*args, "--effort", "quick", home=turtle_home)
    assert refused.returncode == 3, refused.stderr
    assert "1 edit(s)" in refused.stderr and "--replace-curation" in refused.stderr
    assert not (tmp_path / "l.csv").exists()
    assert Project.open(root, reuse=False).curation.name_of(0) == "curated"

    replaced = _run(*args, "--effort", "quick", "--replace-curation", home=turtle_home)
    assert replaced.returncode == 0, replaced.stderr
    fresh = app.snapshot()  # the app's next run: it reloads and says why
    assert fresh.discovery_id != snap.discovery_id
    assert fresh.curation.history() == ["Carried over 1 cluster name(s) from the previous curation"]
    assert "curated" in fresh.curation.names.values()
    assert any("replaced by a discovery saved elsewhere" in note for note in app.take_notices())
    with pytest.raises(StaleEdit):  # a click made on the old clusters is refused, not saved over them
        app.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name="stale"))

    listed = _run("curations", str(root), home=turtle_home)
    assert listed.returncode == 0 and "replaced by a new discovery" in listed.stdout, listed.stderr
    name = listed.stdout.split()[0]
    restored = _run("curations", str(root), "--restore", name, home=turtle_home)
    assert restored.returncode == 0, restored.stderr
    back = Project.open(root, reuse=False)
    assert back.discovery.discovery_id == snap.discovery_id and back.curation.name_of(0) == "curated"
    assert back.curation.history() == ["Renamed 'Cluster 0' to 'curated'"]


def test_discover_refuses_just_the_same_when_the_discovery_is_damaged(
    make_image_tree, tmp_path: Path, turtle_home: Path
) -> None:
    """A truncated discovery.npz never lets the CLI replace a curation that holds a rename without a word."""
    from state_helpers import synthetic_discovery

    from turtle_core.operations.project import Project
    from turtle_core.paths import project_dir
    from turtle_core.state import edits

    root = make_image_tree({"a": 6, "b": 6})
    app = Project.open(root)
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    app.state.install_discovery(synthetic_discovery(paths, n_clusters=2))
    snap = app.snapshot()
    app.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=1, name="kept"))
    discovery = project_dir(root) / "discovery.npz"
    discovery.write_bytes(discovery.read_bytes()[:300])
    curation_before = (project_dir(root) / "curation.npz").read_bytes()

    refused = _run(
        "discover", str(root), "-k", "2", "-o", str(tmp_path / "l.csv"), "--effort", "quick", home=turtle_home
    )

    assert refused.returncode == 3, refused.stderr
    assert "1 edit(s)" in refused.stderr
    assert (project_dir(root) / "curation.npz").read_bytes() == curation_before
