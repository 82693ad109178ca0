"""refine_labels: checked labels are law; a fix propagates only where the held-out evidence says the learner
makes more fixes than it breaks; a short pass never lowers accuracy; classes nobody checked keep their
members; a thinly checked class cannot swallow another; the learner is a value that scores new rows."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.suite.short_pass import score_pass
from turtle_core.discovery.refine import (
    POOLED_FROM,
    FeatureProbe,
    HeldOut,
    choose_cutoff,
    fit_learner,
    refine_labels,
)


def _blobs(n_per: int, n_classes: int, dim: int = 32, spread: float = 0.6, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 3
    truth = np.repeat(np.arange(n_classes), n_per)
    X = centres[truth] + rng.normal(scale=spread * 3, size=(truth.size, dim))
    return X.astype(np.float32), truth


@pytest.fixture(autouse=True)
def _one_thread(one_cpu_thread):
    yield


def _merged_discovery(truth: np.ndarray, rng: np.random.Generator, n_checked: int):
    """A discovery that merged class 3 into class 2; the curator checked `n_checked` random images and
    moved the class-3 ones they saw. Returns the labels, the checked rows and the labels before the checks."""
    labels = truth.copy()
    labels[truth == 3] = 2
    origin = labels.copy()
    checked = np.zeros(truth.size, bool)
    checked[rng.choice(truth.size, n_checked, replace=False)] = True
    labels[checked] = truth[checked]
    return labels, checked, origin


def test_checked_rows_keep_their_labels_and_evidenced_fixes_propagate() -> None:
    X, truth = _blobs(200, 4)
    labels, checked, origin = _merged_discovery(truth, np.random.default_rng(1), 60)
    # A deliberately odd checked label: refine must not touch it even though the features disagree.
    odd = np.flatnonzero(checked & (truth == 0))[0]
    labels[odd] = 1

    result = refine_labels([X], labels, checked, origin=origin)

    assert np.array_equal(result.labels[checked], labels[checked])
    assert result.labels[odd] == 1
    assert np.all(result.confidence[checked] == 1.0)
    unchecked = ~checked
    before = (labels[unchecked] == truth[unchecked]).mean()
    after = (result.labels[unchecked] == truth[unchecked]).mean()
    assert before < 0.8 and after > 0.95, (before, after)
    assert result.cutoff is not None
    assert result.held_out is not None and result.held_out.helpful.sum() >= 5


def test_without_a_fix_to_learn_from_nothing_changes() -> None:
    """Only confirmed images: nothing shows that the learner fixes anything, so it changes no label."""
    X, truth = _blobs(100, 3, seed=6)
    labels = truth.copy()
    labels[::7] = (labels[::7] + 1) % 3  # the discovery's mistakes, which nobody has pointed at yet
    checked = np.zeros(truth.size, bool)
    checked[np.flatnonzero(labels == truth)[::10]] = True

    result = refine_labels([X], labels, checked)

    assert result.cutoff is None
    assert np.array_equal(result.labels, labels)


def test_a_short_pass_on_easy_data_never_lowers_accuracy() -> None:
    """Name 3 of 6 clusters, inspect 5 images in each, propagate once (curator-effort.md's short pass), on
    blobs whose discovery merged two classes and mislabelled a few images: 20 passes, none worse."""
    X, truth = _blobs(80, 6, seed=7)
    rng = np.random.default_rng(8)
    clusters = truth.copy()
    clusters[truth == 5] = 4
    noisy = rng.choice(truth.size, 25, replace=False)
    clusters[noisy] = rng.integers(0, 5, noisy.size)
    confidence = rng.random(truth.size)
    probe = FeatureProbe([X])
    changes = [
        score_pass(
            "short",
            seed,
            truth,
            clusters,
            confidence,
            lambda labels, checked, origin: refine_labels(probe, labels, checked, origin=origin).labels,
        ).accuracy_change
        for seed in range(20)
    ]
    assert min(changes) >= -0.01, changes


def test_an_unchecked_cluster_keeps_its_members_under_weak_evidence() -> None:
    X, truth = _blobs(150, 3, seed=2)
    labels = truth * 10 + 7  # any integers: 7, 17, 27
    checked = np.zeros(truth.size, bool)
    checked[np.flatnonzero(truth == 0)[:10]] = True
    checked[np.flatnonzero(truth == 1)[:10]] = True  # class 27: only unchecked rows
    origin = labels.copy()
    # Two images of class 27 the curator moved into 17: weak evidence against the unchecked cluster.
    moved = np.flatnonzero(truth == 2)[:2]
    labels[moved], checked[moved] = 17, True

    result = refine_labels([X], labels, checked, origin=origin)

    assert set(np.unique(result.labels)) == {7, 17, 27}
    assert np.all(result.labels[(truth == 2) & ~checked] == 27)
    assert np.all(result.confidence[(labels == 27) & ~checked] == 0.0)  # first in the review queue


def test_a_thinly_checked_class_cannot_swallow_another() -> None:
    """One image moved to a new class, five confirmed in each of two clusters: the plain probe (new class
    with one example) takes in far more than the handful of images that look like it; the rule, which sees
    on held-out checked images that the learner breaks more than it fixes, takes in none of the others."""
    X, truth = _blobs(120, 3, seed=9, spread=1.2)
    labels = np.minimum(truth, 1)  # classes 1 and 2 merged in cluster 1
    checked = np.zeros(truth.size, bool)
    confirmed = np.concatenate([np.flatnonzero(truth == 0)[:5], np.flatnonzero(truth == 1)[:5]])
    checked[confirmed] = True
    origin = labels.copy()
    lone = np.flatnonzero(truth == 0)[5]  # a class-0 image the curator moved to a new class 5
    labels[lone], checked[lone] = 5, True

    result = refine_labels([X], labels, checked, origin=origin)

    assert (result.labels == 5).sum() == 1
    assert np.array_equal(result.labels[truth == 0], labels[truth == 0])


FOUR = (0.0, 0.5, 0.7, 0.9)  # the cut-offs these cases were written for


def evidence(moved: list[bool], right: list[bool], sureness: list[float], origin=None, into=None) -> HeldOut:
    """Held-out outcomes: a moved image the learner finds is helpful; a confirmed one it moves, harmful."""
    moved, right = np.asarray(moved), np.asarray(right)
    n = moved.size
    origin = np.zeros(n, int) if origin is None else np.asarray(origin)
    label = np.where(moved, 9, origin) if into is None else np.asarray(into)  # moved: into class 9 by default
    return HeldOut(np.zeros(n, int), np.asarray(sureness), right, moved & right, ~moved & ~right,
                   (moved & right) | (~moved & ~right), moved, np.ones(n, bool), origin, label)  # fmt: skip


def test_choose_cutoff_weighs_the_bounded_fix_and_harm_rates_by_what_the_unchecked_look_like() -> None:
    # 10 fixes found of 10, 30 confirmations kept: the learner is trusted where it disputes 30 % of the unchecked.
    good = evidence([True] * 10 + [False] * 30, [True] * 40, [0.95] * 40)
    assert choose_cutoff(good, [0.3] * 4, FOUR) is not None
    # The same learner disputing 5 % of the unchecked: no more than its harm bound alone explains.
    assert choose_cutoff(good, [0.05] * 4, FOUR) is None
    # Only 2 fixes found: fewer than MIN_HELPFUL.
    few = evidence([True] * 2 + [False] * 30, [True] * 32, [0.95] * 32)
    assert choose_cutoff(few, [0.3] * 4, FOUR) is None
    # Fixes but no confirmation at all: the harm on right labels is unknown.
    assert choose_cutoff(evidence([True] * 10, [True] * 10, [0.95] * 10), [0.5] * 4, FOUR) is None
    # Harm among unsure predictions only: the cut-off leaves them out.
    mixed = evidence([True] * 10 + [False] * 30, [True] * 30 + [False] * 10, [0.95] * 30 + [0.6] * 10)
    assert choose_cutoff(mixed, [0.4, 0.4, 0.3, 0.3], FOUR) == 0.7
    # Per class: confirmations of class 1 only vouch for class 1's unchecked members.
    by_class = evidence([True] * 10 + [False] * 30, [True] * 40, [0.95] * 40, origin=[0] * 10 + [1] * 30)
    assert choose_cutoff(by_class, [0.3] * 4, FOUR, source=1) is not None
    assert choose_cutoff(by_class, [0.3] * 4, FOUR, source=2) is None
    # Images moved into a class vouch for it too: 3 confirmed and 27 moved in (all kept there, held out)
    # bound its harm like 30 confirmations; with the moved-in ones lost, no change is safe.
    origin = [0] * 10 + [1] * 3 + [0] * 27
    into = [2] * 10 + [1] * 3 + [1] * 27
    moved = [True] * 10 + [False] * 3 + [True] * 27
    kept = evidence(moved, [True] * 40, [0.95] * 40, origin=origin, into=into)
    assert choose_cutoff(kept, [0.3] * 4, FOUR, source=1) is not None
    only_three = evidence([True] * 10 + [False] * 3, [True] * 13, [0.95] * 13, origin=[0] * 10 + [1] * 3)
    assert choose_cutoff(only_three, [0.3] * 4, FOUR, source=1) is None
    lost = evidence(moved, [True] * 13 + [False] * 27, [0.95] * 40, origin=origin, into=into)
    assert choose_cutoff(lost, [0.3] * 4, FOUR, source=1) is None


def test_sure_disputes_of_a_class_with_few_checks_rest_on_every_class_right_labels() -> None:
    # Class 1: 4 confirmations, none lost; class 2: 60; 10 fixes found. Alone, 4 cannot bound the harm below
    # the 30 % the learner disputes; with every class's 74 right labels (none lost) they can, where it is sure.
    origin = [0] * 10 + [1] * 4 + [2] * 60
    moved = [True] * 10 + [False] * 64
    sure = evidence(moved, [True] * 74, [0.95] * 74, origin=origin)
    assert choose_cutoff(sure, [0.3] * 2, (0.0, 0.5), source=1) is None  # below POOLED_FROM: its own 4
    assert choose_cutoff(sure, [0.3] * 6, source=1) == POOLED_FROM
    # The same evidence where the learner is unsure: below POOLED_FROM a class's own right labels decide.
    unsure = evidence(moved, [True] * 74, [0.6] * 74, origin=origin)
    assert choose_cutoff(unsure, [0.3] * 6, source=1) is None
    # A class nobody confirmed still keeps its members.
    assert choose_cutoff(sure, [0.3] * 6, source=3) is None
    # Every class's right labels lost as often as class 1 would need: no tighter bound, no change.
    lost = evidence(moved, [True] * 14 + [False, True] * 30, [0.95] * 74, origin=origin)
    assert choose_cutoff(lost, [0.3] * 6, source=1) is None


def test_the_learner_scores_new_rows_as_the_propagation_did() -> None:
    """`fit_learner` gives the propagation's learner as a value: its `predict_proba` on rows it never saw
    (the same images' features as new arrays) equals the propagation's probabilities, and its choice is the
    label the propagation gave wherever the propagation changed one."""
    X, truth = _blobs(150, 4, seed=3)
    labels, checked, origin = _merged_discovery(truth, np.random.default_rng(4), 80)
    probe = FeatureProbe([X])

    result = refine_labels(probe, labels, checked, origin=origin)
    learner = fit_learner(probe, labels, checked)

    assert learner is not None and result.learner is not None
    changed = np.flatnonzero(result.changed(labels))
    assert changed.size > 20
    new_rows = np.concatenate([changed, np.flatnonzero(~checked & ~result.changed(labels))[:40]])
    fresh = [X[new_rows].copy()]
    columns = np.searchsorted(result.classes, learner.classes)
    assert np.allclose(learner.predict_proba(fresh), result.probabilities[new_rows][:, columns], atol=1e-5)
    assert np.allclose(result.learner.predict_proba(fresh), learner.predict_proba(fresh), atol=1e-6)
    assert np.array_equal(learner.predict(fresh)[: changed.size], result.labels[changed])


def test_the_learner_round_trips_through_arrays_and_refuses_other_spaces() -> None:
    from turtle_core.discovery.probe import LinearProbe

    X, truth = _blobs(40, 3, seed=5)
    noise = np.random.default_rng(6).normal(size=(truth.size, 8)).astype(np.float32)
    learner = fit_learner([X, noise], truth, np.arange(truth.size) % 2 == 0)
    assert learner is not None
    again = LinearProbe.from_arrays(dict(np.load(_saved(learner), allow_pickle=False)))
    assert np.allclose(again.predict_proba([X, noise]), learner.predict_proba([X, noise]))
    assert np.array_equal(again.classes, learner.classes)
    with pytest.raises(ValueError, match="dimensions"):
        learner.predict_proba([X])


def _saved(learner) -> object:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **learner.to_arrays())
    buffer.seek(0)
    return buffer


def test_two_spaces_and_a_prepared_probe_reused_across_rounds() -> None:
    X, truth = _blobs(120, 3, seed=3)
    noise = np.random.default_rng(4).normal(size=(truth.size, 8)).astype(np.float32)
    probe = FeatureProbe([X, noise])
    labels = np.zeros_like(truth)
    checked = np.zeros(truth.size, bool)
    origin = labels.copy()
    order = np.random.default_rng(5).permutation(truth.size)
    for round_ in range(3):  # the curator checks 12 more images per round, moving the wrong ones
        seen = order[12 * round_ : 12 * (round_ + 1)]
        origin[seen] = labels[seen]
        checked[seen] = True
        labels[checked] = truth[checked]
        labels = refine_labels(probe, labels, checked, origin=origin).labels
    assert (labels == truth).mean() > 0.95


def test_bad_lengths_are_refused() -> None:
    X, truth = _blobs(20, 2)
    with pytest.raises(ValueError, match="one entry per row"):
        refine_labels([X], truth[:-1], np.ones(truth.size, bool))


def test_probe_scores_in_chunks_without_a_standardised_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The standardisation folded into the weights, row chunk by row chunk, equals scoring a standardised copy."""
    import turtle_core.discovery.sampled as sampled
    from turtle_core.discovery.probe import LinearProbe

    rng = np.random.default_rng(4)
    spaces = [
        rng.normal(3.0, 2.0, size=(300, 12)).astype(np.float32),
        rng.normal(size=(300, 5)).astype(np.float32),
    ]
    monkeypatch.setattr(sampled, "CHUNK_ROWS", 64)
    probe = FeatureProbe(spaces)
    W = rng.normal(size=(17, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    learner = LinearProbe(tuple(probe.means), tuple(probe.scales), (W[:12], W[12:]), b, np.arange(3))
    standardised = np.hstack([(X - X.mean(0)) / X.std(0) for X in spaces])
    logits = standardised @ W + b
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    assert np.allclose(learner.predict_proba(spaces), expected, atol=1e-5)


def test_probe_on_a_subset_of_rows_equals_the_copied_rows() -> None:
    """`FeatureProbe(spaces, rows=...)` (what the app passes: the active images) without copying them."""
    X, truth = _blobs(100, 3, seed=5)
    labels = truth.copy()
    labels[::9] = (labels[::9] + 1) % 3
    rows = np.flatnonzero(np.arange(truth.size) % 7 != 0)  # every seventh image excluded
    checked = np.zeros(rows.size, bool)
    checked[::3] = True
    picked = labels[rows].copy()
    origin = picked.copy()
    picked[checked] = truth[rows][checked]

    subset = refine_labels(FeatureProbe([X], rows=rows), picked, checked, origin=origin)
    copied = refine_labels([X[rows]], picked, checked, origin=origin)

    assert np.array_equal(subset.labels, copied.labels)
    assert np.allclose(subset.probabilities, copied.probabilities, atol=1e-5)
