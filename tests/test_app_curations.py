"""Project page over time, with a real curated folder (three colours, real embeddings): Rescan labels the new
images with the curated categories, and labels made elsewhere (a CSV, a Label Studio export, an ImageFolder
tree) come in as checked images, with the rows that cannot be used listed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from colour_folder import COLOURS, paint
from test_app_fakes import open_app, texts, wait_for_job

PAGE = "pages/project.py"


def _labels_of(project, paths: list[str]) -> dict[str, tuple[str, bool]]:
    snap = project.snapshot()
    rows = {record.path: row for row, record in enumerate(snap.images)}
    curation = snap.curation
    return {
        path: (curation.name_of(int(curation.assignments[rows[path]])), bool(curation.checked[rows[path]]))
        for path in paths
    }


def test_rescan_labels_new_images_with_the_curated_categories(monkeypatch, curated) -> None:
    project, folder = curated
    for i in range(8, 11):
        paint(folder / "blue" / f"blue_{i}.png", COLOURS["blue"], i)
    at = open_app(monkeypatch, project, PAGE)
    at.button(key=next(b.key for b in at.button if b.label == "Rescan")).click().run()
    job = wait_for_job(at, project, "update", timeout=120)
    assert job.state == "done", job.error
    assert not at.exception
    assert "3 new images were labelled" in texts(at)
    new = [f"blue/blue_{i}.png" for i in range(8, 11)]
    labels = _labels_of(project, new)
    assert {name for name, _ in labels.values()} == {"blue"}
    assert not any(checked for _, checked in labels.values())  # labelled by the learner, not by a person
    assert np.asarray(project.snapshot().new).sum() == 3


def test_import_an_image_folder_tree_and_a_csv_with_bad_rows(monkeypatch, curated, tmp_path: Path) -> None:
    project, folder = curated
    tree = tmp_path / "sorted"
    for i in (1, 2):  # copies of two folder images, sorted under other names
        target = tree / "crimson" / f"r{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((folder / "red" / f"red_{i}.png").read_bytes())
    at = open_app(monkeypatch, project, PAGE)
    at.text_input(key="labels_tree").set_value(str(tree)).run()
    at.button(key="labels_import").click().run()
    job = wait_for_job(at, project, "import", timeout=60)
    assert job.state == "done", job.error
    at.run()
    assert not at.exception
    assert "Imported 2 label(s) in 1 category" in texts(at)
    assert _labels_of(project, ["red/red_1.png", "red/red_2.png"]) == {
        "red/red_1.png": ("crimson", True),
        "red/red_2.png": ("crimson", True),
    }

    csv = "path,label\ngreen/green_3.png,lime\nnot/there.png,lime\nblue/blue_1.png,\n"
    at.file_uploader(key="labels_upload").set_value([("labels.csv", csv.encode(), "text/csv")]).run()
    at.button(key="labels_import").click().run()
    job = wait_for_job(at, project, "import", timeout=60)
    at.run()
    said = texts(at)
    assert "Imported 1 label(s)" in said and "2 row(s) skipped" in said
    assert "not/there.png" in said
    assert _labels_of(project, ["green/green_3.png"])["green/green_3.png"] == ("lime", True)


def test_label_studio_export_is_read_from_its_json(monkeypatch, curated) -> None:
    project, _ = curated
    export = [
        {
            "data": {"image": "/data/local-files/?d=photos/blue/blue_5.png"},
            "annotations": [{"result": [{"type": "choices", "value": {"choices": ["navy"]}}]}],
        }
    ]
    at = open_app(monkeypatch, project, PAGE)
    at.file_uploader(key="labels_upload").set_value(
        [("project-1.json", json.dumps(export).encode(), "application/json")]
    ).run()
    at.button(key="labels_import").click().run()
    job = wait_for_job(at, project, "import", timeout=60)
    assert job.state == "done", job.error
    at.run()
    assert _labels_of(project, ["blue/blue_5.png"])["blue/blue_5.png"] == ("navy", True)
