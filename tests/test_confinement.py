"""Served mode: a link inside an allowed folder that points outside it is never followed by the engine
(scan, thumbnails, previews, export), once the UI tells it which folders it may read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from turtle_core.ingest.scan import UnusableImage, hash_bytes, load_image, scan_folder
from turtle_core.ingest.thumbnails import ThumbnailCache
from turtle_core.paths import OUTSIDE_REASON, OutsideReadRoots, is_within, open_within, resolve_roots


def _png(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), colour).save(path)
    return path


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An allowed folder holding a project folder with links in and out; a private folder beside it."""
    allowed = tmp_path / "allowed"
    private = tmp_path / "private"
    _png(private / "secret.png", (1, 2, 3))
    _png(private / "more" / "secret2.png", (4, 5, 6))
    photos = allowed / "photos"
    _png(photos / "cats" / "cat.png")
    _png(allowed / "shared" / "dog.png", (30, 30, 200))
    (photos / "cats" / "leak.png").symlink_to(private / "secret.png")  # a file link out
    (photos / "leaked-folder").symlink_to(private / "more")  # a folder link out
    (photos / "cats" / "dog.png").symlink_to(allowed / "shared" / "dog.png")  # a link that stays inside
    return allowed, photos, private


def test_the_scan_skips_links_out_of_the_allowed_folders_and_says_why(served) -> None:
    allowed, photos, _ = served
    confined = scan_folder(photos, within=resolve_roots([allowed]))
    assert [r.path for r in confined.images] == ["cats/cat.png", "cats/dog.png"]
    reasons = {s.path: s.reason for s in confined.skipped}
    assert reasons == {"cats/leak.png": OUTSIDE_REASON, "leaked-folder": OUTSIDE_REASON}
    # Asked for nothing, the scan follows every link as before (this machine's own user).
    free = scan_folder(photos)
    assert {r.path for r in free.images} == {
        "cats/cat.png",
        "cats/dog.png",
        "cats/leak.png",
        "leaked-folder/secret2.png",
    }
    # A rescan that reuses an earlier, unconfined scan still drops what lies outside.
    again = scan_folder(photos, previous=free, within=resolve_roots([allowed]))
    assert [r.path for r in again.images] == ["cats/cat.png", "cats/dog.png"]


def test_a_link_swapped_in_after_the_scan_is_refused_when_read(served, tmp_path: Path) -> None:
    allowed, photos, private = served
    roots = resolve_roots([allowed])
    scan = scan_folder(photos, within=roots)
    record = next(r for r in scan.images if r.path == "cats/cat.png")
    target = photos / "cats" / "cat.png"
    target.unlink()
    target.symlink_to(private / "secret.png")  # replaced by a link out after the scan
    with pytest.raises(OutsideReadRoots):
        open_within(target, roots)
    with pytest.raises(UnusableImage, match="outside the allowed folders"):
        load_image(target, within=roots)
    assert load_image(target).size == (24, 24)  # unconfined: read as before
    cache = ThumbnailCache(tmp_path / "thumbs", within=roots)
    assert cache.get(target, hash_bytes((private / "secret.png").read_bytes())) is None
    assert not any((tmp_path / "thumbs").rglob("*.*"))  # nothing of the private file was rendered
    inside = photos / "cats" / "dog.png"
    assert cache.get(inside, hash_bytes(inside.read_bytes())) is not None
    assert record.content_hash != hash_bytes((private / "secret.png").read_bytes())


def test_read_roots_are_resolved_and_compared_by_whole_folder(tmp_path: Path) -> None:
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "ab").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    roots = resolve_roots([tmp_path / "alias" / "a"])
    assert roots == (tmp_path.resolve() / "data" / "a",)
    assert is_within(tmp_path / "data" / "a" / "x.png", roots)
    assert not is_within(tmp_path / "data" / "ab" / "x.png", roots)  # a shared prefix is not inside
    assert not is_within(tmp_path / "data" / "a" / ".." / "ab", roots)
    assert is_within("/anything", None) and resolve_roots(None) is None
    assert os.path.isdir(roots[0])


@pytest.mark.parametrize("mode", ["copy", "hardlink", "symlink"])
def test_an_export_never_carries_a_file_from_outside_the_allowed_folders(served, mode: str) -> None:
    from turtle_core.export.dataset import export_dataset

    allowed, photos, private = served
    paths = ["cats/cat.png", "cats/dog.png", "cats/leak.png"]  # as an unconfined scan listed them
    dest = allowed / "exports" / mode
    report = export_dataset(
        photos,
        paths,
        ["cat", "dog", "cat"],
        [0, 1, 0],
        [0.9, 0.9, 0.9],
        [False] * 3,
        dest,
        mode=mode,
        within=resolve_roots([allowed]),
    )
    assert report.n_exported == 2
    assert any("leak.png" in w and OUTSIDE_REASON in w for w in report.warnings)
    secret = (private / "secret.png").read_bytes()
    for path in dest.rglob("*"):
        if path.is_file():
            assert path.read_bytes() != secret, path
            assert is_within(path, resolve_roots([allowed])), path
