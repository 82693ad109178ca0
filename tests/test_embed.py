"""Embedding with the offline EfficientNet-Lite0: cache reuse, failures, cancellation, progress."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from turtle_core.embedding.backbones import LoadedBackbone, load_backbone
from turtle_core.embedding.cache import EmbeddingCache
from turtle_core.embedding.embed import embed_images
from turtle_core.ingest.scan import ImageRecord, scan_folder
from turtle_core.paths import embedding_cache_dir
from turtle_core.progress import Cancelled, Progress


class CountingBackbone:
    """Wraps a loaded backbone and counts the images the model sees."""

    def __init__(self, inner: LoadedBackbone) -> None:
        self.inner = inner
        self.images = 0
        self.calls = 0
        self.before_encode: list = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        for hook in self.before_encode:
            hook(self)
        self.calls += 1
        self.images += batch.shape[0]
        return self.inner.encode(batch)


@pytest.fixture(scope="module")
def lite0() -> LoadedBackbone:
    return load_backbone("effnet-lite0", device="cpu")


@pytest.fixture
def model(lite0: LoadedBackbone) -> CountingBackbone:
    return CountingBackbone(lite0)


@pytest.fixture
def cache(lite0: LoadedBackbone) -> EmbeddingCache:
    return EmbeddingCache(embedding_cache_dir() / lite0.identity)


@pytest.fixture
def folder(make_image_tree) -> Path:
    return make_image_tree({"reds": 4, "blues": 4}, size=40)


def test_cache_makes_reruns_free(folder: Path, model: CountingBackbone, cache: EmbeddingCache) -> None:
    scan = scan_folder(folder)
    first = embed_images(folder, scan.images, model, cache=cache, batch_size=3, num_workers=1)
    assert first.computed == 8 and first.from_cache == 0 and model.images == 8
    assert first.vectors.shape == (8, 1280) and first.vectors.dtype == np.float32
    assert first.ok.all() and first.failed == [] and first.identity == model.inner.identity
    assert np.isfinite(first.vectors).all()
    assert np.linalg.norm(first.vectors[0] - first.vectors[5]) > 1e-3

    model.images = 0
    second = embed_images(folder, scan.images, model, cache=cache, num_workers=0)
    assert second.computed == 0 and model.images == 0 and second.from_cache == 8
    np.testing.assert_allclose(second.vectors, first.vectors, rtol=0, atol=0)

    # one new file: one image through the model
    Image.new("RGB", (40, 40), (0, 255, 0)).save(folder / "reds" / "new.png")
    third_scan = scan_folder(folder, previous=scan)
    third = embed_images(folder, third_scan.images, model, cache=cache)
    assert third.computed == 1 and model.images == 1 and third.from_cache == 8 and third.ok.all()

    # moved and renamed: found by content
    model.images = 0
    shutil.move(folder / "reds" / "reds_000.png", folder / "blues" / "renamed.png")
    fourth = embed_images(folder, scan_folder(folder).images, model, cache=cache)
    assert fourth.computed == 0 and model.images == 0 and fourth.ok.all() and len(fourth.ok) == 9


def test_duplicates_embedded_once(folder: Path, model: CountingBackbone) -> None:
    shutil.copy(folder / "reds" / "reds_001.png", folder / "blues" / "copy.png")
    scan = scan_folder(folder)
    result = embed_images(folder, scan.images, model, cache=None, num_workers=0)
    assert len(scan.images) == 9 and result.computed == 8 and model.images == 8
    paths = [r.path for r in scan.images]
    a, b = paths.index("reds/reds_001.png"), paths.index("blues/copy.png")
    np.testing.assert_array_equal(result.vectors[a], result.vectors[b])


def test_bad_files_are_reported_and_the_rest_embedded(
    folder: Path, model: CountingBackbone, cache: EmbeddingCache
) -> None:
    scan = scan_folder(folder)
    changed = folder / "blues" / "blues_002.png"
    changed.write_bytes(changed.read_bytes()[:50])  # corrupted after the scan
    (folder / "reds" / "reds_003.png").unlink()  # deleted after the scan
    # a record whose bytes match its hash but cannot be decoded (e.g. scanned by an older version)
    junk = b"definitely not an image"
    (folder / "junk.png").write_bytes(junk)
    from turtle_core.ingest.scan import hash_bytes

    fake = ImageRecord("junk.png", len(junk), 0, hash_bytes(junk), 1, 1, None)
    records = [*scan.images, fake]
    result = embed_images(folder, records, model, cache=cache, batch_size=4, num_workers=2)
    reasons = {f.path: f.reason for f in result.failed}
    assert reasons == {
        "blues/blues_002.png": "file changed since the scan (rescan the folder)",
        "reds/reds_003.png": "file no longer exists (rescan the folder)",
        "junk.png": "not an image (format not recognised)",
    }
    assert result.ok.sum() == 6 and result.vectors.shape == (6, 1280)
    assert [r.path for r, ok in zip(records, result.ok, strict=True) if not ok] == [
        "blues/blues_002.png",
        "reds/reds_003.png",
        "junk.png",
    ]
    found, _ = cache.lookup([r.content_hash for r in records])
    assert found.sum() == 6  # failures are not cached


def test_cancel_then_resume(folder: Path, model: CountingBackbone, cache: EmbeddingCache) -> None:
    scan = scan_folder(folder)
    cancel = threading.Event()

    def stop_after_two_batches(counter: CountingBackbone) -> None:
        if counter.calls == 2:
            cancel.set()

    model.before_encode.append(stop_after_two_batches)
    with pytest.raises(Cancelled):
        embed_images(folder, scan.images, model, cache=cache, batch_size=2, cancel=cancel)
    assert model.images == 6  # the third batch ran; cancellation is checked between batches
    assert len(cache) == 6  # everything computed before the cancel reached the cache

    model.before_encode.clear()
    model.images = 0
    resumed = embed_images(folder, scan.images, model, cache=EmbeddingCache(cache.directory), batch_size=2)
    assert resumed.computed == 2 and model.images == 2 and resumed.from_cache == 6 and resumed.ok.all()


def test_progress_reaches_the_end(folder: Path, model: CountingBackbone) -> None:
    reports: list[Progress] = []
    scan = scan_folder(folder)
    embed_images(folder, scan.images, model, batch_size=3, progress=reports.append, num_workers=0)
    assert all(p.stage == "embed" for p in reports)
    assert reports[-1].done == reports[-1].total == 8
    assert reports[-1].rate > 0


def test_empty_input(model: CountingBackbone) -> None:
    result = embed_images("/nonexistent", [], model)
    assert result.vectors.shape == (0, 1280) and result.ok.shape == (0,) and result.computed == 0


def _refuse_loading(*_args, **_kwargs):
    raise AssertionError("the backbone was loaded although every embedding was cached")


def test_all_cached_embeddings_skip_loading_the_weights(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import turtle_core.embedding.embed as embed_module
    from turtle_core.embedding.embed import embed_folder_images

    scan = scan_folder(folder)
    first = embed_folder_images(folder, scan.images, "effnet-lite0", device="cpu", cache_root=tmp_path)
    assert first.computed == 8 and first.ok.all()

    loads = []
    real_load = embed_module.load_backbone
    monkeypatch.setattr(embed_module, "load_backbone", _refuse_loading)
    again = embed_folder_images(folder, scan.images, "effnet-lite0", device="cpu", cache_root=tmp_path)
    assert again.computed == 0 and again.from_cache == 8 and again.identity == first.identity
    np.testing.assert_array_equal(again.vectors, first.vectors)

    # A new image needs the model: it is loaded, and only the new image is computed.
    monkeypatch.setattr(embed_module, "load_backbone", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    Image.new("RGB", (40, 40), (0, 255, 0)).save(folder / "reds" / "new.png")
    grown = scan_folder(folder, previous=scan)
    third = embed_folder_images(folder, grown.images, "effnet-lite0", device="cpu", cache_root=tmp_path)
    assert len(loads) == 1 and third.computed == 1 and third.from_cache == 8 and third.ok.all()


def test_changed_weights_file_is_loaded_again(
    folder: Path, tmp_path: Path, lite0: LoadedBackbone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remembered identity is keyed by the weights file's size and time: a replaced checkpoint
    (same path) is loaded again instead of reusing vectors computed with the old weights."""
    import os

    import turtle_core.embedding.embed as embed_module
    from turtle_core.embedding.backbones import wheel_file
    from turtle_core.embedding.embed import embed_folder_images

    checkpoint = tmp_path / "lite0.pth"
    shutil.copy(wheel_file(lite0.spec), checkpoint)
    scan = scan_folder(folder)
    cache_root = tmp_path / "cache"
    first = embed_folder_images(folder, scan.images, "effnet-lite0", str(checkpoint), cache_root=cache_root)

    loads = []
    real_load = embed_module.load_backbone
    monkeypatch.setattr(embed_module, "load_backbone", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    stat = checkpoint.stat()
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = embed_folder_images(folder, scan.images, "effnet-lite0", str(checkpoint), cache_root=cache_root)
    assert len(loads) == 1 and second.identity != first.identity and second.computed == 8

    # An unreadable memo only costs a load.
    (cache_root / "identities.json").write_text("{not json")
    third = embed_folder_images(folder, scan.images, "effnet-lite0", str(checkpoint), cache_root=cache_root)
    assert len(loads) == 2 and third.identity == second.identity and third.computed == 0


class NaNForFirstImage(CountingBackbone):
    """The real backbone, except that the first image of every batch comes out as NaN (fp16 overflow)."""

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        features = super().encode(batch).clone()
        features[0] = float("nan")
        return features


def test_non_finite_features_are_reported_and_never_cached(
    folder: Path, lite0: LoadedBackbone, cache: EmbeddingCache
) -> None:
    """Defect 8: NaN vectors must not poison the cache (and with it every later discovery)."""
    records = scan_folder(folder).images
    broken = NaNForFirstImage(lite0)
    result = embed_images(folder, records, broken, cache=cache, batch_size=4, num_workers=0)
    assert len(result.failed) == 2 and all("non-finite" in item.reason for item in result.failed)
    assert result.ok.sum() == len(records) - 2 and np.isfinite(result.vectors).all()
    assert len(cache) == len(records) - 2
    healthy = CountingBackbone(lite0)
    again = embed_images(folder, records, healthy, cache=cache, batch_size=4, num_workers=0)
    assert again.ok.all() and healthy.images == 2  # only the two refused images are computed again


def test_cache_refuses_and_skips_non_finite_vectors(cache: EmbeddingCache) -> None:
    dim = 4
    vectors = np.ones((3, dim), np.float32)
    vectors[1, 2] = np.inf
    assert cache.add(["a", "b", "c"], vectors) == 2
    found, rows = cache.lookup(["a", "b", "c"])
    assert found.tolist() == [True, False, True] and rows.shape == (2, dim)
