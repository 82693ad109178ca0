"""Big folders: discovery fitted on a sample with every row assigned and scored in chunks, the PCA map
fitted on a sample and projected in chunks, and the embedding cache read back in blocks."""

from __future__ import annotations

import numpy as np

from turtle_core.discovery import sampled
from turtle_core.discovery.effort import Effort
from turtle_core.discovery.metrics import hungarian_accuracy
from turtle_core.embedding import cache as cache_module
from turtle_core.embedding.cache import EmbeddingCache
from turtle_core.ingest.scan import ImageRecord
from turtle_core.maps.layouts import _pca_fit_project, concat_spaces, pca_layout, pca_layout_spaces
from turtle_core.operations.pipeline import discover_features

TINY = Effort("tiny", 200, 1, 2, "two starts screened, 200 steps: for tests")


def _mixture(n: int, classes: int = 5, dim: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 3.0
    truth = rng.integers(0, classes, size=n)
    X = centres[truth] + rng.normal(size=(n, dim))
    return np.maximum(X, 0).astype(np.float32), truth


def _records(truth: np.ndarray) -> list[ImageRecord]:
    return [
        ImageRecord(f"class{c}/{i:06d}.jpg", 100, 0, f"{i:040x}", 8, 8, f"class{c}")
        for i, c in enumerate(truth.tolist())
    ]


def test_sampled_discovery_labels_and_scores_every_row() -> None:
    X, truth = _mixture(30_000)
    result = discover_features(
        _records(truth), [X], ["synthetic"], 5, TINY, backbones=["synthetic"], sample_rows=3_000
    )
    assert result.params["fit_sample"] == 3_000
    assert result.labels.shape == (30_000,) and (result.labels >= 0).all()
    assert hungarian_accuracy(truth, result.labels) >= 0.95
    assert np.isfinite(result.confidence).all() and np.isfinite(result.atypicality).all()
    assert result.confidence.min() >= 0.0 and result.confidence.max() <= 1.0
    assert result.probabilities.shape == (30_000, 5)
    np.testing.assert_array_equal(result.labels, result.probabilities.argmax(1))
    assert result.kmeans_metrics is not None and result.kmeans_metrics["accuracy"] >= 0.95


def test_small_folders_never_take_the_sampled_path() -> None:
    assert sampled.discovery_sample(sampled.SAMPLE_ROWS) is None
    assert sampled.discovery_sample(sampled.SAMPLE_ROWS + 1).size == sampled.SAMPLE_ROWS
    X, truth = _mixture(600, classes=3)
    result = discover_features(_records(truth), [X], ["synthetic"], 3, TINY, backbones=["synthetic"])
    assert "fit_sample" not in result.params


def test_chunked_prediction_equals_the_models_own() -> None:
    from turtle_core.discovery.turtle import Turtle

    X, _ = _mixture(2_000, classes=3)
    model = Turtle(3, outer_steps=50, random_state=0).fit([X])
    np.testing.assert_allclose(
        sampled.predict_proba_chunked(model, [X], chunk=333), model.predict_proba([X]), atol=1e-6
    )


def test_chunked_map_layout_equals_the_unchunked_one() -> None:
    # Clusters, as real embeddings have (on isotropic noise the top axes are not defined, and the
    # randomized solver's U·S and X·V differ).
    a, _ = _mixture(900, classes=4, dim=40, seed=3)
    b, _ = _mixture(900, classes=4, dim=24, seed=3)
    spaces = [a, b]
    exact = pca_layout(concat_spaces(spaces))
    # Up to the sample size: the exact layout, bit for bit.
    np.testing.assert_array_equal(pca_layout_spaces(spaces), exact)
    # Fitted on every row but projected 97 rows at a time: the same layout.
    chunked = _pca_fit_project(spaces, np.arange(900), chunk=97)
    np.testing.assert_allclose(chunked, exact, atol=1e-4)
    # Fitted on a sample: the chunk size changes nothing.
    a = pca_layout_spaces(spaces, fit_rows=300, chunk=64)
    b = pca_layout_spaces(spaces, fit_rows=300, chunk=900)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert a.shape == (900, 2) and np.isfinite(a).all()


def test_cache_lookup_in_blocks(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cache_module, "_LOOKUP_BLOCK", 7)
    cache = EmbeddingCache(tmp_path)
    vectors = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    vectors[13, 2] = np.nan  # never stored: read back as a miss
    keys = [f"{i:040x}" for i in range(50)]
    cache.add(keys[:30], vectors[:30])
    cache.add(keys[30:], vectors[30:])
    wanted = keys[::-1] + ["0" * 39 + "z"]
    found, rows = cache.lookup(wanted)
    expected = [i for i in range(49, -1, -1) if i != 13]
    assert found.sum() == len(expected) and not found[-1] and not found[wanted.index(keys[13])]
    np.testing.assert_array_equal(rows, vectors[expected])


def test_whitened_spaces_of_many_rows_fit_on_the_sample(monkeypatch) -> None:
    from turtle_core.discovery.features import SpacePreprocessor
    from turtle_core.discovery.hierarchy import whitened_spaces

    X, _ = _mixture(5_000, classes=4)
    monkeypatch.setattr(sampled, "SAMPLE_ROWS", 1_000)
    monkeypatch.setattr(sampled, "CHUNK_ROWS", 777)
    (W,) = whitened_spaces([X], 4)
    fitted = SpacePreprocessor("whiten", 64).fit(X[sampled.discovery_sample(5_000)])
    np.testing.assert_allclose(W, fitted.transform(X), atol=1e-4)
