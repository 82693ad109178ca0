from __future__ import annotations

import errno
import json
import os
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from turtle_core.export import dataset as export_module
from turtle_core.export.dataset import (
    ALL_FORMATS,
    ExportError,
    ExportExists,
    export_dataset,
    manifest_csv_bytes,
    manifest_frame,
    sanitize_label,
    unique_folder_names,
)
from turtle_core.export.marker import MARKER, check_replaceable
from turtle_core.progress import Cancelled

NON_UTF8 = os.fsdecode(b"caf\xe9.png")  # a file name that is not valid UTF-8


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture
def source(make_image_tree, tmp_path: Path) -> tuple[Path, list[str]]:
    root = make_image_tree({"cats": 3, "dogs": 2})
    extra = root / "more" / "cats"
    extra.mkdir(parents=True)
    (extra / "cats_000.png").write_bytes((root / "dogs" / "dogs_000.png").read_bytes())  # same base name
    (root / "my photo Über.png").write_bytes((root / "dogs" / "dogs_001.png").read_bytes())
    (root / NON_UTF8).write_bytes((root / "cats" / "cats_002.png").read_bytes())
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    return root, paths


def _columns(paths: list[str]) -> dict:
    # Label by folder: cats/*, more/cats/* → "cats"; dogs/* → "dogs"; my photo → excluded; café → "Chats 🐱 / Katzen"
    labels, cluster_ids = [], []
    for p in paths:
        if p.startswith("dogs/"):
            labels.append("dogs"), cluster_ids.append(1)
        elif "cats" in p:
            labels.append("cats"), cluster_ids.append(0)
        elif p == NON_UTF8:
            labels.append("Chats 🐱 / Katzen"), cluster_ids.append(2)
        else:
            labels.append(None), cluster_ids.append(-1)
    n = len(paths)
    return {
        "labels": labels,
        "cluster_ids": cluster_ids,
        "confidence": [0.5 + i / (2 * n) for i in range(n)],
        "checked": [i % 2 == 0 for i in range(n)],
    }


@pytest.mark.parametrize("mode", ["copy", "hardlink", "symlink"])
def test_export_tree_and_manifest_exact(source, tmp_path: Path, mode: str) -> None:
    root, paths = source
    cols = _columns(paths)
    before = _snapshot(root)
    dest = tmp_path / "out"
    report = export_dataset(root, paths, dest=dest, mode=mode, **cols)

    assert report.dest == dest
    assert report.n_excluded == 1 and report.n_exported == len(paths) - 1
    assert report.label_folders == {"Chats 🐱 / Katzen": "Chats 🐱 _ Katzen", "cats": "cats", "dogs": "dogs"}
    assert set(report.files) == {
        "manifest.csv",
        "manifest.parquet",
        "metadata.jsonl",
        "README.md",
        "labelstudio_tasks.json",
        "labelstudio_config.xml",
    }
    # cats/cats_000.png and more/cats/cats_000.png collide: the second (in path order) gets a hash suffix.
    tree = _files(dest)
    image_files = {f for f in tree if f.endswith(".png")}
    suffixed = [f for f in image_files if f.startswith("cats/cats_000_")]
    assert len(suffixed) == 1 and len(suffixed[0]) == len("cats/cats_000_12345678.png")
    assert image_files == {
        "Chats 🐱 _ Katzen/caf_.png",
        "cats/cats_000.png",
        suffixed[0],
        "cats/cats_001.png",
        "cats/cats_002.png",
        "dogs/dogs_000.png",
        "dogs/dogs_001.png",
    }
    assert tree == image_files | set(report.files) | {".turtle-export.json"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == [
        "out"
    ]  # no partial/backup left

    manifest = pd.read_csv(dest / "manifest.csv", keep_default_na=False)
    assert list(manifest.columns) == [
        "path",
        "exported_path",
        "label",
        "cluster_id",
        "confidence",
        "checked",
        "excluded",
    ]
    assert manifest["path"].tolist() == [p if p != NON_UTF8 else "caf\\xe9.png" for p in paths]
    expected_exported = {
        "cats/cats_000.png": "cats/cats_000.png",
        "more/cats/cats_000.png": suffixed[0],
        "my photo Über.png": "",
        NON_UTF8: "Chats 🐱 _ Katzen/caf_.png",
    }
    for p, exported, label in zip(paths, manifest["exported_path"], manifest["label"], strict=True):
        assert exported == expected_exported.get(p, p)
        assert label == (cols["labels"][paths.index(p)] or "")
    assert manifest["cluster_id"].tolist() == cols["cluster_ids"]
    assert manifest["confidence"].tolist() == pytest.approx(cols["confidence"])
    assert manifest["checked"].tolist() == cols["checked"]
    assert manifest["excluded"].tolist() == [label is None for label in cols["labels"]]

    # Every exported file has the bytes of its source.
    for p, exported in zip(paths, manifest["exported_path"], strict=True):
        if exported:
            assert (dest / exported).read_bytes() == (root / p).read_bytes()
    if mode == "symlink":
        link = dest / "cats" / "cats_001.png"
        assert link.is_symlink() and os.path.isabs(os.readlink(link))
        assert Path(os.readlink(link)) == (root / "cats" / "cats_001.png").resolve()
    if mode == "hardlink":
        assert (dest / "dogs" / "dogs_000.png").stat().st_ino == (
            root / "dogs" / "dogs_000.png"
        ).stat().st_ino
    if mode == "copy":
        assert not (dest / "dogs" / "dogs_000.png").is_symlink()
        assert (dest / "dogs" / "dogs_000.png").stat().st_ino != (
            root / "dogs" / "dogs_000.png"
        ).stat().st_ino
    # The user's images: same files, same bytes, same modification times.
    assert _snapshot(root) == before
    assert not any("changed" in w for w in report.warnings)


def test_hf_metadata_labelstudio_and_parquet(source, tmp_path: Path) -> None:
    root, paths = source
    cols = _columns(paths)
    dest = tmp_path / "ds"
    report = export_dataset(root, paths, dest=dest, **cols)

    lines = (dest / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(paths) - 1
    for rec in records:
        assert (dest / rec["file_name"]).is_file()
        assert report.label_folders[rec["label"]] == rec["file_name"].split("/")[0]
        assert rec["source_path"] in paths or rec["source_path"] == "caf\\xe9.png"
    assert {r["label"] for r in records} == {"cats", "dogs", "Chats 🐱 / Katzen"}
    assert (dest / "README.md").read_text().startswith("---\nconfigs:")

    tasks = json.loads((dest / "labelstudio_tasks.json").read_text(encoding="utf-8"))
    assert len(tasks) == len(records)
    config = ET.fromstring((dest / "labelstudio_config.xml").read_text(encoding="utf-8"))
    choices = {c.get("value") for c in config.iter("Choice")}
    assert choices == {"cats", "dogs", "Chats 🐱 / Katzen"}
    assert config.find("Image").get("name") == "image"
    assert config.find("Choices").get("name") == "choice"
    for task in tasks:
        assert task["data"]["image"].startswith("/data/local-files/?d=ds/")
        (pred,) = task["predictions"]
        assert pred["model_version"] == "turtle" and 0.5 <= pred["score"] <= 1.0
        (result,) = pred["result"]
        assert (
            result["from_name"] == "choice" and result["to_name"] == "image" and result["type"] == "choices"
        )
        assert result["value"]["choices"][0] in choices

    frame = manifest_frame(paths, **cols)
    parquet = pd.read_parquet(dest / "manifest.parquet")
    assert parquet.drop(columns="exported_path").equals(frame.drop(columns="exported_path"))
    assert parquet["label"].isna().sum() == 1
    csv = pd.read_csv(pd.io.common.BytesIO(manifest_csv_bytes(paths, **cols)))
    assert csv["path"].tolist()[1:] == paths[1:] and csv["exported_path"].isna().all()


def test_hf_load_dataset_reads_the_export(source, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    root, paths = source
    cols = _columns(paths)
    dest = tmp_path / "ds"
    export_dataset(root, paths, dest=dest, formats=("imagefolder", "hf"), **cols)
    ds = datasets.load_dataset(
        "imagefolder", data_dir=str(dest), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert sorted(ds["label"]) == sorted(label for label in cols["labels"] if label is not None)
    assert ds[0]["image"].size == (48, 48)


def test_unsafe_labels_land_inside_dest(make_image_tree, tmp_path: Path) -> None:
    root = make_image_tree({"x": 7})
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    labels = ["../../etc", "a/b", "CON", "", "   ", "Cat", "cat"]
    outside_before = {p.name for p in tmp_path.iterdir()}
    dest = tmp_path / "export"
    report = export_dataset(root, paths, labels, list(range(7)), [1.0] * 7, [False] * 7, dest)
    folders = report.label_folders
    assert folders["../../etc"] == "_.._etc"
    assert folders["a/b"] == "a_b"
    assert folders["CON"] == "CON_"
    assert folders[""] == "unnamed" and folders["   "] == "unnamed_2"
    assert {folders["Cat"], folders["cat"]} == {"Cat", "cat_2"}  # sorted order: "Cat" < "cat"
    for folder in folders.values():
        assert (dest / folder).is_dir() and (dest / folder).resolve().parent == dest.resolve()
    assert {p.name for p in tmp_path.iterdir()} == outside_before | {"export"}
    assert report.n_exported == 7


def test_sanitize_label_rules() -> None:
    assert sanitize_label("Chats 🐱 / Katzen") == "Chats 🐱 _ Katzen"
    assert sanitize_label("..") == "unnamed"
    assert sanitize_label("a\x00b\nc") == "a_b_c"
    assert sanitize_label('a<>:"|?*b') == "a_______b"
    assert sanitize_label("nul") == "nul_" and sanitize_label("com1.txt") == "com1_.txt"
    assert sanitize_label("name. . ") == "name"
    assert sanitize_label(".hidden") == "hidden"
    assert sanitize_label("__init__") == "_init__"
    assert sanitize_label("Cafe\u0301") == "Café"  # NFC
    long = sanitize_label("é" * 80)
    assert len(long.encode("utf-8")) <= 100 and set(long) == {"é"}
    assert sanitize_label(os.fsdecode(b"x\xffy")) == "x_y"
    names = unique_folder_names(["Cat", "cat", "CAT", "a/b", "a_b", "x" * 120, "x" * 121])
    assert names["Cat"] == "Cat" and names["cat"] == "cat_2" and names["CAT"] == "CAT_3"
    assert names["a_b"] == "a_b_2"
    assert len(names["x" * 121].encode()) <= 100 and names["x" * 121].endswith("_2")
    assert unique_folder_names(["manifest.csv"], reserved=["MANIFEST.CSV"]) == {
        "manifest.csv": "manifest.csv_2"
    }


def test_existing_dest_refused_then_overwrite(source, tmp_path: Path) -> None:
    root, paths = source
    cols = _columns(paths)
    dest = tmp_path / "out"
    export_dataset(root, paths, dest=dest, **cols)
    with pytest.raises(ExportExists, match="already exists"):
        export_dataset(root, paths, dest=dest, **cols)
    cols2 = dict(cols, labels=["birds" if label else None for label in cols["labels"]])
    report = export_dataset(root, paths, dest=dest, overwrite=True, **cols2)
    assert report.label_folders == {"birds": "birds"}
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["birds"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "out"]
    # An empty existing folder is fine; a non-export folder is never replaced, even with overwrite.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export_dataset(root, paths, dest=empty, formats=("csv",), **cols).n_exported == 0
    other = tmp_path / "documents"
    other.mkdir()
    (other / "thesis.docx").write_text("precious")
    with pytest.raises(ExportExists, match="no .turtle-export.json marker"):
        export_dataset(root, paths, dest=other, overwrite=True, **cols)
    assert (other / "thesis.docx").read_text() == "precious"


def test_dest_inside_source_and_bad_inputs_refused(source, tmp_path: Path) -> None:
    root, paths = source
    cols = _columns(paths)
    with pytest.raises(ExportError, match="inside the image folder"):
        export_dataset(root, paths, dest=root / "export", **cols)
    with pytest.raises(ExportError, match="inside the image folder"):
        export_dataset(root, paths, dest=root, **cols)
    with pytest.raises(ExportError, match="contains the image folder"):
        export_dataset(root, paths, dest=tmp_path, overwrite=True, **cols)
    with pytest.raises(ExportError, match="one entry per image"):
        export_dataset(root, paths[:-1], dest=tmp_path / "o", **cols)
    with pytest.raises(ExportError, match="relative"):
        export_dataset(root, ["../x.png"], ["a"], [0], [1.0], [False], tmp_path / "o")
    with pytest.raises(ExportError, match="unknown export formats"):
        export_dataset(root, paths, dest=tmp_path / "o", formats=("zip",), **cols)
    assert not (root / "export").exists() and not (tmp_path / "o").exists()


def test_missing_source_file_is_reported_and_rest_exported(source, tmp_path: Path) -> None:
    root, paths = source
    cols = _columns(paths)
    paths = paths + ["cats/gone.png"]
    cols = {k: v + [v[0]] for k, v in cols.items()}
    report = export_dataset(root, paths, dest=tmp_path / "out", **cols)
    assert report.n_exported == len(paths) - 2
    assert any("could not be read" in w and "gone.png" in w for w in report.warnings)
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv", keep_default_na=False)
    assert manifest["exported_path"].iloc[-1] == ""


def test_hardlink_falls_back_to_copy_across_devices(source, tmp_path: Path, monkeypatch) -> None:
    root, paths = source

    def no_link(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(export_module.os, "link", no_link)
    report = export_dataset(root, paths, dest=tmp_path / "out", mode="hardlink", **_columns(paths))
    assert any("copied because hard links" in w for w in report.warnings)
    copied = tmp_path / "out" / "dogs" / "dogs_000.png"
    assert copied.read_bytes() == (root / "dogs" / "dogs_000.png").read_bytes()
    assert copied.stat().st_ino != (root / "dogs" / "dogs_000.png").stat().st_ino


def test_cancel_leaves_nothing(source, tmp_path: Path) -> None:
    root, paths = source
    cancel = threading.Event()
    seen = []

    def progress(p) -> None:
        seen.append(p.done)
        cancel.set()

    with pytest.raises(Cancelled):
        export_dataset(
            root, paths, dest=tmp_path / "out", progress=progress, cancel=cancel, **_columns(paths)
        )
    assert seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_export_speed(make_image_tree, tmp_path: Path) -> None:
    root = make_image_tree({"seed": 5})
    seeds = sorted((root / "seed").iterdir())
    for i in range(500):  # (make_image_tree draws invalid rectangles beyond 7 images per class)
        folder = root / f"c{i % 5}"
        folder.mkdir(exist_ok=True)
        (folder / f"img_{i:04d}.png").write_bytes(seeds[i % 5].read_bytes())
    paths = sorted(str(p.relative_to(root)) for p in root.glob("c*/*.png"))
    n = len(paths)
    labels = [p.split("/")[0] for p in paths]
    for mode in ("copy", "hardlink", "symlink"):
        start = time.perf_counter()
        report = export_dataset(
            root, paths, labels, [0] * n, [0.9] * n, [False] * n, tmp_path / mode, mode=mode
        )
        elapsed = time.perf_counter() - start
        print(f"\nexport {n} images ({mode}, all formats): {elapsed:.2f} s")
        assert report.n_exported == n
        assert elapsed < 20


# --------------------------------------------------------------------------- the export marker

FLAG_COMBINATIONS = [
    (mode, formats, overwrite)
    for mode in ("copy", "hardlink", "symlink")
    for formats in (ALL_FORMATS, ("csv",), ("imagefolder",), ("parquet", "hf"))
    for overwrite in (False, True)
]


def test_a_user_folder_with_a_manifest_survives_every_flag_combination(source, tmp_path: Path) -> None:
    root, paths = source
    cols = _columns(paths)
    user = tmp_path / "my-dataset"
    (user / "cats").mkdir(parents=True)
    (user / "manifest.csv").write_text("path,label\nmine.png,cat\n")  # looks like an export; is not
    (user / "cats" / "mine.png").write_bytes(b"my own picture")
    (user / "notes.txt").write_text("years of work")
    before = _snapshot(user)
    for mode, formats, overwrite in FLAG_COMBINATIONS:
        with pytest.raises(ExportExists, match="never replaced"):
            export_dataset(root, paths, dest=user, mode=mode, formats=formats, overwrite=overwrite, **cols)
        assert _snapshot(user) == before, (mode, formats, overwrite)
    # Nothing was left beside it either (no partial or backup folders).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "my-dataset"]


def test_a_forged_or_foreign_marker_is_not_proof(source, tmp_path: Path) -> None:
    root, paths = source
    cols = _columns(paths)
    for name, content in [
        ("empty", ""),
        ("not-json", "hello"),
        ("other-tool", json.dumps({"exported_by": "someone-else"})),
        ("a-list", json.dumps(["turtle-labels"])),
    ]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / MARKER).write_text(content)
        (folder / "data.bin").write_bytes(b"keep me")
        with pytest.raises(ExportExists, match="did not write"):
            export_dataset(root, paths, dest=folder, overwrite=True, **cols)
        assert (folder / "data.bin").read_bytes() == b"keep me"
    linked = tmp_path / "linked"
    linked.mkdir()
    real = tmp_path / "ours"
    export_dataset(root, paths, dest=real, formats=("csv",), **cols)
    (linked / MARKER).symlink_to(real / MARKER)  # a link to a real marker does not count
    (linked / "data.bin").write_bytes(b"keep me")
    with pytest.raises(ExportExists, match="never replaced"):
        export_dataset(root, paths, dest=linked, overwrite=True, **cols)
    assert (linked / "data.bin").read_bytes() == b"keep me"


def test_a_real_previous_export_is_replaced(source, tmp_path: Path) -> None:
    root, paths = source
    cols = _columns(paths)
    dest = tmp_path / "out"
    export_dataset(root, paths, dest=dest, **cols)
    marker = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    assert marker["exported_by"] == "turtle-labels" and marker["format_version"] == 2
    assert marker["exported_at"].endswith("Z") and marker["n_images"] == len(paths)
    assert set(marker["entries"]) == {p.name for p in dest.iterdir()} - {MARKER}
    assert check_replaceable(dest).replaceable
    with pytest.raises(ExportExists, match="previous export; allow replacing it"):
        export_dataset(root, paths, dest=dest, **cols)
    relabelled = dict(cols, labels=["birds" if label else None for label in cols["labels"]])
    report = export_dataset(root, paths, dest=dest, mode="symlink", overwrite=True, **relabelled)
    assert report.label_folders == {"birds": "birds"}
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["birds"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "out"]
    # An export made before markers listed their entries (format 1) is still recognised.
    (dest / MARKER).write_text(json.dumps({"exported_by": "turtle-labels", "mode": "copy", "n_images": 3}))
    export_dataset(root, paths, dest=dest, formats=("csv",), overwrite=True, **cols)
    assert sorted(p.name for p in dest.iterdir()) == [MARKER, "manifest.csv"]


def test_files_added_to_a_previous_export_keep_it_from_being_replaced(source, tmp_path: Path) -> None:
    root, paths = source
    cols = _columns(paths)
    dest = tmp_path / "out"
    export_dataset(root, paths, dest=dest, formats=("csv", "imagefolder"), **cols)
    (dest / "my-notes.txt").write_text("added by hand")
    with pytest.raises(ExportExists, match="files were added to it since \\(my-notes.txt\\)"):
        export_dataset(root, paths, dest=dest, overwrite=True, **cols)
    assert (dest / "my-notes.txt").read_text() == "added by hand"
    (dest / "my-notes.txt").unlink()
    assert export_dataset(root, paths, dest=dest, overwrite=True, **cols).n_exported == len(paths) - 1


def test_a_folder_that_appears_during_the_export_is_not_replaced(source, tmp_path: Path) -> None:
    root, paths = source
    dest = tmp_path / "out"

    def progress(p) -> None:  # another program fills `dest` while the export is being written
        if not dest.exists():
            dest.mkdir()
            (dest / "theirs.txt").write_text("not ours")

    with pytest.raises(ExportExists):
        export_dataset(root, paths, dest=dest, overwrite=True, progress=progress, **_columns(paths))
    assert [p.name for p in dest.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "out"]


@pytest.mark.parametrize(
    ("label", "folder"),
    [
        ("../", "_"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("", "unnamed"),
        (".", "unnamed"),
        ("..", "unnamed"),
        ("evil\u202egnp.exe", "evil_gnp.exe"),
        ("a\u2066b\u200fc", "a_b_c"),
        ("aux", "aux_"),
        ("LPT9.tar.gz", "LPT9_.tar.gz"),
        ("<b>bold</b>", "_b_bold__b_"),
        ("$x$ **y** `z`", "$x$ __y__ `z`"),  # * is not allowed on Windows
    ],
)
def test_sanitize_label_hostile_names(label: str, folder: str) -> None:
    assert sanitize_label(label) == folder


def test_sanitize_label_very_long_names_fit_every_file_system() -> None:
    for long in ("x" * 5000, "🐢" * 300, "\u202e" * 50 + "y" * 300):
        folder = sanitize_label(long)
        assert 0 < len(folder.encode("utf-8")) <= 100
        assert folder == sanitize_label(folder)  # stable
