"""Clustering metrics on hand-made labelings with known answers, and the k-means baseline."""

from __future__ import annotations

import numpy as np
import pytest

from turtle_core.discovery.metrics import (
    ari,
    contingency_matrix,
    evaluate,
    hungarian_accuracy,
    kmeans_baseline,
    nmi,
)


def test_permuted_cluster_ids_score_perfectly() -> None:
    truth = [0, 0, 1, 1, 2, 2, 2]
    renamed = [5, 5, 9, 9, 7, 7, 7]
    assert hungarian_accuracy(truth, renamed) == 1.0
    assert nmi(truth, renamed) == pytest.approx(1.0)
    assert ari(truth, renamed) == pytest.approx(1.0)


def test_known_partial_accuracy() -> None:
    truth = [0, 0, 0, 0, 1, 1, 1, 1]
    pred = [1, 1, 1, 0, 0, 0, 0, 0]  # best matching 1→0, 0→1 gets 3 + 4 right
    assert hungarian_accuracy(truth, pred) == pytest.approx(7 / 8)


def test_more_clusters_than_classes_counts_unmatched_as_errors() -> None:
    truth = [0, 0, 0, 0, 1, 1, 1, 1]
    pred = [0, 0, 2, 2, 1, 1, 1, 1]  # class 0 split in two: only one half can be matched
    assert hungarian_accuracy(truth, pred) == pytest.approx(6 / 8)
    assert hungarian_accuracy(pred, truth) == pytest.approx(6 / 8)  # fewer clusters than classes


def test_single_cluster_scores() -> None:
    truth = [0, 1, 2, 3]
    pred = [0, 0, 0, 0]
    assert hungarian_accuracy(truth, pred) == pytest.approx(0.25)
    assert nmi(truth, pred) == pytest.approx(0.0)
    assert ari(truth, pred) == pytest.approx(0.0)


def test_contingency_matrix_counts() -> None:
    table = contingency_matrix(["a", "a", "b"], [3, 4, 4])
    np.testing.assert_array_equal(table, [[1, 0], [1, 1]])


def test_evaluate_keys_and_mismatched_lengths() -> None:
    result = evaluate([0, 1, 1], [1, 0, 0])
    assert set(result) == {"accuracy", "nmi", "ari"}
    assert result["accuracy"] == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        evaluate([0, 1], [0, 1, 1])


def test_kmeans_baseline_recovers_blobs() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 10
    truth = np.repeat(np.arange(3), 50)
    X = centers[truth] + rng.normal(size=(150, 8))
    labels = kmeans_baseline([X, X[:, :4]], 3, random_state=0)
    assert labels.shape == (150,)
    assert hungarian_accuracy(truth, labels) == 1.0
    raw = kmeans_baseline([X], 3, normalize=False, random_state=0)
    assert hungarian_accuracy(truth, raw) == 1.0
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans_baseline([X], 0)
