"""Per-image confidence finds wrong labels on easy data, spreads per cluster; atypicality finds outliers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from turtle_core.discovery.confidence import atypicality, label_confidence, percentile_rank


@pytest.fixture(autouse=True)
def _one_thread(one_cpu_thread):
    yield


def _blobs(n_per: int, n_classes: int, dim: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 4
    truth = np.repeat(np.arange(n_classes), n_per)
    return (centres[truth] + rng.normal(size=(truth.size, dim))).astype(np.float32), truth


def test_wrong_labels_sit_at_the_low_end() -> None:
    X, truth = _blobs(150, 5)
    rng = np.random.default_rng(1)
    labels = truth.copy()
    flipped = rng.choice(truth.size, 60, replace=False)
    labels[flipped] = (truth[flipped] + rng.integers(1, 5, flipped.size)) % 5
    wrong = labels != truth

    confidence = label_confidence([X], labels)

    assert roc_auc_score(wrong, -confidence) >= 0.9
    assert confidence.min() >= 0.0 and confidence.max() <= 1.0


def test_cluster_means_spread_and_strays_rank_below_their_cluster() -> None:
    X, truth = _blobs(150, 4, seed=2)
    labels = truth.copy()
    strays = np.random.default_rng(3).choice(np.flatnonzero(truth != 1), 60, replace=False)
    labels[strays] = 1  # cluster 1 also holds 60 images scattered over the other classes
    confidence = label_confidence([X], labels)
    means = {k: float(confidence[labels == k].mean()) for k in range(4)}
    assert max(means.values()) - min(means.values()) > 0.15, means  # not saturated
    in_cluster = labels == 1
    assert roc_auc_score(truth[in_cluster] != 1, -confidence[in_cluster]) >= 0.95


def test_excluded_rows_take_no_part() -> None:
    X, truth = _blobs(60, 3, seed=3)
    labels = truth.copy()
    labels[:5] = -1
    confidence = label_confidence([X], labels)
    assert np.all(confidence[:5] == 1.0)
    assert atypicality([X], labels)[:5].tolist() == [0.0] * 5


def test_atypicality_flags_images_that_fit_no_cluster() -> None:
    X, truth = _blobs(200, 3, seed=4)
    rng = np.random.default_rng(5)
    strangers = rng.normal(size=(12, X.shape[1])).astype(np.float32) * 4 + 12.0
    Xall = np.vstack([X, strangers])
    labels = np.concatenate([truth, rng.integers(0, 3, 12)])
    is_stranger = np.r_[np.zeros(truth.size, bool), np.ones(12, bool)]

    score = atypicality([Xall], labels)

    assert roc_auc_score(is_stranger, score) >= 0.95


def test_percentile_rank_handles_ties() -> None:
    assert percentile_rank(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [5 / 6, 0.0, 5 / 6, 1 / 3]


def test_same_labels_give_the_same_queue() -> None:
    """The randomised PCA is seeded: two calls order the review queue identically."""
    X, truth = _blobs(100, 4, dim=200, seed=6)
    labels = truth.copy()
    labels[::7] = (labels[::7] + 1) % 4
    twice = [label_confidence([X], labels) for _ in range(2)]
    assert np.array_equal(*twice)
