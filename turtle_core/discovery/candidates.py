"""The runs a model selection compares, and how it chooses among them without labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from turtle_core.discovery.turtle import Turtle

# Scores closer than this to the best count as ties (about two standard errors of a 10k-row score).
TIE_TOLERANCE = 0.005


@dataclass
class Candidate:
    """One fitted TURTLE run of the selection and its label-free scores."""

    n_clusters: int
    params: dict[str, Any]
    score: float
    labels: np.ndarray = field(repr=False)
    accuracy: float = 0.0
    kappa: float = 0.0
    n_used: int = 0
    agreement: float = 0.0


@dataclass
class SelectionResult:
    """The chosen run (`best`), every candidate, and the best score per number of clusters."""

    best: Turtle
    best_params: dict[str, Any]
    best_n_clusters: int
    candidates: list[Candidate]
    scores_by_k: dict[int, float]
    screened: list[Candidate] = field(default_factory=list)


def used_clusters(labels: np.ndarray, n_clusters: int) -> int:
    """Clusters holding at least 5 % of an even share of the rows (at least 2); the rest are near-empty."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=n_clusters)
    threshold = max(2, int(np.ceil(0.05 * labels.size / n_clusters)))
    return int((counts >= threshold).sum())


def choose(candidates: Sequence[Candidate], tolerance: float = TIE_TOLERANCE) -> Candidate:
    """Best score; among near-ties the labeling with the most used clusters, then the smallest C, then
    the run that agrees most with the other runs of its C, then the score.

    A perfectly generalisable merge of true groups ties with the true labeling, and a larger C
    whose extra clusters stay empty ties with it too: neither should win. Among full runs of one C
    the score saturates (the probe separates any TURTLE labeling of whitened features almost
    perfectly), while runs that reach the same labeling from different starts are the stable answer.
    """
    top = max(c.score for c in candidates)
    near = [c for c in candidates if c.score >= top - tolerance]
    lead = max(near, key=lambda c: (c.n_used, -c.n_clusters, c.score))
    peers = [c for c in near if c.n_clusters == lead.n_clusters and c.n_used == lead.n_used]
    return max(peers, key=lambda c: (c.agreement, c.score))


def set_agreements(candidates: Sequence[Candidate]) -> None:
    """`agreement`: mean adjusted Rand index of each run with the other runs of the same C."""
    from turtle_core.discovery.metrics import ari

    for candidate in candidates:
        others = [c for c in candidates if c.n_clusters == candidate.n_clusters and c is not candidate]
        candidate.agreement = (
            float(np.mean([ari(candidate.labels, o.labels) for o in others])) if others else 0.0
        )
