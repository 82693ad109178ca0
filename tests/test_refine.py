"""refine_labels: known labels are law, fixes propagate to similar images, unchecked classes survive."""

from __future__ import annotations

import numpy as np
import pytest

from turtle_core.discovery.metrics import hungarian_accuracy
from turtle_core.discovery.refine import FeatureProbe, refine_labels


def _blobs(n_per: int, n_classes: int, dim: int = 32, spread: float = 0.6, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 3
    truth = np.repeat(np.arange(n_classes), n_per)
    X = centres[truth] + rng.normal(scale=spread * 3, size=(truth.size, dim))
    return X.astype(np.float32), truth


@pytest.fixture(autouse=True)
def _one_thread(one_cpu_thread):
    yield


def test_known_rows_keep_their_labels_and_fixes_propagate() -> None:
    X, truth = _blobs(200, 4)
    rng = np.random.default_rng(1)
    # A discovery that merged class 3 into class 2: every class-3 image carries label 2.
    labels = truth.copy()
    labels[truth == 3] = 2
    known = np.zeros(truth.size, bool)
    known[rng.choice(truth.size, 60, replace=False)] = True
    labels[known] = truth[known]  # the curator fixed what they checked (~15 class-3 images moved)
    # A deliberately odd known label: refine must not touch it even though the features disagree.
    odd = np.flatnonzero(known & (truth == 0))[0]
    labels[odd] = 1

    result = refine_labels([X], labels, known)

    assert np.array_equal(result.labels[known], labels[known])
    assert result.labels[odd] == 1
    assert np.all(result.confidence[known] == 1.0)
    unknown = ~known
    before = (labels[unknown] == truth[unknown]).mean()
    after = (result.labels[unknown] == truth[unknown]).mean()
    assert before < 0.8 and after > 0.95, (before, after)
    assert result.changed(labels).sum() > 100


def test_a_class_nobody_checked_does_not_vanish() -> None:
    X, truth = _blobs(150, 3, seed=2)
    labels = truth * 10 + 7  # any integers: 7, 17, 27
    known = np.zeros(truth.size, bool)
    known[np.flatnonzero(truth == 0)[:10]] = True
    known[np.flatnonzero(truth == 1)[:10]] = True  # class 27: only unknown rows

    result = refine_labels([X], labels, known)

    assert set(np.unique(result.labels)) == {7, 17, 27}
    assert (result.labels[truth == 2] == 27).mean() > 0.9


def test_two_spaces_and_a_prepared_probe_reused_across_rounds() -> None:
    X, truth = _blobs(120, 3, seed=3)
    noise = np.random.default_rng(4).normal(size=(truth.size, 8)).astype(np.float32)
    probe = FeatureProbe([X, noise])
    labels = np.zeros_like(truth)
    known = np.zeros(truth.size, bool)
    order = np.random.default_rng(5).permutation(truth.size)
    for round_ in range(3):  # the curator checks 12 more images per round
        known[order[12 * round_ : 12 * (round_ + 1)]] = True
        labels[known] = truth[known]
        labels = refine_labels(probe, labels, known).labels
    assert hungarian_accuracy(truth, labels) > 0.95


def test_bad_lengths_are_refused() -> None:
    X, truth = _blobs(20, 2)
    with pytest.raises(ValueError, match="one entry per row"):
        refine_labels([X], truth[:-1], np.ones(truth.size, bool))


def test_probe_scores_in_chunks_without_a_standardised_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The standardisation folded into the weights, row chunk by row chunk, equals scoring a standardised copy."""
    import torch

    import turtle_core.discovery.sampled as sampled

    rng = np.random.default_rng(4)
    spaces = [
        rng.normal(3.0, 2.0, size=(300, 12)).astype(np.float32),
        rng.normal(size=(300, 5)).astype(np.float32),
    ]
    monkeypatch.setattr(sampled, "CHUNK_ROWS", 64)
    probe = FeatureProbe(spaces)
    W = torch.from_numpy(rng.normal(size=(17, 3)).astype(np.float32))
    b = torch.from_numpy(rng.normal(size=3).astype(np.float32))
    standardised = np.hstack([(X - X.mean(0)) / X.std(0) for X in spaces])
    expected = torch.softmax(torch.from_numpy(standardised) @ W + b, dim=1).numpy()
    assert np.allclose(probe.predict(W, b), expected, atol=1e-5)


def test_probe_on_a_subset_of_rows_equals_the_copied_rows() -> None:
    """`FeatureProbe(spaces, rows=...)` (what the app passes: the active images) without copying them."""
    X, truth = _blobs(100, 3, seed=5)
    labels = truth.copy()
    labels[::9] = (labels[::9] + 1) % 3
    rows = np.flatnonzero(np.arange(truth.size) % 7 != 0)  # every seventh image excluded
    known = np.zeros(rows.size, bool)
    known[::5] = True
    picked = labels[rows].copy()
    picked[known] = truth[rows][known]

    subset = refine_labels(FeatureProbe([X], rows=rows), picked, known)
    copied = refine_labels([X[rows]], picked, known)

    assert np.array_equal(subset.labels, copied.labels)
    assert np.allclose(subset.probabilities, copied.probabilities, atol=1e-5)
