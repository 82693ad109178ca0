"""The stability choice between TURTLE's and k-means' partitions (discovery/stability.py, discover.py)."""

from __future__ import annotations

import numpy as np

from turtle_core.discovery.discover import discover
from turtle_core.discovery.effort import EFFORTS
from turtle_core.discovery.metrics import evaluate
from turtle_core.discovery.stability import (
    choose_partition,
    joint_unit_rows,
    kmeans_runs,
    mean_pairwise_ari,
    soft_assignment,
)


def _blobs(
    sizes: list[int], dim: int = 32, spread: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return (centres[truth] + spread * rng.normal(size=(truth.size, dim))).astype(np.float32), truth


def test_agreement_is_one_for_identical_runs_and_near_zero_for_random_ones() -> None:
    labels = np.repeat(np.arange(4), 50)
    assert mean_pairwise_ari([labels, labels, (labels + 1) % 4]) == 1.0
    rng = np.random.default_rng(0)
    assert abs(mean_pairwise_ari([rng.integers(0, 4, 200) for _ in range(3)])) < 0.05
    assert np.isnan(mean_pairwise_ari([labels]))


def test_soft_assignment_sums_to_one_and_prefers_the_nearest_centre() -> None:
    distances = np.array([[0.1, 0.5, 2.0], [1.0, 0.2, 0.3], [0.4, 0.4, 0.1]])
    probabilities = soft_assignment(distances)
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-6)
    assert probabilities.argmax(1).tolist() == [0, 1, 2]
    assert probabilities.max() < 1.0  # soft, not one-hot


def test_kmeans_is_kept_when_its_runs_agree_more_than_turtles() -> None:
    X, truth = _blobs([300, 60, 20])
    rng = np.random.default_rng(1)
    unstable = [rng.integers(0, 3, truth.size) for _ in range(3)]  # runs that agree on nothing
    choice = choose_partition([X], unstable, unstable[0], np.full((truth.size, 3), 1 / 3), random_state=0)
    assert choice.method == "kmeans"
    assert choice.kmeans_agreement > 0.95 and abs(choice.turtle_agreement) < 0.05
    assert evaluate(truth, choice.labels)["accuracy"] == 1.0
    best = min(kmeans_runs(joint_unit_rows([X]), 3, [0, 1, 2]), key=lambda run: run.inertia)
    assert np.array_equal(choice.labels, best.labels)
    assert choice.probabilities.shape == (truth.size, 3)


def test_turtle_is_kept_when_its_runs_agree_at_least_as_much() -> None:
    X, truth = _blobs([100, 100, 100])
    choice = choose_partition([X], [truth, truth], truth, np.eye(3)[truth], random_state=0)
    assert choice.method == "turtle" and np.array_equal(choice.labels, truth)
    single = choose_partition([X], [truth], truth, np.eye(3)[truth])  # one run: nothing to compare
    assert single.method == "turtle" and np.isnan(single.kmeans_agreement)


def test_discover_finds_imbalanced_blobs_and_says_which_partition_it_kept() -> None:
    X, truth = _blobs([400, 80, 40], dim=24, spread=0.2, seed=3)
    found = discover([X], 3, EFFORTS["quick"], random_state=0)
    assert evaluate(truth, found.labels)["accuracy"] >= 0.95
    assert found.params["method"] in ("turtle", "kmeans")
    assert found.probabilities.shape == (truth.size, 3)
    assert np.array_equal(found.probabilities.argmax(1), found.labels)


def test_kmeans_on_a_sample_assigns_every_row_to_its_nearest_centre() -> None:
    X, truth = _blobs([600, 300, 100], seed=5)
    data = joint_unit_rows([X])
    sampled = kmeans_runs(data, 3, [0, 1], sample_rows=200)
    for run in sampled:
        assert run.labels.shape == truth.shape and run.distances.shape == (truth.size, 3)
        assert np.array_equal(run.labels, run.distances.argmin(1))
        assert evaluate(truth, run.labels)["accuracy"] == 1.0


def test_the_kmeans_partition_labels_new_rows_like_its_own() -> None:
    X, truth = _blobs([300, 60, 20], seed=7)
    rng = np.random.default_rng(2)
    unstable = [rng.integers(0, 3, truth.size) for _ in range(3)]
    choice = choose_partition([X], unstable, unstable[0], np.full((truth.size, 3), 1 / 3))
    assert choice.method == "kmeans" and choice.centroids is not None
    again = choice.centroids.predict_proba([X])
    assert np.allclose(again, choice.probabilities, atol=1e-4)
    assert np.array_equal(again.argmax(1), choice.labels)


def test_a_forced_partition_skips_the_comparison() -> None:
    X, truth = _blobs([200, 100, 50], dim=16, seed=9)
    turtle = discover([X], 3, EFFORTS["quick"], partition="turtle")
    assert turtle.params["method"] == "turtle" and turtle.params["kmeans_agreement"] is None
    assert len(turtle.choice.labels) == truth.size
    kmeans = discover([X], 3, EFFORTS["quick"], partition="kmeans")
    assert kmeans.params["method"] == "kmeans" and kmeans.params["partition"] == "kmeans"
    assert evaluate(truth, kmeans.labels)["accuracy"] == 1.0
    forced = discover([X], 3, EFFORTS["standard"], partition="kmeans")  # no final runs for k-means' partition
    assert forced.final_runs_skipped and np.array_equal(forced.labels, kmeans.labels)


def test_the_partition_note_says_what_was_kept_and_why() -> None:
    from turtle_core.discovery.describe import partition_note

    chose = {"method": "kmeans", "partition": "auto", "turtle_agreement": 0.61, "kmeans_agreement": 0.73}
    assert partition_note(chose) == (
        "Partition: k-means', which was more stable than TURTLE's on this folder (runs agree 0.73 against 0.61)."
    )
    assert partition_note({"method": "turtle", "partition": "turtle"}) == "Partition: TURTLE's, as you asked."
    assert partition_note({"method": "kmeans", "partition": "kmeans"}) == "Partition: k-means', as you asked."
    assert partition_note({}) == ""  # a discovery saved before the choice existed


def test_the_comparison_s_first_kmeans_run_is_the_kmeans_reference() -> None:
    from turtle_core.discovery.metrics import kmeans_baseline

    X, truth = _blobs([150, 90, 60], dim=16, seed=11)
    labels = truth.copy()
    choice = choose_partition([X], [labels, labels], labels, np.eye(3)[labels], random_state=0)
    assert choice.kmeans_reference is not None
    assert np.array_equal(choice.kmeans_reference, kmeans_baseline([X], 3, random_state=0))
    forced = choose_partition([X], [labels], labels, np.eye(3)[labels], keep="turtle")
    assert forced.kmeans_reference is None  # no k-means ran: the discovery computes its own reference


def test_a_standard_discovery_skips_its_final_runs_when_kmeans_is_kept(monkeypatch) -> None:
    """The choice comes before the final runs; k-means' partition kept, they are never trained."""
    from turtle_core.discovery import discover as discover_module

    def no_final_runs(*args, **kwargs):
        raise AssertionError("final runs trained although k-means' partition was kept")

    monkeypatch.setattr(discover_module, "train_final_runs", no_final_runs)
    X, truth = _blobs([100, 20, 8])  # TURTLE's balanced runs disagree on the small clusters; k-means' do not
    found = discover([X], 3, EFFORTS["standard"], random_state=0)
    assert found.params["method"] == "kmeans" and found.final_runs_skipped
    assert found.params["final_runs"] == "skipped: k-means' partition was kept"
    assert evaluate(truth, found.labels)["accuracy"] == 1.0
    best = min(kmeans_runs(joint_unit_rows([X]), 3, [0, 1, 2]), key=lambda run: run.inertia)
    assert np.array_equal(found.labels, best.labels)


def test_a_standard_discovery_keeps_its_final_runs_labels_when_turtle_is_kept(monkeypatch) -> None:
    from turtle_core.discovery import discover as discover_module

    trained, train = [], discover_module.train_final_runs

    def counted(*args, **kwargs):
        trained.append(train(*args, **kwargs))
        return trained[-1]

    monkeypatch.setattr(discover_module, "train_final_runs", counted)
    X, truth = _blobs([120, 30, 10], spread=0.3, seed=1)
    found = discover([X], 3, EFFORTS["standard"], random_state=0)
    assert found.params["method"] == "turtle" and not found.final_runs_skipped
    assert "final_runs" not in found.params
    assert len(trained) == 1 and found.selection is trained[0]
    assert np.array_equal(found.labels, trained[0].best.labels_)
    assert np.allclose(found.probabilities, trained[0].best.probabilities_)
    assert found.params["kmeans_agreement"] is not None  # the comparison ran (before the final runs)
