"""Labels in: a CSV, a Label Studio export or an ImageFolder tree of sorted copies become checked images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from turtle_core.cli.main import main
from turtle_core.ingest.labels import (
    LabelsFileError,
    read_image_folder_tree,
    read_label_studio,
    read_labels_csv,
)
from turtle_core.operations.project import Project


def test_a_csv_is_imported_whole_and_its_bad_rows_are_reported_by_line(curated) -> None:
    project, root = curated
    before = project.snapshot()
    csv = (
        "path,label\n"
        "red/red_1.png,crimson\n"  # a new name: a new cluster
        "red/red_2.png,crimson\n"
        "green/green_1.png,blue\n"  # an existing name: that cluster
        "nowhere/x.png,red\n"  # unknown path
        "blue/blue_2.png,\n"  # empty label
        "red/red_1.png,red\n"  # labelled twice
    )
    report = project.import_labels(read_labels_csv(csv.encode()))

    snap = project.snapshot()
    names = snap.curation.labels_as_names()
    rows = snap.rows(["red/red_1.png", "red/red_2.png", "green/green_1.png"])
    assert [names[row] for row in rows] == ["crimson", "crimson", "blue"]
    assert snap.curation.checked[rows].all()
    assert report.n_imported == 3 and report.new_clusters == ("crimson",)
    assert sorted(problem.where for problem in report.problems) == ["line 5", "line 6", "line 7"]
    assert snap.curation.history()[-1] == "Imported 3 label(s) in 2 categories"
    assert snap.curation.version == before.curation.version + 1  # one edit
    project.apply(
        __import__("turtle_core.state.edits", fromlist=["Undo"]).Undo(discovery_id=snap.discovery_id)
    )
    assert "crimson" not in project.snapshot().curation.names.values()


def test_label_studio_exports_are_matched_by_the_path_their_urls_end_with(curated) -> None:
    project, root = curated
    export = [
        {
            "data": {"image": "/data/local-files/?d=photos/red/red_3.png"},
            "annotations": [{"result": [{"type": "choices", "value": {"choices": ["scarlet"]}}]}],
        },
        {
            "data": {"image": "/data/local-files/?d=photos/blue/blue_3.png"},
            "annotations": [{"was_cancelled": True, "result": [{"value": {"choices": ["wrong"]}}]}],
            "predictions": [{"result": [{"value": {"choices": ["navy"]}}]}],
        },
        {
            "data": {"image": "/data/upload/1/3f2a-elsewhere.png"},
            "annotations": [{"result": [{"value": {"choices": ["red"]}}]}],
        },
        {"data": {"image": "/data/local-files/?d=photos/green/green_3.png"}, "annotations": []},
    ]
    report = project.import_labels(read_label_studio(json.dumps(export).encode()))
    names = project.snapshot().curation.labels_as_names()
    snap = project.snapshot()
    assert names[snap.rows(["red/red_3.png"])[0]] == "scarlet"
    assert names[snap.rows(["blue/blue_3.png"])[0]] == "navy"
    assert report.n_imported == 2
    assert [problem.where for problem in report.problems] == ["task 4", "task 3"]


def test_an_image_folder_tree_of_sorted_copies_is_matched_by_content(curated, tmp_path: Path) -> None:
    project, root = curated
    sorted_tree = tmp_path / "sorted"
    (sorted_tree / "cherry").mkdir(parents=True)
    shutil.copy(root / "red" / "red_4.png", sorted_tree / "cherry" / "copy_of_4.png")
    shutil.copy(root / "red" / "red_5.png", sorted_tree / "cherry" / "renamed.png")
    (sorted_tree / "cherry" / "notes.txt").write_text("not an image")
    report = project.import_labels(read_image_folder_tree(sorted_tree))
    snap = project.snapshot()
    names = snap.curation.labels_as_names()
    assert [names[row] for row in snap.rows(["red/red_4.png", "red/red_5.png"])] == ["cherry", "cherry"]
    assert report.n_imported == 2 and not report.problems


def test_unreadable_label_files_say_why() -> None:
    with pytest.raises(LabelsFileError, match="lacks the column"):
        read_labels_csv(b"file,class\na.png,cat\n")
    with pytest.raises(LabelsFileError, match="not UTF-8"):
        read_labels_csv(b"path,label\n\xff\xfe.png,cat\n")
    with pytest.raises(LabelsFileError, match="Label Studio"):
        read_label_studio(b"{not json")


def test_the_command_line_imports_into_a_folder_without_a_discovery(
    make_image_tree, tmp_path: Path, capsys
) -> None:
    root = make_image_tree({"cats": 5, "dogs": 5})
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\ncats/cats_000.png,cat\ndogs/dogs_001.png,dog\nmissing.png,cat\n")

    assert main(["import-labels", str(root), "--labels", str(labels), "--quiet"]) == 0

    err = capsys.readouterr().err
    assert "skipped: line 4: missing.png: matches no image of the folder" in err
    project = Project.open(root, reuse=False)
    snap = project.snapshot()
    names = snap.curation.labels_as_names()
    assert [names[row] for row in snap.rows(["cats/cats_000.png", "dogs/dogs_001.png"])] == ["cat", "dog"]
    assert int(snap.curation.checked.sum()) == 2
