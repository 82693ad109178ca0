"""How sure the tool is of each image's cluster, and which images fit no cluster at all.

TURTLE's own softmax is saturated (0.98-1.00 for nearly every image), so it cannot order a review queue.
`label_confidence` instead asks three label-free questions of the backbones' features, each answered as a
percentile rank among all images, and averages the ranks:

- margin: how much closer (cosine) the image is to its own cluster's centre than to the next cluster's;
- neighbours: what share of its nearest neighbours carry the same cluster;
- held-out probe: how much a linear probe trained on the *other* images prefers its cluster (k-fold).

They catch different mistakes (boundary images, islands inside another cluster, images that only a global
linear view places elsewhere), and their average ranked wrong labels more consistently across the suite's
sets than any one of them (benchmarks/README.md). The result spreads over [0, 1]: 0 is the least sure
image of the folder, 1 the surest, so cluster means spread instead of all reading 0.98-1.00.

`atypicality` is the separate "fits no category" score (the open-set idea behind MCM/UEO): a robust z-score
of the image's distance to its own cluster centre among that cluster's members, combined with how far its
nearest neighbours are. Images above `turtle_core.constants.ATYPICAL_Z` are shown in the review queue as their own group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from turtle_core.discovery.features import joint_unit_rows
from turtle_core.discovery.runtime import _check_spaces, cpu_threads

N_NEIGHBOURS = 10
PROBE_FOLDS = 5
PROBE_C = 0.1
PCA_DIMS = 128
# Beyond this many rows the neighbours are looked up among a fixed random sample (the share of
# same-cluster neighbours is a local average, which a 20k-row sample estimates well).
_NEIGHBOUR_REFERENCE_ROWS = 20_000
_BLOCK = 2048


def _joint_space(spaces: Sequence[np.ndarray | torch.Tensor], dims: int = PCA_DIMS) -> np.ndarray:
    """L2-normalised rows of every space, concatenated (spaces weigh alike), centred, PCA to `dims`."""
    Z = joint_unit_rows(spaces)
    Z = Z - Z.mean(0, dtype=np.float64).astype(np.float32)
    T = torch.from_numpy(np.ascontiguousarray(Z))
    d = min(dims, *T.shape)
    _, _, V = torch.pca_lowrank(T, q=d, center=False, niter=3)
    return (T @ V[:, :d]).numpy()


def _unit(Z: np.ndarray) -> np.ndarray:
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def percentile_rank(values: np.ndarray) -> np.ndarray:
    """Each value's rank among all, scaled to [0, 1] (ties share their mean rank)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return np.ones(values.size)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(values.size)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse] / (values.size - 1)


def centroid_margin(Z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity to the own cluster's centre minus that to the nearest other centre; and the
    similarity to the own centre."""
    U = _unit(Z)
    classes, inverse = np.unique(labels, return_inverse=True)
    centres = np.zeros((classes.size, U.shape[1]), np.float64)
    np.add.at(centres, inverse, U)
    S = U @ _unit(centres).astype(np.float32).T
    rows = np.arange(U.shape[0])
    own = S[rows, inverse].copy()
    if classes.size == 1:
        return np.ones_like(own), own
    S[rows, inverse] = -np.inf
    return own - S.max(1), own


def neighbour_stats(
    Z: np.ndarray, labels: np.ndarray, k: int = N_NEIGHBOURS
) -> tuple[np.ndarray, np.ndarray]:
    """Share of each row's `k` nearest neighbours (cosine) in its own cluster, and their mean similarity;
    beyond `_NEIGHBOUR_REFERENCE_ROWS` rows the neighbours are looked up among a fixed random sample."""
    n = Z.shape[0]
    reference = np.arange(n)
    if n > _NEIGHBOUR_REFERENCE_ROWS:
        reference = np.sort(np.random.default_rng(0).choice(n, _NEIGHBOUR_REFERENCE_ROWS, replace=False))
    return neighbour_stats_against(Z, labels, reference, k)


def neighbour_stats_against(
    Z: np.ndarray, labels: np.ndarray, reference: np.ndarray, k: int = N_NEIGHBOURS, block: int = _BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """`neighbour_stats` with a given reference set (sorted row ids): the share of each row's `k` nearest
    reference rows (cosine, itself excluded) in its cluster, and their mean similarity."""
    n = Z.shape[0]
    R = torch.from_numpy(np.ascontiguousarray(_unit(Z[reference])))
    k = max(1, min(k, reference.size - 1))
    same = np.empty(n, np.float32)
    closeness = np.empty(n, np.float32)
    ref_labels = labels[reference]
    position = np.full(n, -1)
    position[reference] = np.arange(reference.size)
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        S = torch.from_numpy(np.ascontiguousarray(_unit(Z[rows]))) @ R.T
        mine = position[rows]
        inside = np.flatnonzero(mine >= 0)
        S[torch.from_numpy(inside), torch.from_numpy(mine[inside])] = -2.0  # not its own neighbour
        sims, idx = S.topk(k, dim=1)
        same[rows] = (ref_labels[idx.numpy()] == labels[rows, None]).mean(1)
        closeness[rows] = sims.mean(1).numpy()
    return same, closeness


def heldout_probe_margin(
    Z: np.ndarray, labels: np.ndarray, folds: int = PROBE_FOLDS, trainable: np.ndarray | None = None
) -> np.ndarray:
    """k-fold: a probe trained on the other folds; its probability of the row's cluster minus the best other.
    With `trainable` (a row mask), only those rows are trained on; every row is still scored."""
    from turtle_core.discovery.refine import FeatureProbe

    classes, inverse = np.unique(labels, return_inverse=True)
    margin = np.zeros(labels.size, np.float32)
    if classes.size < 2:
        return margin + 1.0
    probe = FeatureProbe([Z])
    fold = np.random.default_rng(0).integers(0, folds, labels.size)
    for f in range(folds):
        train = np.flatnonzero((fold != f) if trainable is None else (trainable & (fold != f)))
        test = fold == f
        if not test.any() or train.size == 0:
            continue
        P = probe.fit_predict(train, inverse[train], np.ones(train.size), classes.size)[test]
        rows = np.arange(P.shape[0])
        own = P[rows, inverse[test]].copy()
        P[rows, inverse[test]] = -1.0
        margin[test] = own - P.max(1)
    return margin


def confidence_and_atypicality(
    spaces: Sequence[np.ndarray | torch.Tensor],
    labels: np.ndarray | Sequence[int],
    *,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Both per-image scores from one pass over the features: `label_confidence` and `atypicality`."""
    labels = np.asarray(labels).ravel()
    active = np.flatnonzero(labels >= 0)
    if active.size < 3:
        return unscored(labels.size)
    lab = labels[active]
    with cpu_threads(num_threads, torch.device("cpu")):
        Z = _joint_space([np.asarray(X)[active] for X in _check_spaces(spaces)])
        margin, own = centroid_margin(Z, lab)
        same, closeness = neighbour_stats(Z, lab)
        probe = heldout_probe_margin(Z, lab) if np.unique(lab).size >= 2 else None
    return combine_cues(labels.size, active, lab, margin, own, same, closeness, probe)


def unscored(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidence 1 and atypicality 0 for every row (too few active rows to say anything)."""
    return np.ones(n_rows, np.float32), np.zeros(n_rows, np.float32)


def combine_cues(
    n_rows: int,
    active: np.ndarray,
    lab: np.ndarray,
    margin: np.ndarray,
    own: np.ndarray,
    same: np.ndarray,
    closeness: np.ndarray,
    probe: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The active rows' confidence (the three cues' mean percentile rank, ranked again; 1 with a single
    cluster) and atypicality (robust z of the distance to the own centre and of the neighbours' distance)."""
    confidence, score = unscored(n_rows)
    if probe is not None:
        ranks = (percentile_rank(margin) + percentile_rank(same) + percentile_rank(probe)) / 3
        confidence[active] = percentile_rank(ranks)
    score[active] = (_robust_z(1.0 - own, lab) + _robust_z(1.0 - closeness, np.zeros_like(lab))) / 2
    return confidence, score


def label_confidence(
    spaces: Sequence[np.ndarray | torch.Tensor],
    labels: np.ndarray | Sequence[int],
    *,
    num_threads: int | None = None,
) -> np.ndarray:
    """Per image, in [0, 1]: the mean percentile rank of its centroid margin, neighbour agreement and held-out
    probe margin (see the module docstring). Excluded rows (label < 0) get 1.0 and take no part."""
    return confidence_and_atypicality(spaces, labels, num_threads=num_threads)[0]


def atypicality(
    spaces: Sequence[np.ndarray | torch.Tensor],
    labels: np.ndarray | Sequence[int],
    *,
    num_threads: int | None = None,
) -> np.ndarray:
    """Per image, how badly it fits its own cluster (robust z-score; above `constants.ATYPICAL_Z`: fits no category).
    Excluded rows (label < 0) get 0."""
    return confidence_and_atypicality(spaces, labels, num_threads=num_threads)[1]


def _robust_z(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(value − group median) / (1.4826 · group MAD), per group."""
    z = np.zeros(values.size, np.float32)
    for group in np.unique(groups):
        members = groups == group
        v = values[members]
        median = np.median(v)
        mad = 1.4826 * np.median(np.abs(v - median))
        z[members] = (v - median) / max(mad, 1e-6)
    return z
