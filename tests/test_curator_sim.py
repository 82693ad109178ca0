"""The simulated curator (benchmarks/suite/curator.py) on tiny labelings whose costs are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.suite.curator import (
    confidence_auroc,
    name_clusters,
    simulate_with_feedback,
    simulate_without_feedback,
)


def _two_class_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """20 images, classes 0/1 ten each; cluster 0 holds 8 of class 0 and 3 of class 1, cluster 1 the
    rest (2 of class 0, 7 of class 1): 5 images are wrong after naming."""
    truth = np.array([0] * 10 + [1] * 10)
    clusters = np.array([0] * 8 + [1] * 2 + [0] * 3 + [1] * 7)
    wrong = np.flatnonzero(np.array([False] * 8 + [True] * 2 + [True] * 3 + [False] * 7))
    right = np.setdiff1d(np.arange(20), wrong)
    return truth, clusters, wrong, right


def test_naming_is_one_action_per_cluster_even_when_two_share_a_majority() -> None:
    truth = np.array([0, 0, 0, 1, 0, 0, 1, 1])
    clusters = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    named, actions = name_clusters(truth, clusters)
    assert actions == 3
    assert named.tolist() == [0, 0, 0, 0, 0, 0, 1, 1]


def test_walk_stops_at_95_percent_and_counts_moves_and_looks() -> None:
    truth, clusters, wrong, right = _two_class_case()
    confidence = np.ones(20)
    # Queue: wrong, right, wrong, right, wrong, right, wrong, ... (the fifth wrong one last).
    confidence[wrong] = [0.1, 0.3, 0.5, 0.7, 0.9]
    confidence[right[:3]] = [0.2, 0.4, 0.6]
    effort = simulate_without_feedback(truth, clusters, confidence)
    # 15 correct after naming; 95 % of 20 is 19: four moves, found after seven looks.
    assert effort.accuracy_after_naming == pytest.approx(0.75)
    assert (effort.naming_actions, effort.moves, effort.inspected) == (2, 4, 7)
    assert effort.actions_per_100 == pytest.approx(30.0)
    assert effort.inspected_per_100 == pytest.approx(35.0)
    assert effort.final_accuracy == pytest.approx(0.95)


def test_a_confidence_that_puts_mistakes_last_costs_more_looks_not_more_moves() -> None:
    truth, clusters, wrong, _ = _two_class_case()
    good, bad = np.ones(20), np.zeros(20)
    good[wrong], bad[wrong] = 0.0, 1.0
    best = simulate_without_feedback(truth, clusters, good)
    worst = simulate_without_feedback(truth, clusters, bad)
    assert (best.moves, best.inspected) == (4, 4)
    assert (worst.moves, worst.inspected) == (4, 15 + 4)
    assert confidence_auroc(truth, clusters, good) == pytest.approx(1.0)
    assert confidence_auroc(truth, clusters, bad) == pytest.approx(0.0)


def test_nothing_to_review_when_naming_already_reaches_the_target() -> None:
    truth = np.array([0] * 20 + [1] * 20)
    clusters = truth.copy()
    clusters[0] = 1  # one mistake in 40: 97.5 % correct
    effort = simulate_without_feedback(truth, clusters, np.linspace(0, 1, 40))
    assert (effort.naming_actions, effort.moves, effort.inspected) == (2, 0, 0)
    assert np.isnan(confidence_auroc(truth, truth, np.ones(40)))


def test_feedback_with_a_propagating_refine_needs_one_round() -> None:
    truth = np.array([0] * 50 + [1] * 50)
    clusters = truth.copy()
    clusters[:10], clusters[50:60] = 1, 0  # 20 wrong: 80 % after naming
    confidence = np.ones(100)
    confidence[[0, 50]] = 0.0  # the first round (2 % of 100 = 2 images) looks at two wrong ones

    def oracle(labels: np.ndarray, checked: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fixed = np.where(checked, labels, truth)
        return fixed, np.ones(labels.size)

    effort = simulate_with_feedback(truth, clusters, confidence, oracle)
    assert (effort.naming_actions, effort.moves, effort.inspected, effort.rounds) == (2, 2, 2, 1)
    assert effort.final_accuracy == 1.0


def test_feedback_with_a_refine_that_changes_nothing_equals_walking_the_queue() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 500)
    clusters = np.where(rng.random(500) < 0.3, rng.integers(0, 4, 500), truth)
    confidence = rng.random(500)

    def unchanged(
        labels: np.ndarray, checked: np.ndarray, corrected: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return labels, confidence

    walk = simulate_without_feedback(truth, clusters, confidence)
    rounds = simulate_with_feedback(truth, clusters, confidence, unchanged)
    assert walk.moves > 20
    assert (rounds.moves, rounds.inspected) == (walk.moves, walk.inspected)
    assert rounds.rounds == -(-walk.inspected // 10)  # 10 images (2 % of 500) per round


def test_a_refine_that_changes_a_checked_label_is_caught() -> None:
    truth = np.array([0] * 50 + [1] * 50)
    clusters = np.r_[np.zeros(60, dtype=int), np.ones(40, dtype=int)]

    def careless(
        labels: np.ndarray, checked: np.ndarray, corrected: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros_like(labels), np.ones(labels.size)

    with pytest.raises(AssertionError, match="changed a checked image's label"):
        simulate_with_feedback(truth, clusters, np.linspace(1, 0, 100), careless)


def test_probe_feedback_beats_walking_the_queue_on_easy_blobs() -> None:
    """The feedback anchor on separable synthetic classes: from a start with 30 % random labels and an
    uninformative confidence, propagating a few fixes costs far fewer actions than fixing each image."""
    from sklearn.datasets import make_blobs

    from benchmarks.suite.methods import ProbeRefine, kmeans_start

    features, truth = make_blobs(n_samples=600, centers=4, n_features=16, cluster_std=2.0, random_state=0)
    rng = np.random.default_rng(0)
    start = np.where(rng.random(600) < 0.3, rng.integers(0, 4, 600), truth)
    confidence = rng.random(600)
    walk = simulate_without_feedback(truth, start, confidence)
    probe = simulate_with_feedback(truth, start, confidence, ProbeRefine(features, confidence))
    assert walk.actions_per_100 > 10
    assert probe.actions_per_100 < 0.5 * walk.actions_per_100
    assert probe.final_accuracy >= 0.95

    labels, margin = kmeans_start(features, 4, seed=0)
    named, _ = name_clusters(truth, labels)
    assert (named == truth).mean() > 0.95
    assert margin.min() >= 0.0


def test_feedback_tells_the_refine_the_label_each_known_image_had() -> None:
    """The refine learns which checked images the curator moved (they were wrong) and which they left."""
    truth = np.array([0] * 50 + [1] * 50)
    clusters = truth.copy()
    clusters[:10] = 1  # rows 0-9 wrong: 90 % after naming
    confidence = np.linspace(0, 1, 100)
    confidence[60] = -1.0  # first round: row 60 (right) and row 0 (wrong)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def record(labels: np.ndarray, known: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert np.array_equal(origin[~known], labels[~known])
        seen.append((known.copy(), known & (origin != labels)))
        return labels, confidence

    simulate_with_feedback(truth, clusters, confidence, record)
    known, corrected = seen[0]
    assert np.flatnonzero(known).tolist() == [0, 60] and np.flatnonzero(corrected).tolist() == [0]
    known, corrected = seen[-1]
    assert np.flatnonzero(corrected).tolist() == np.flatnonzero(known & (np.arange(100) < 10)).tolist()
