from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.manifold import trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from turtle_core.maps import layouts as projection
from turtle_core.maps.epochs import MESSAGE as EPOCHS_MESSAGE
from turtle_core.maps.layouts import LayoutCache, concat_spaces, pca_layout, umap_layout
from turtle_core.progress import Cancelled


def _blobs(n: int = 300, dims: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(
        n_samples=n, centers=3, n_features=dims, cluster_std=1.0, center_box=(-6, 6), random_state=seed
    )
    return X.astype(np.float32), y


def _knn_accuracy(layout: np.ndarray, y: np.ndarray) -> float:
    return float(cross_val_score(KNeighborsClassifier(5), layout, y, cv=5).mean())


def test_concat_spaces_normalises_each_space() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 8)) * 100, rng.normal(size=(20, 3))
    a[3] = 0  # an all-zero row stays finite
    X = concat_spaces([a, b])
    assert X.shape == (20, 11) and X.dtype == np.float32
    norms_a, norms_b = np.linalg.norm(X[:, :8], axis=1), np.linalg.norm(X[:, 8:], axis=1)
    assert np.allclose(np.delete(norms_a, 3), 1, atol=1e-5) and norms_a[3] == 0
    assert np.allclose(norms_b, 1, atol=1e-5)
    with pytest.raises(ValueError, match="different numbers of images"):
        concat_spaces([a, b[:5]])
    with pytest.raises(ValueError, match="no embedding spaces"):
        concat_spaces([])


def test_pca_layout_keeps_blobs_apart() -> None:
    X, y = _blobs()
    start = time.perf_counter()
    layout = pca_layout(X)
    elapsed = time.perf_counter() - start
    assert layout.shape == (300, 2) and layout.dtype == np.float32
    assert _knn_accuracy(layout, y) >= 0.95
    assert np.array_equal(layout, pca_layout(X))  # deterministic
    big = np.random.default_rng(0).normal(size=(20_000, 512)).astype(np.float32)
    start = time.perf_counter()
    assert pca_layout(big).shape == (20_000, 2)
    print(f"\nPCA layout: 300x64 {elapsed * 1000:.0f} ms, 20000x512 {time.perf_counter() - start:.2f} s")


def test_pca_layout_edge_cases() -> None:
    assert pca_layout(np.zeros((0, 5))).shape == (0, 2)
    assert np.array_equal(pca_layout(np.ones((1, 5))), np.zeros((1, 2), np.float32))
    one_dim = pca_layout(np.arange(6, dtype=float).reshape(6, 1))
    assert one_dim.shape == (6, 2) and np.all(one_dim[:, 1] == 0) and np.ptp(one_dim[:, 0]) > 0
    with pytest.raises(ValueError, match="NaN"):
        pca_layout(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="2-D"):
        pca_layout(np.zeros(4))


def test_umap_on_few_points_uses_pca_without_importing_umap(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # importing it would fail
    X, _ = _blobs(n=10)
    assert np.array_equal(umap_layout(X), pca_layout(X))


@pytest.mark.slow
def test_umap_layout_on_blobs() -> None:
    X, y = _blobs(dims=128)
    reports = []
    start = time.perf_counter()
    layout = umap_layout(X, progress=reports.append)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = umap_layout(X)
    second = time.perf_counter() - start
    print(f"\nUMAP 300 points: first call {first:.1f} s (import + numba warm-up), second {second:.1f} s")
    assert layout.shape == (300, 2) and layout.dtype == np.float32
    # Within a blob the 128 dimensions are isotropic noise no 2-D layout keeps: 0.90 on either PCA solver,
    # moving by ±0.002 with float rounding in the pre-reduction.
    assert trustworthiness(X, layout, n_neighbors=10) >= 0.88
    assert _knn_accuracy(layout, y) >= 0.95
    assert np.allclose(layout, again)  # random_state=42: reproducible
    assert reports[-1].done == reports[-1].total == 300
    epochs = [r.done for r in reports if r.message == EPOCHS_MESSAGE]
    assert epochs and epochs == sorted(epochs) and epochs[-1] == 300  # the epochs' own progress


def test_umap_layout_reports_its_epochs_and_stops_within_them_when_cancelled() -> None:
    X, _ = _blobs(dims=16)
    arranging: list[int] = []
    cancel = threading.Event()

    def report(progress) -> None:
        if progress.message == EPOCHS_MESSAGE:
            arranging.append(progress.done)
            if progress.done > 0:
                cancel.set()  # the job is cancelled while UMAP arranges the points

    with pytest.raises(Cancelled):
        umap_layout(X, n_epochs=20_000, progress=report, cancel=cancel)
    assert arranging and arranging == sorted(arranging)
    assert arranging[-1] < 300 // 2  # stopped early in its epochs, not run to their end

    cancel_first = threading.Event()
    cancel_first.set()
    with pytest.raises(Cancelled):
        umap_layout(X, cancel=cancel_first)


def test_layout_cache_hits_and_keys(tmp_path: Path, monkeypatch) -> None:
    X, _ = _blobs(n=50, dims=8)
    calls = []
    real_pca = projection.pca_layout

    def counted_pca(data):
        calls.append("pca")
        return real_pca(data)

    def fake_umap(data, **kwargs):
        calls.append(("umap", kwargs["n_neighbors"], kwargs["random_state"]))
        return np.full((len(data), 2), kwargs["n_neighbors"], np.float32)

    monkeypatch.setattr(projection, "pca_layout", counted_pca)
    monkeypatch.setattr(projection, "umap_layout", fake_umap)
    cache = LayoutCache(tmp_path / "layouts")
    assert cache.cached("k1", "pca") is None
    first = cache.get_or_compute("k1", X, "pca")
    second = cache.get_or_compute("k1", X, "pca")
    assert calls == ["pca"]
    assert np.array_equal(first, second) and np.array_equal(cache.cached("k1", "pca"), first)
    cache.get_or_compute("k2", X, "pca")
    assert calls == ["pca", "pca"]

    u15 = cache.get_or_compute("k1", X, "umap")
    assert cache.get_or_compute("k1", X, "umap", n_neighbors=15) is not None  # same as the default
    u30 = cache.get_or_compute("k1", X, "umap", n_neighbors=30)
    assert calls[2:] == [("umap", 15, 42), ("umap", 30, 42)]
    assert u15[0, 0] == 15 and u30[0, 0] == 30
    assert np.array_equal(cache.cached("k1", "umap"), u15)
    assert cache.cached("k1", "umap", n_neighbors=5) is None

    # Wrong length (e.g. the image list changed under the same key) or a corrupt file: recompute.
    assert cache.get_or_compute("k1", X[:40], "pca").shape == (40, 2)
    path = cache.path_for("k1", "pca")
    path.write_bytes(b"garbage")
    assert cache.cached("k1", "pca") is None
    assert cache.get_or_compute("k1", X, "pca").shape == (50, 2)
    assert calls.count("pca") == 4
    assert sorted(p.suffix for p in (tmp_path / "layouts").iterdir()) == [".npy"] * 4  # no temp files
    with pytest.raises(ValueError, match="unknown layout method"):
        cache.get_or_compute("k1", X, "tsne")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown UMAP parameters"):
        cache.get_or_compute("k1", X, "umap", perplexity=30)
