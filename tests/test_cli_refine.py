"""`python -m turtle_core refine` round trip: discover, mark a few labels checked, refine, read OUT back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from test_cli import _run


def _discovered(make_image_tree, tmp_path: Path, turtle_home: Path) -> tuple[Path, pd.DataFrame]:
    """Three colour classes, discovered by the CLI; the folder and the labels it wrote."""
    root = make_image_tree({"red": 8, "green": 8, "blue": 8})
    discovered = tmp_path / "labels.csv"
    done = _run(
        "discover", str(root), "-k", "3", "-o", str(discovered), "--effort", "quick", home=turtle_home
    )
    assert done.returncode == 0, done.stderr
    return root, pd.read_csv(discovered)


def test_refine_round_trip(make_image_tree, tmp_path: Path, turtle_home: Path) -> None:
    root, frame = _discovered(make_image_tree, tmp_path, turtle_home)
    truth = frame["path"].str.split("/").str[0]
    # The curator checked five images of each class (fewer do not bound the harm on right labels tightly
    # enough for any move); every other row only carries a starting guess, and one guess names a label
    # ("purple") that no checked row has: it must survive as a label.
    known = frame.groupby(truth).head(5).index
    labels = pd.DataFrame({"path": frame["path"], "label": "red", "checked": 0})
    labels.loc[known, "label"] = truth[known]
    labels.loc[known, "checked"] = 1
    purple = frame.index.difference(known)[:1]
    labels.loc[purple, "label"] = "purple"
    labels_csv = tmp_path / "in.csv"
    labels.to_csv(labels_csv, index=False)
    out = tmp_path / "out" / "refined.csv"

    done = _run("refine", str(root), "--labels", str(labels_csv), "--out", str(out), home=turtle_home)

    assert done.returncode == 0, done.stderr
    refined = pd.read_csv(out)
    assert list(refined.columns) == ["path", "label", "confidence", "excluded"]
    assert (refined["excluded"] == 0).all()
    assert sorted(refined["path"]) == sorted(frame["path"])
    merged = refined.merge(labels, on="path", suffixes=("", "_given"))
    known_rows = merged[merged["checked"] == 1]
    assert (known_rows["label"] == known_rows["label_given"]).all()
    assert (known_rows["confidence"] == 1.0).all()
    assert set(refined["label"]) <= {"red", "green", "blue", "purple"}
    unknown = merged[merged["checked"] == 0]
    # The starting guesses were right for a third of them; the rule moves where it is sure enough.
    assert (unknown["label"] == unknown["path"].str.split("/").str[0]).mean() >= 0.75
    assert "checked" in done.stderr and "re-labelled" in done.stderr


def test_refine_without_discovery_or_with_bad_labels_fails_cleanly(
    make_image_tree, tmp_path: Path, turtle_home: Path
) -> None:
    root = make_image_tree({"a": 3, "b": 3})
    labels_csv = tmp_path / "in.csv"
    labels_csv.write_text("path,label\na/a_000.png,a\n")
    done = _run(
        "refine", str(root), "--labels", str(labels_csv), "--out", str(tmp_path / "o.csv"), home=turtle_home
    )
    assert done.returncode == 1
    assert "no discovery yet" in done.stderr and "Traceback" not in done.stderr


def test_the_former_known_column_is_read_as_checked(tmp_path: Path) -> None:
    from turtle_core.cli.refine import read_labels

    labels = tmp_path / "old.csv"
    labels.write_text("path,label,known\na.png,cat,1\nb.png,dog,0\n", encoding="utf-8")
    assert read_labels(labels) == {"a.png": ("cat", True), "b.png": ("dog", False)}


def test_refine_writes_excluded_images_as_excluded(
    make_image_tree, tmp_path: Path, turtle_home: Path
) -> None:
    from turtle_core.operations.project import Project
    from turtle_core.state.edits import Exclude

    root, frame = _discovered(make_image_tree, tmp_path, turtle_home)
    project = Project.open(root)
    snap = project.snapshot()
    in_app = [snap.images[row].path for row in (0, 9)]  # excluded by a curator in the app
    project.apply(Exclude(discovery_id=snap.discovery_id, images=tuple(in_app)))
    truth = frame["path"].str.split("/").str[0]
    labels = pd.DataFrame({"path": frame["path"], "label": truth, "checked": 1, "excluded": 0})
    labels = labels[~labels["path"].isin(in_app)]  # LABELS does not name the app's exclusions
    by_file = labels["path"].iloc[5]
    labels.loc[labels["path"] == by_file, ["label", "excluded"]] = ["", 1]  # excluded in LABELS itself
    labels_csv = tmp_path / "in.csv"
    labels.to_csv(labels_csv, index=False)
    out = tmp_path / "refined.csv"

    done = _run("refine", str(root), "--labels", str(labels_csv), "--out", str(out), home=turtle_home)

    assert done.returncode == 0, done.stderr
    refined = pd.read_csv(out, keep_default_na=False).set_index("path")
    excluded = sorted([*in_app, by_file])
    assert sorted(refined.index[refined["excluded"] == 1]) == excluded
    assert (refined.loc[excluded, "label"] == "").all() and (refined.loc[excluded, "confidence"] == "").all()
    assert not refined["label"].str.startswith("Cluster").any()  # never "Cluster -1"
    kept = refined[refined["excluded"] == 0]
    assert set(kept["label"]) == {"red", "green", "blue"} and len(kept) == 24 - 3
    assert "3 excluded" in done.stderr
