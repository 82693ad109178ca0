"""The short curator pass of curator-effort.md (shared docs): a few names, a few checks, one propagation.

People do not walk the whole review queue before they press *Propagate my fixes*: they name a few
clusters, fix what they happen to see, confirm a page, and press it once. Each variant below is one such
pass, drawn at random from a seed; the labels are scored before and after one propagation.

Labels live in "name space": a cluster the curator named after its majority class carries that class's
id, a cluster with its automatic name carries `n_classes + cluster` (a name that matches no class), and a
moved image carries its true class (the class's name, a new cluster when no cluster has it yet). Accuracy
counts an image right when its label is its class's name; purity counts each label as its majority class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np

PAGE = 48  # the Clusters page's gallery page

# propagate(labels, checked, origin) -> new labels (checked rows unchanged); `origin`: each row's label before
# the curator checked it (a checked row whose origin differs from its label was moved by the curator)
PropagateFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Pass:
    """What the curator did: labels in name space after their edits, the rows they checked, and the labels
    before they moved any image (`origin`)."""

    labels: np.ndarray
    checked: np.ndarray
    origin: np.ndarray
    named: int
    moved: int


@dataclass(frozen=True)
class PassScore:
    """One pass scored before and after one propagation (accuracy with the names, and purity)."""

    variant: str
    seed: int
    named: int
    checked: int
    moved: int
    changed: int
    accuracy_before: float
    accuracy_after: float
    purity_before: float
    purity_after: float

    @property
    def accuracy_change(self) -> float:
        return self.accuracy_after - self.accuracy_before

    def to_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "accuracy_change": self.accuracy_change}


def name_space(truth: np.ndarray, clusters: np.ndarray, named: np.ndarray) -> np.ndarray:
    """Labels when the clusters in `named` carry their majority class's name and the rest their automatic one."""
    n_classes = int(truth.max()) + 1
    labels = n_classes + np.asarray(clusters, dtype=np.int64)
    for cluster in named:
        members = clusters == cluster
        labels[members] = np.bincount(truth[members]).argmax()
    return labels


def purity(truth: np.ndarray, labels: np.ndarray) -> float:
    """Share of images in their label's majority class."""
    _, inverse = np.unique(labels, return_inverse=True)
    table = np.zeros((inverse.max() + 1, int(truth.max()) + 1), dtype=np.int64)
    np.add.at(table, (inverse, truth), 1)
    return float(table.max(axis=1).sum() / truth.size)


def _inspect(truth: np.ndarray, labels: np.ndarray, checked: np.ndarray, rows: np.ndarray) -> int:
    """The curator looks at `rows`: wrong ones move to their class, all become checked; returns the moves."""
    rows = np.asarray(rows, dtype=np.int64)
    wrong = rows[labels[rows] != truth[rows]]
    labels[wrong] = truth[wrong]
    checked[rows] = True
    return int(wrong.size)


def _three_named(clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    every = np.unique(clusters)
    return rng.choice(every, size=min(3, every.size), replace=False)


def _members(clusters: np.ndarray, cluster: int) -> np.ndarray:
    return np.flatnonzero(clusters == cluster)


def _pass(
    truth: np.ndarray, clusters: np.ndarray, named: np.ndarray, looked_at: Iterable[np.ndarray]
) -> Pass:
    """The clusters in `named` get their majority class's name, then the curator looks at each group of rows
    in `looked_at` in turn (drawn lazily, so a seed draws them in the same order as the curator looks)."""
    origin, checked = name_space(truth, clusters, named), np.zeros(truth.size, bool)
    labels = origin.copy()
    moved = sum(_inspect(truth, labels, checked, rows) for rows in looked_at)
    return Pass(labels, checked, origin, int(named.size), moved)


def short_pass(
    truth: np.ndarray, clusters: np.ndarray, confidence: np.ndarray, rng: np.random.Generator
) -> Pass:
    """Name 3 random clusters after their majority class, inspect 5 random images in each."""
    named = _three_named(clusters, rng)
    members = (_members(clusters, cluster) for cluster in named)
    return _pass(truth, clusters, named, (rng.choice(m, min(5, m.size), replace=False) for m in members))


def page_pass(
    truth: np.ndarray, clusters: np.ndarray, confidence: np.ndarray, rng: np.random.Generator
) -> Pass:
    """Name 3 random clusters; open one and check its first gallery page (least sure first, the default sort)."""
    named = _three_named(clusters, rng)
    members = _members(clusters, named[0])
    return _pass(truth, clusters, named, [members[np.argsort(confidence[members], kind="stable")[:PAGE]]])


def every_cluster_pass(
    truth: np.ndarray, clusters: np.ndarray, confidence: np.ndarray, rng: np.random.Generator
) -> Pass:
    """Name every cluster; inspect 3 random images in each."""
    every = np.unique(clusters)
    members = (_members(clusters, cluster) for cluster in every)
    return _pass(truth, clusters, every, (rng.choice(m, min(3, m.size), replace=False) for m in members))


def queue_pass(
    truth: np.ndarray, clusters: np.ndarray, confidence: np.ndarray, rng: np.random.Generator
) -> Pass:
    """Name 3 random clusters; inspect the 9 least sure images of the review queue (any cluster)."""
    return _pass(truth, clusters, _three_named(clusters, rng), [np.argsort(confidence, kind="stable")[:9]])


def typical_pages_pass(
    truth: np.ndarray, clusters: np.ndarray, confidence: np.ndarray, rng: np.random.Generator
) -> Pass:
    """Name every cluster; check the first page of each sorted most typical first."""
    every = np.unique(clusters)
    members = (_members(clusters, cluster) for cluster in every)
    return _pass(
        truth, clusters, every, (m[np.argsort(-confidence[m], kind="stable")[:PAGE]] for m in members)
    )


VARIANTS: dict[str, Callable[..., Pass]] = {
    "short": short_pass,
    "page": page_pass,
    "queue": queue_pass,
    "every_cluster": every_cluster_pass,
    "typical_pages": typical_pages_pass,
}


def score_pass(
    variant: str,
    seed: int,
    truth: np.ndarray,
    clusters: np.ndarray,
    confidence: np.ndarray,
    propagate: PropagateFn,
) -> PassScore:
    """Draw one pass of `variant` with `seed`, propagate once, and score the labels before and after."""
    truth = np.asarray(truth, dtype=np.int64)
    done = VARIANTS[variant](truth, np.asarray(clusters), np.asarray(confidence), np.random.default_rng(seed))
    after = np.asarray(propagate(done.labels.copy(), done.checked.copy(), done.origin.copy()))
    assert np.array_equal(after[done.checked], done.labels[done.checked]), "a checked image changed"
    return PassScore(
        variant,
        seed,
        done.named,
        int(done.checked.sum()),
        done.moved,
        int((after != done.labels).sum()),
        float((done.labels == truth).mean()),
        float((after == truth).mean()),
        purity(truth, done.labels),
        purity(truth, after),
    )
