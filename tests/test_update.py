"""Images that join, leave or change after a curation: `Project.update` (the app's Rescan, the CLI's update)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from colour_folder import COLOURS, paint

from turtle_core.discovery.newcomers import CategoryShapes, training_rows
from turtle_core.operations.project import Project
from turtle_core.state import edits


def test_added_images_are_labelled_removed_ones_leave_and_changed_ones_are_new(curated) -> None:
    project, root = curated
    before = project.snapshot()
    checked_path = before.keys([0])[0]
    paint(root / "incoming" / "a_red.png", COLOURS["red"], 3)
    paint(root / "incoming" / "b_blue.png", COLOURS["blue"], 5)
    paint(root / "incoming" / "c_green.png", COLOURS["green"], 1)
    (root / "green" / "green_7.png").unlink()
    paint(root / "blue" / "blue_7.png", COLOURS["red"], 7)  # the same file, now a red picture

    report = project.update()

    snap = project.snapshot()
    assert report.n_added == 4 and report.n_removed == 2 and report.n_changed == 1
    assert report.n_images == snap.curation.n_images == 24 - 1 - 1 + 4
    assert "4 new images were labelled with your 3 categories" in report.message()
    names = snap.curation.labels_as_names()
    for path, colour in [
        ("incoming/a_red.png", "red"),
        ("incoming/b_blue.png", "blue"),
        ("incoming/c_green.png", "green"),
        ("blue/blue_7.png", "red"),
    ]:
        row = int(snap.rows([path])[0])
        assert names[row] == colour, path
        assert snap.new[row]
    assert "green/green_7.png" not in {record.path for record in snap.images}
    assert snap.curation.checked[snap.rows([checked_path])[0]]  # checked images keep their label
    assert set(snap.curation.names.values()) == set(COLOURS)  # every name stays
    assert snap.curation.history()[-1].startswith("Labelled 4 new images with your 3 categories")
    # The exported manifest has exactly the folder's images.
    manifest = project.manifest_frame()
    assert sorted(manifest["path"]) == sorted(record.path for record in snap.images)

    again = project.update()  # nothing changed since
    assert not again.changed_anything and "Nothing changed" in again.message()
    assert project.snapshot().curation.version == snap.curation.version


def test_an_edit_chosen_before_the_rescan_on_a_removed_image_is_refused(curated) -> None:
    project, root = curated
    before = project.snapshot()
    gone = before.keys([1])
    (root / gone[0]).unlink()
    project.update()
    with pytest.raises(edits.StaleEdit, match="no longer in this project"):
        project.apply(
            edits.Move(discovery_id=before.discovery_id, images=gone + before.keys([2]), cluster_id=2)
        )
    assert not project.snapshot().curation.checked[project.snapshot().rows(before.keys([2]))].any()


def test_the_curated_categories_shapes_say_what_fits_none() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(3, 16, dtype=np.float32) * 5
    labels = np.repeat([0, 1, 2], 200)
    features = centres[labels] + rng.normal(size=(600, 16)).astype(np.float32) * 0.3
    shapes = CategoryShapes([features], labels)
    typical = centres[[0, 1]] + rng.normal(size=(2, 16)).astype(np.float32) * 0.3
    stranger = (np.ones((1, 16)) * 3 - centres[0]).astype(np.float32)  # far from every centre
    verdict = shapes.fits_none([np.vstack([typical, stranger])], np.array([0, 1, 0]))
    assert verdict.tolist() == [False, False, True]


def test_training_rows_take_the_checked_images_first() -> None:
    labels = np.array([0, 1, -1, 0, 1, 0, 1, 0])
    checked = np.array([False, True, True, False, False, False, True, False])
    rows = training_rows(labels, checked, limit=3)
    assert {1, 6} <= set(rows.tolist()) and 2 not in rows and rows.size == 3


def test_the_command_line_update_writes_every_image_with_its_new_flag(curated, tmp_path: Path) -> None:
    import pandas as pd

    from turtle_core.cli.main import main

    project, root = curated
    paint(root / "late" / "late_red.png", COLOURS["red"], 2)
    paint(root / "red" / "red_0.png", COLOURS["green"], 0)  # changed: counts as new
    out = tmp_path / "out" / "update.csv"

    assert main(["update", str(root), "--out", str(out), "--quiet"]) == 0

    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ["path", "label", "confidence", "new"]
    assert len(table) == 25 and set(table["path"]) == {r.path for r in Project.open(root, reuse=False).images}
    fresh = table.set_index("path")
    assert fresh.loc["late/late_red.png", "new"] == 1 and fresh.loc["late/late_red.png", "label"] == "red"
    assert fresh.loc["red/red_0.png", "new"] == 1 and fresh.loc["red/red_0.png", "label"] == "green"
    assert fresh["new"].sum() == 2

    assert main(["update", str(root), "--out", str(out), "--quiet"]) == 0  # an empty update
    assert pd.read_csv(out)["new"].sum() == 0


def test_the_project_page_rescans_a_curated_folder_and_every_page_agrees_on_the_count(
    curated, monkeypatch
) -> None:
    from test_app_fakes import open_app, texts, wait_for_job

    project, root = curated
    at = open_app(monkeypatch, project, "pages/project.py")
    paint(root / "late" / "late_blue.png", COLOURS["blue"], 4)
    paint(root / "late" / "late_green.png", COLOURS["green"], 2)
    (root / "red" / "red_5.png").unlink()
    project.scan()  # the folder was scanned (e.g. by another tab) but the curation not yet updated
    at.run()
    assert (
        "The curation holds 24 of these images · 2 were added or changed since it was made · 1 of its "
        in texts(at)
    )

    at.button(key=[b.key for b in at.button if b.label == "Rescan"][0]).click().run()
    wait_for_job(at, project, "update", timeout=120)
    assert not at.exception
    assert "2 new images were labelled with your 3 categories" in at.success[0].value
    assert "The curation holds" not in texts(at)
    at.switch_page("pages/clusters.py").run()
    assert not at.exception
    assert "Images: 25" in texts(at)
    at.switch_page("pages/export.py").run()
    assert not at.exception and "Images to export: 25" in texts(at)
    at.switch_page("pages/clusters.py").run()
    at.segmented_control(key="clusters_view").set_value("Review queue").run()
    assert at.segmented_control(key="review_group").value == "New images (2)"
    assert "2 images to review" in texts(at)


def test_the_clusters_page_drawn_before_a_rescan_draws_the_rescanned_images(curated, monkeypatch) -> None:
    """The page's caches of per-image arrays (the merge tree's features, the images' words) are keyed by the
    rows, not by the discovery: a rescan keeps the discovery id (regression: "features of shape (24, …) do
    not match 26 assignments" after a rescan, on the Clusters page drawn before it)."""
    from test_app_fakes import open_app, texts

    project, root = curated
    at = open_app(monkeypatch, project, "pages/clusters.py")
    assert not at.exception and "Images: 24" in texts(at)
    paint(root / "late" / "late_blue.png", COLOURS["blue"], 4)
    paint(root / "late" / "late_green.png", COLOURS["green"], 2)
    project.update()
    at.run()
    assert not at.exception, at.exception
    assert "Images: 26" in texts(at)
