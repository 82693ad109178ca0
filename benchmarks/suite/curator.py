"""The simulated curator of docs/curator-effort.md (shared docs): actions until 95 % of labels are right.

The curator knows every image's true class. Without feedback it names each cluster after its
majority true class (1 action per cluster), then walks the review queue from least to most
confident, moving each wrong image to its true class (1 action), until 95 % of all images are
correct. With feedback it names the clusters, then works in rounds: inspect the 2 % of the folder
that is least confident and not yet inspected, fix the wrong ones, mark them checked, and let a
refine function re-assign every unchecked image from the checked ones. In both modes the curator stops
as soon as 95 % are correct, also in the middle of a round (a person who is done stops looking).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

TARGET = 0.95
ROUND_FRACTION = 0.02

# refine(labels, checked, origin) -> (new labels, confidence); checked rows must keep their label; `origin`: each
# row's label when the curator looked at it (a checked row whose origin differs from its label was moved).
RefineFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Effort:
    """What the simulated curator spent on one folder (counts; per-100 figures as properties)."""

    n_images: int
    naming_actions: int
    moves: int
    inspected: int
    accuracy_after_naming: float
    final_accuracy: float
    rounds: int = 0

    @property
    def actions(self) -> int:
        return self.naming_actions + self.moves

    @property
    def actions_per_100(self) -> float:
        return 100.0 * self.actions / self.n_images

    @property
    def inspected_per_100(self) -> float:
        return 100.0 * self.inspected / self.n_images

    def to_dict(self) -> dict[str, float | int]:
        return {
            **asdict(self),
            "actions": self.actions,
            "actions_per_100": self.actions_per_100,
            "inspected_per_100": self.inspected_per_100,
        }


def name_clusters(truth: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, int]:
    """Each cluster named after its majority true class (ties: the smaller class id): the labels in
    true-class ids, and the naming actions (one per non-empty cluster)."""
    truth, clusters = np.asarray(truth), np.asarray(clusters)
    named = np.empty_like(truth)
    used = np.unique(clusters)
    for cluster in used:
        members = clusters == cluster
        named[members] = np.bincount(truth[members]).argmax()
    return named, int(used.size)


def wrong_after_naming(truth: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """True where an image's label is wrong once its cluster is named (what the confidence should find)."""
    named, _ = name_clusters(truth, clusters)
    return named != np.asarray(truth)


def confidence_auroc(truth: np.ndarray, clusters: np.ndarray, confidence: np.ndarray) -> float:
    """AUROC of (1 − confidence) for "this image's label is wrong after naming"; NaN if all or none are."""
    from sklearn.metrics import roc_auc_score

    wrong = wrong_after_naming(truth, clusters)
    if wrong.all() or not wrong.any():
        return float("nan")
    return float(roc_auc_score(wrong, 1.0 - np.asarray(confidence, dtype=np.float64)))


def _queue(confidence: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Image indices from least to most confident (stable: equal confidences in index order)."""
    order = np.argsort(np.asarray(confidence, dtype=np.float64), kind="stable")
    return order if exclude is None else order[~exclude[order]]


def simulate_without_feedback(
    truth: np.ndarray, clusters: np.ndarray, confidence: np.ndarray, target: float = TARGET
) -> Effort:
    """Name the clusters, then walk the review queue least-confident first until `target` is reached."""
    truth = np.asarray(truth)
    n = truth.size
    labels, naming = name_clusters(truth, clusters)
    needed = math.ceil(target * n - 1e-9)
    correct = int((labels == truth).sum())
    after_naming = correct / n
    moves = inspected = 0
    for index in _queue(confidence):
        if correct >= needed:
            break
        inspected += 1
        if labels[index] != truth[index]:
            moves += 1
            correct += 1
    return Effort(n, naming, moves, inspected, after_naming, correct / n)


def simulate_with_feedback(
    truth: np.ndarray,
    clusters: np.ndarray,
    confidence: np.ndarray,
    refine: RefineFn,
    target: float = TARGET,
    round_fraction: float = ROUND_FRACTION,
) -> Effort:
    """Name the clusters, then rounds of: inspect the `round_fraction` least-confident unchecked images,
    fix the wrong ones, mark them checked (remembering the label each had), refine the unchecked rest. Raises AssertionError if a refine
    changes a checked image's label."""
    truth = np.asarray(truth)
    n = truth.size
    labels, naming = name_clusters(truth, clusters)
    confidence = np.asarray(confidence, dtype=np.float64)
    needed = math.ceil(target * n - 1e-9)
    per_round = max(1, math.ceil(round_fraction * n))
    after_naming = float((labels == truth).mean())
    checked = np.zeros(n, dtype=bool)
    origin = labels.copy()
    moves = inspected = rounds = 0
    while int((labels == truth).sum()) < needed and not checked.all():
        rounds += 1
        correct = int((labels == truth).sum())
        for index in _queue(confidence, exclude=checked)[:per_round]:
            if correct >= needed:
                break
            inspected += 1
            checked[index] = True
            origin[index] = labels[index]
            if labels[index] != truth[index]:
                labels[index] = truth[index]
                moves += 1
                correct += 1
        if correct >= needed:
            break
        new_labels, confidence = refine(labels.copy(), checked.copy(), origin.copy())
        new_labels = np.asarray(new_labels)
        assert new_labels.shape == labels.shape, "refine returned a different number of labels"
        assert np.array_equal(new_labels[checked], labels[checked]), "refine changed a checked image's label"
        labels, confidence = new_labels.astype(labels.dtype), np.asarray(confidence, dtype=np.float64)
    return Effort(n, naming, moves, inspected, after_naming, float((labels == truth).mean()), rounds)
