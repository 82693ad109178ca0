"""The bundled Animal-MNIST demo folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from turtle_core.ingest import demo
from turtle_core.ingest.demo import ANIMAL_CLASSES, default_demo_dir, load_animal_mnist, write_demo_folder
from turtle_core.ingest.scan import load_image, scan_folder


def test_bundled_data_shape() -> None:
    images, labels = load_animal_mnist()
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * len(ANIMAL_CLASSES)


def test_demo_folder_counts_and_images(tmp_path: Path) -> None:
    dest = write_demo_folder(tmp_path / "demo", per_class=7, seed=3)
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == sorted(ANIMAL_CLASSES)
    for name in ANIMAL_CLASSES:
        files = sorted((dest / name).iterdir())
        assert len(files) == 7 and all(f.name.startswith(f"{name}_") and f.suffix == ".png" for f in files)
    sample = dest / "zebra" / sorted(p.name for p in (dest / "zebra").iterdir())[0]
    with Image.open(sample) as raw:
        assert raw.format == "PNG" and raw.size == (28, 28)
    assert load_image(sample).mode == "RGB"
    # pixels are the bundled ones, and the file name says which
    images, labels = load_animal_mnist()
    index = int(sample.stem.split("_")[1])
    assert ANIMAL_CLASSES[labels[index]] == "zebra"
    np.testing.assert_array_equal(np.asarray(Image.open(sample)), images[index])
    scan = scan_folder(dest)
    assert len(scan.images) == 70 and scan.skipped == []
    assert sorted(set(scan.folder_labels() or [])) == sorted(ANIMAL_CLASSES)


def test_idempotent_and_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write_demo_folder(tmp_path / "a", per_class=4, seed=1)
    names = sorted(str(p.relative_to(first)) for p in first.rglob("*.png"))
    mtimes = {p: p.stat().st_mtime_ns for p in first.rglob("*.png")}

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a complete demo must not be rewritten")

    monkeypatch.setattr(demo, "load_animal_mnist", fail)
    assert write_demo_folder(first, per_class=4, seed=1) == first
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*.png")} == mtimes
    monkeypatch.undo()
    second = write_demo_folder(tmp_path / "b", per_class=4, seed=1)
    assert sorted(str(p.relative_to(second)) for p in second.rglob("*.png")) == names
    third = write_demo_folder(tmp_path / "c", per_class=4, seed=2)
    assert sorted(str(p.relative_to(third)) for p in third.rglob("*.png")) != names


def test_interrupted_write_is_not_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "demo"
    calls = {"n": 0}
    real_save = Image.Image.save

    def crash_midway(self: Image.Image, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 15:
            raise OSError("disk full")
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        write_demo_folder(dest, per_class=3)
    monkeypatch.undo()
    assert not dest.exists()
    assert not list(tmp_path.glob(".demo.partial-*"))
    write_demo_folder(dest, per_class=3)
    assert len(list(dest.rglob("*.png"))) == 30


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "holiday.jpg").write_bytes(b"user data")
    with pytest.raises(FileExistsError):
        write_demo_folder(dest, per_class=2)
    assert (dest / "holiday.jpg").read_bytes() == b"user data"


def test_default_location(turtle_home: Path) -> None:
    assert default_demo_dir(200) == turtle_home / "demo" / "animal-mnist-2000"
    assert write_demo_folder(per_class=1) == turtle_home / "demo" / "animal-mnist-10"
