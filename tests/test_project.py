"""The Project facade end to end on a tiny generated folder with the real offline backbone."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from turtle_core.constants import EXCLUDED
from turtle_core.operations.project import Project, ProjectError


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        os.fspath(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _colour_tree(root: Path, per_class: int = 8) -> Path:
    """Three visually obvious classes: a saturated background colour with a random grey ellipse."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            jitter = tuple(int(np.clip(c + rng.integers(-20, 20), 0, 255)) for c in colour)
            image = Image.new("RGB", (64, 64), jitter)
            x, y = rng.integers(0, 40, size=2)
            ImageDraw.Draw(image).ellipse((x, y, x + 20, y + 20), fill=(128, 128, 128))
            image.save(root / name / f"{name}_{i}.png")
    return root


@pytest.fixture
def discovered(tmp_path: Path) -> Project:
    root = _colour_tree(tmp_path / "images")
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    project = Project.open(root)
    project.set_backbones(["effnet-lite0"])
    project.run_discovery(3)
    return project


def test_open_rejects_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="does not exist"):
        Project.open(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ProjectError, match="not a folder"):
        Project.open(tmp_path / "file.txt")


def test_empty_folder_gives_a_clear_message(tmp_path: Path) -> None:
    project = Project.open(tmp_path)
    project.set_backbones(["effnet-lite0"])
    with pytest.raises(ProjectError, match="No usable images"):
        project.run_discovery(3)


def test_discovery_finds_the_colour_classes_and_reports_the_broken_file(discovered: Project) -> None:
    result = discovered.discovery
    assert result is not None
    assert len(result.images) == 24
    assert [item.path for item in discovered.scan_result.skipped] == ["red/broken.png"]
    assert result.labels.shape == (24,) and result.probabilities.shape == (24, 3)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert result.metrics is not None and result.metrics["accuracy"] >= 0.9
    assert discovered.current_metrics()["accuracy"] == pytest.approx(result.metrics["accuracy"])


def test_state_survives_reopening(discovered: Project) -> None:
    curation = discovered.curation
    first = curation.cluster_ids()[0]
    curation.rename(first, "rouge")
    curation.exclude([0])
    discovered.save_curation()
    spaces = discovered.spaces()

    assert Project.open(discovered.folder) is discovered  # one object per folder in a process
    reopened = Project.open(discovered.folder, reuse=False)  # read afresh from disk
    assert reopened.backbones == ["effnet-lite0"]
    assert reopened.curation.name_of(first) == "rouge"
    assert reopened.curation.assignments[0] == EXCLUDED
    assert reopened.curation.can_undo
    np.testing.assert_array_equal(reopened.discovery.labels, discovered.discovery.labels)
    for restored, original in zip(reopened.spaces(), spaces, strict=True):
        np.testing.assert_allclose(restored, original)
    assert os.fspath(discovered.folder) in Project.recent()


def test_split_and_layout_and_export_leave_sources_untouched(discovered: Project, tmp_path: Path) -> None:
    before = _snapshot(discovered.folder)
    curation = discovered.curation
    a, b = curation.cluster_ids()[:2]
    merged = curation.merge([a, b])
    discovered.save_curation()
    new_ids = discovered.split_cluster(merged, 2)
    assert len(new_ids) == 2 and all(len(curation.members(cid)) > 0 for cid in new_ids)
    assert discovered.current_metrics()["accuracy"] >= 0.8

    layout = discovered.layout("pca")
    assert layout.shape == (24, 2) and np.isfinite(layout).all()
    assert discovered.cached_layout("pca") is not None
    assert discovered.thumbnail(0) is not None and discovered.thumbnail(0).exists()

    report = discovered.export(tmp_path / "export")
    assert report.n_exported == 24
    frame = discovered.manifest_frame()
    assert len(frame) == 24
    assert _snapshot(discovered.folder) == before


def test_quick_effort_is_recorded_and_still_finds_obvious_classes(tmp_path: Path) -> None:
    project = Project.open(_colour_tree(tmp_path / "images"))
    project.set_backbones(["effnet-lite0"])
    with pytest.raises(ProjectError, match="unknown effort"):
        project.run_discovery(3, effort="heroic")
    result = project.run_discovery(3, effort="quick")
    assert result.params["effort"] == "quick"
    assert result.metrics is not None and result.metrics["accuracy"] >= 0.9
    reopened = Project.open(project.folder, reuse=False)
    assert reopened.discovery is not None and reopened.discovery.params["effort"] == "quick"


def test_current_metrics_follow_every_edit_and_its_undo(discovered: Project) -> None:
    from turtle_core.state.edits import Move, Undo

    before = discovered.current_metrics()
    snap = discovered.snapshot()
    first, second = snap.curation.cluster_ids()[:2]
    rows = np.flatnonzero(snap.curation.assignments == first)
    discovered.apply(Move(discovery_id=snap.discovery_id, images=snap.keys(rows), cluster_id=second))
    moved = discovered.current_metrics()
    assert moved["accuracy"] < before["accuracy"] - 0.1
    discovered.apply(Undo(discovery_id=snap.discovery_id))
    assert discovered.current_metrics() == before
