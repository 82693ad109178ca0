from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from turtle_core.ingest import thumbnails as thumbnails_module
from turtle_core.ingest.scan import hash_bytes
from turtle_core.ingest.thumbnails import ThumbnailCache
from turtle_core.progress import Cancelled


def _image(path: Path, size: tuple[int, int], seed: int = 0) -> tuple[Path, str]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path, hash_bytes(path.read_bytes())


@pytest.fixture
def counting_loader(monkeypatch):
    calls = []
    real = thumbnails_module.decode_image

    def counted(data, **kwargs):
        calls.append(hash_bytes(data))
        return real(data, **kwargs)

    monkeypatch.setattr(thumbnails_module, "decode_image", counted)
    return calls


def test_thumbnail_made_once_and_size_bounded(tmp_path: Path, counting_loader) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs", size=64)
    wide, wide_hash = _image(tmp_path / "img" / "wide.jpg", (400, 200))
    small, small_hash = _image(tmp_path / "img" / "small.png", (20, 30), seed=1)

    thumb = cache.get(wide, wide_hash)
    assert thumb == cache.path_for(wide_hash) and thumb.is_file()
    with Image.open(thumb) as im:
        assert im.format == "WEBP" and im.size == (64, 32)
    mtime = thumb.stat().st_mtime_ns
    assert cache.get(wide, wide_hash) == thumb
    assert counting_loader == [wide_hash]  # the second call did not decode again
    assert thumb.stat().st_mtime_ns == mtime
    # A new cache object over the same folder also finds it without decoding.
    assert ThumbnailCache(tmp_path / "thumbs", size=64).get(wide, wide_hash) == thumb
    assert counting_loader == [wide_hash]

    with Image.open(cache.get(small, small_hash)) as im:
        assert im.size == (20, 30)  # never enlarged
    # Another size is another file.
    assert ThumbnailCache(tmp_path / "thumbs", size=32).path_for(wide_hash) != thumb
    leftovers = [p for p in (tmp_path / "thumbs").rglob("*") if p.is_file() and p.suffix != ".webp"]
    assert leftovers == []  # no temp files


def test_bad_images_give_none(tmp_path: Path, counting_loader) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8 not really a jpeg")
    good, good_hash = _image(tmp_path / "good.png", (50, 50))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:100])
    assert cache.get(garbage, "a" * 64) is None
    assert cache.get(truncated, "b" * 64) is None
    assert cache.get(tmp_path / "missing.png", "c" * 64) is None
    assert cache.get(tmp_path, "d" * 64) is None  # a folder
    assert cache.get(garbage, "a" * 64) is None
    assert len(counting_loader) == 2  # the two that could be read; a known-bad one is not read again
    assert not (tmp_path / "thumbs").exists() or not any((tmp_path / "thumbs").rglob("*.webp"))
    # Odd hashes never escape the cache folder.
    odd = cache.path_for("../../etc/passwd")
    assert odd.resolve().is_relative_to((tmp_path / "thumbs").resolve())
    assert cache.get(good, good_hash) is not None


def test_ensure_many_builds_missing_in_order(tmp_path: Path, counting_loader) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs", size=48)
    items = [_image(tmp_path / "img" / f"{i}.png", (80, 60), seed=i) for i in range(12)]
    bad = tmp_path / "img" / "bad.png"
    bad.write_bytes(b"nope")
    items.insert(5, (bad, "e" * 64))
    cache.get(*items[0])
    reports = []
    results = cache.ensure_many(items, workers=2, progress=reports.append)
    assert results[5] is None
    assert [r for i, r in enumerate(results) if i != 5] == [
        cache.path_for(h) for i, (_, h) in enumerate(items) if i != 5
    ]
    assert all(r.is_file() for r in results if r is not None)
    assert len(counting_loader) == 13  # 1 before + 12 missing (11 good, 1 bad); none twice
    assert reports[-1].done == reports[-1].total == 13
    assert cache.ensure_many(items) == results
    assert len(counting_loader) == 13  # the known-bad one is remembered by this cache object


def test_ensure_many_cancel(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs", size=32)
    items = [_image(tmp_path / "img" / f"{i}.png", (64, 64), seed=i) for i in range(40)]
    cancel = threading.Event()
    real_get = cache.get
    made_so_far = []

    def get_then_cancel(path: Path, content_hash: str):
        # Cancel after the second thumbnail (progress reports are throttled, so they cannot time this).
        made_so_far.append(path)
        if len(made_so_far) >= 2:
            cancel.set()
        return real_get(path, content_hash)

    cache.get = get_then_cancel  # type: ignore[method-assign]
    with pytest.raises(Cancelled):
        cache.ensure_many(items, workers=1, cancel=cancel)
    made = sum(cache.path_for(h).is_file() for _, h in items)
    assert 2 <= made < 40


def test_warm_thumbnails_are_fast(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs")
    items = [_image(tmp_path / "img" / f"{i}.jpg", (640, 480), seed=i) for i in range(100)]
    start = time.perf_counter()
    cache.ensure_many(items, workers=2)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    paths = [cache.get(p, h) for p, h in items]
    warm = time.perf_counter() - start
    sizes = [p.stat().st_size for p in paths]
    print(
        f"\nthumbnails 640x480 JPEG -> 192 WebP: cold {cold * 10:.1f} ms/image (2 threads), "
        f"warm 100 in {warm * 1000:.1f} ms, mean {np.mean(sizes) / 1024:.1f} KiB"
    )
    assert all(paths)
    assert warm < 0.5


def _solid(path: Path, colour: tuple[int, int, int]) -> tuple[Path, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (60, 60), colour).save(path)
    return path, hash_bytes(path.read_bytes())


def _mean_colour(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), float).reshape(-1, 3).mean(0)


def test_a_file_changed_since_its_scan_never_files_its_picture_under_the_old_hash(tmp_path: Path) -> None:
    red, blue = (220, 20, 20), (20, 20, 220)
    cache = ThumbnailCache(tmp_path / "thumbs", size=32)
    path, scanned = _solid(tmp_path / "a" / "photo.png", red)
    _, now = _solid(path, blue)  # edited after the scan: another picture
    assert cache.get(path, scanned) is None  # not the picture the scan saw
    assert not cache.path_for(scanned).exists()  # nothing filed under the scan-time hash...
    assert np.allclose(_mean_colour(cache.path_for(now)), blue, atol=12)  # ...the new one under its own
    # Another project holding the original content (the scan-time hash) gets the original picture.
    original, same = _solid(tmp_path / "b" / "original.png", red)
    assert same == scanned
    thumb = cache.get(original, scanned)
    assert thumb == cache.path_for(scanned)
    assert np.allclose(_mean_colour(thumb), red, atol=12)


def test_a_damaged_thumbnail_file_is_made_again_not_handed_to_a_page(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs", size=32)
    path, digest = _solid(tmp_path / "photo.png", (20, 180, 20))
    thumb = cache.get(path, digest)
    for damage in (lambda data: data[: len(data) // 2], lambda data: bytes(b ^ 0xFF for b in data)):
        thumb.write_bytes(damage(thumb.read_bytes()))
        again = ThumbnailCache(tmp_path / "thumbs", size=32).get(path, digest)  # a page's next run
        assert again == thumb
        with Image.open(again) as image:
            image.load()  # decodes: what a page shows never fails
        assert np.allclose(_mean_colour(again), (20, 180, 20), atol=12)
