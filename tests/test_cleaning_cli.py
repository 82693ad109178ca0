"""`audit` and `names` on the command line, and keep-one-per-group as one undoable edit."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from state_helpers import image_names, synthetic_discovery

from turtle_core.cleaning.quality import QUALITY_FLAGS
from turtle_core.cli.main import main
from turtle_core.constants import EXCLUDED
from turtle_core.operations.cleaning import keep_one_edit
from turtle_core.state import edits
from turtle_core.state.project_state import ProjectState
from turtle_core.state.store import ProjectStore


def test_keep_one_per_group_is_one_undoable_edit(tmp_path: Path) -> None:
    from turtle_core.cleaning.duplicates import DuplicateGroup

    state = ProjectState(ProjectStore(tmp_path / "work"), tmp_path)
    state.install_discovery(synthetic_discovery(image_names(12)))
    snap = state.snapshot()
    groups = [DuplicateGroup(0, (3, 5), (0.01, 0.0)), DuplicateGroup(1, (7,), (0.02,))]
    edit = keep_one_edit(snap, groups)
    assert isinstance(edit, edits.KeepOnePerGroup) and edit.images == snap.keys([3, 5, 7])
    assert state.apply(edit) == 3
    assert (state.curation.assignments[[3, 5, 7]] == EXCLUDED).all()
    assert state.curation.history()[-1] == "Kept one image of 2 groups of near-duplicates, excluded 3"
    assert keep_one_edit(state.snapshot(), groups) is None  # nothing left to exclude
    state.apply(edits.Undo(discovery_id=snap.discovery_id))
    assert (state.curation.assignments != EXCLUDED).all()


def test_audit_writes_groups_and_flags(tmp_path: Path, capsys) -> None:
    from test_quality_flags import natural

    root = tmp_path / "images"
    rng = np.random.default_rng(4)
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
        for i in range(6):
            natural(rng).save(root / folder / f"{folder}_{i:03d}.png")
    shutil.copy(root / "a" / "a_000.png", root / "a" / "copy of a_000.png")  # exact copy
    Image.open(root / "b" / "b_002.png").resize((100, 80)).save(root / "b" / "b_002 small.jpg", quality=60)
    dark = (np.asarray(Image.open(root / "a" / "a_003.png"), np.float32) * 0.1).astype(np.uint8)
    Image.fromarray(dark).save(root / "dark.png")
    Image.open(root / "a" / "a_004.png").convert("L").save(root / "grey.png")
    (root / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "audit.csv"

    assert main(["audit", str(root), "--out", str(out), "--backbones", "effnet-lite0", "-q"]) == 0
    rows = {row["path"]: row for row in csv.DictReader(out.open())}
    assert list(next(iter(rows.values()))) == ["path", "duplicate_group", *QUALITY_FLAGS]
    assert len(rows) == 16 and "broken.png" not in rows
    assert rows["a/copy of a_000.png"]["duplicate_group"] == rows["a/a_000.png"]["duplicate_group"] != ""
    assert rows["b/b_002 small.jpg"]["duplicate_group"] == rows["b/b_002.png"]["duplicate_group"] != ""
    assert rows["dark.png"]["duplicate_group"] == rows["a/a_003.png"]["duplicate_group"] != ""  # darker copy
    grouped = [path for path, row in rows.items() if row["duplicate_group"]]
    assert len(grouped) == 6, grouped
    assert rows["dark.png"]["dark"] == "1" and rows["grey.png"]["grayscale"] == "1"
    assert rows["a/a_001.png"]["dark"] == "0" and rows["a/a_001.png"]["grayscale"] == "0"
    err = capsys.readouterr().err
    assert "3 group(s) of near-duplicates" in err and "broken.png" in err


def test_audit_of_a_clean_folder_says_so(tmp_path: Path, capsys) -> None:
    root = tmp_path / "clean"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        pixels = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"noise_{i}.png")
    out = tmp_path / "audit.csv"
    assert main(["audit", str(root), "--out", str(out), "--backbones", "effnet-lite0", "-q"]) == 0
    assert "5 images: no near-duplicates and no quality flags" in capsys.readouterr().err
    assert all(set(row.values()) <= {"0", ""} | {row["path"]} for row in csv.DictReader(out.open()))


def test_names_needs_a_discovery_then_writes_a_row_per_cluster(
    make_image_tree, tmp_path: Path, capsys
) -> None:
    from turtle_core.operations.project import Project

    root = make_image_tree({"a": 5, "b": 5})
    out = tmp_path / "names.csv"
    assert main(["names", str(root), "--out", str(out)]) == 1
    assert "no discovery yet" in capsys.readouterr().err
    Project.open(root).run_discovery(2, effort="quick", partition="kmeans")
    assert main(["names", str(root), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [row["cluster"] for row in rows] == ["0", "1"] and set(rows[0]) == {"cluster", "suggestions"}
    assert "2 clusters" in capsys.readouterr().err


def test_a_graph_built_before_the_signatures_were_measured_is_built_again(tmp_path: Path) -> None:
    """A project opened after an upgrade drops its older signatures until the next scan: a duplicates graph
    built then has the embeddings alone, and must not outlive the scan that measures the signatures."""
    from dataclasses import replace
    from types import SimpleNamespace

    from turtle_core.ingest.quality import pixel_signature
    from turtle_core.ingest.scan import ScanResult
    from turtle_core.operations.cleaning import cached_graph, compute_graph

    discovery = synthetic_discovery(image_names(12))
    rng = np.random.default_rng(0)
    spaces = [rng.normal(size=(12, 16)).astype(np.float32)]
    project = SimpleNamespace(workdir=tmp_path / "work", scan_result=None, checkpoints={})
    project.spaces = lambda discovery=None: spaces

    before = compute_graph(project, discovery)
    assert not before.has_signatures and cached_graph(project, discovery) is not None

    pictures = [Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)) for _ in range(12)]
    measured = [
        replace(record, signature=pixel_signature(picture))
        for record, picture in zip(discovery.images, pictures, strict=True)
    ]
    project.scan_result = ScanResult(root=str(tmp_path), images=measured, skipped=[], duplicates=[])
    assert cached_graph(project, discovery) is None  # stale: the scan has measured the signatures
    after = compute_graph(project, discovery)
    assert after.has_signatures and cached_graph(project, discovery) is after
