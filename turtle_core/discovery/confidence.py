"""How sure the tool is of each image's cluster, and which images fit no cluster at all.

TURTLE's own softmax is saturated (0.98-1.00 for nearly every image), so it cannot order a review queue.
`label_confidence` is the image's centroid margin: how much farther (Euclidean, in the backbones' joint
PCA space) the nearest other cluster's centre is than its own cluster's centre, as a percentile rank among
all images. 0 is the least sure image of the folder, 1 the surest, so cluster means spread instead of all
reading 0.98-1.00.

Why this and not more: the review queue is also where the curator's first fixes come from, and those
fixes are what "Propagate my fixes" learns from. On the curator-effort suite a mean rank of three cues
(a cosine margin, the share of same-cluster neighbours and a held-out probe's margin) found wrong labels
a little better on some sets (AUROC on digits 0.82 against 0.75) but its least-sure images taught the
refine's probe far less: with feedback, emoji needed 9.7 actions per 100 images against 5.0, and every
other set with mistakes to fix needed more too (docs/decisions.md, "the centroid margin"). A distance, not a
cosine: cluster centres of different spread matter (emoji 6.9 with the cosine margin).

`atypicality` is the separate "fits no category" score (the open-set idea behind MCM/UEO): a robust z-score
of the image's distance to its own cluster centre among that cluster's members, combined with how far its
nearest neighbours are. Images above `turtle_core.constants.ATYPICAL_Z` are shown in the review queue as their own group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from turtle_core.discovery.features import joint_unit_rows, squared_distances
from turtle_core.discovery.groups import group_means
from turtle_core.discovery.runtime import check_spaces, cpu_threads
from turtle_core.pca import principal_axes

N_NEIGHBOURS = 10
PCA_DIMS = 128
# Beyond this many rows the neighbours are looked up among a fixed random sample (atypicality uses
# their mean similarity, a local average, which a 20k-row sample estimates well).
_NEIGHBOUR_REFERENCE_ROWS = 20_000
_BLOCK = 2048
_PROJECT_ROWS = 65_536  # rows projected at a time (65,536 × 1,280 float32 = 335 MB)


def joint_space(
    spaces: Sequence[np.ndarray | torch.Tensor],
    dims: int = PCA_DIMS,
    fit_rows: np.ndarray | None = None,
    chunk: int = _PROJECT_ROWS,
) -> np.ndarray:
    """L2-normalised rows of every space, concatenated (spaces weigh alike), centred and projected on their
    top `dims` principal axes (N × dims float32). The centre and the axes are fitted on the `fit_rows`
    rows (default: all); every row is projected `chunk` rows at a time, so no full-width copy of many
    rows is kept. The PCA is seeded: unseeded, the review queue's order moved a little from one run to
    the next (1 of the 31 least-sure emoji images differed between two calls)."""
    arrays = check_spaces(spaces)
    S = joint_unit_rows(arrays if fit_rows is None else [X[fit_rows] for X in arrays])
    mean = S.mean(0, dtype=np.float64).astype(np.float32)
    axes, _ = principal_axes(torch.from_numpy(np.ascontiguousarray(S - mean)), dims, randomized=True)
    del S
    projection = torch.from_numpy(axes)
    n = arrays[0].shape[0]
    out = np.empty((n, axes.shape[1]), dtype=np.float32)
    for lo in range(0, n, chunk):
        block = joint_unit_rows([X[lo : lo + chunk] for X in arrays]) - mean
        out[lo : lo + chunk] = (torch.from_numpy(np.ascontiguousarray(block)) @ projection).numpy()
    return out


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
    """Euclidean distance to the nearest other cluster's centre minus that to the own centre (centres:
    the clusters' means in Z); and the cosine similarity to the own centre (for atypicality)."""
    classes, inverse = np.unique(labels, return_inverse=True)
    centres = group_means(Z, inverse, classes.size)
    rows = np.arange(Z.shape[0])
    own = np.einsum("ij,ij->i", _unit(Z), _unit(centres)[inverse])
    if classes.size == 1:
        return np.ones_like(own), own
    distances = np.sqrt(squared_distances(Z, centres))
    own_distance = distances[rows, inverse].copy()
    distances[rows, inverse] = np.inf
    return distances.min(1) - own_distance, own


def neighbour_closeness(Z: np.ndarray, k: int = N_NEIGHBOURS) -> np.ndarray:
    """Mean cosine similarity of each row's `k` nearest neighbours; beyond `_NEIGHBOUR_REFERENCE_ROWS` rows
    the neighbours are looked up among a fixed random sample."""
    n = Z.shape[0]
    reference = np.arange(n)
    if n > _NEIGHBOUR_REFERENCE_ROWS:
        reference = np.sort(np.random.default_rng(0).choice(n, _NEIGHBOUR_REFERENCE_ROWS, replace=False))
    return neighbour_closeness_against(Z, reference, k)


def neighbour_closeness_against(
    Z: np.ndarray, reference: np.ndarray, k: int = N_NEIGHBOURS, block: int = _BLOCK
) -> np.ndarray:
    """`neighbour_closeness` with a given reference set (sorted row ids): the mean cosine similarity of
    each row's `k` nearest reference rows (itself excluded)."""
    n = Z.shape[0]
    R = torch.from_numpy(np.ascontiguousarray(_unit(Z[reference])))
    k = max(1, min(k, reference.size - 1))
    closeness = np.empty(n, np.float32)
    position = np.full(n, -1)
    position[reference] = np.arange(reference.size)
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        S = torch.from_numpy(np.ascontiguousarray(_unit(Z[rows]))) @ R.T
        mine = position[rows]
        inside = np.flatnonzero(mine >= 0)
        S[torch.from_numpy(inside), torch.from_numpy(mine[inside])] = -2.0  # not its own neighbour
        closeness[rows] = S.topk(k, dim=1).values.mean(1).numpy()
    return closeness


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
        Z = joint_space([np.asarray(X)[active] for X in check_spaces(spaces)])
        margin, own = centroid_margin(Z, lab)
        closeness = neighbour_closeness(Z)
    return combine_scores(labels.size, active, lab, margin, own, closeness)


def unscored(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidence 1 and atypicality 0 for every row (too few active rows to say anything)."""
    return np.ones(n_rows, np.float32), np.zeros(n_rows, np.float32)


def combine_scores(
    n_rows: int,
    active: np.ndarray,
    lab: np.ndarray,
    margin: np.ndarray,
    own: np.ndarray,
    closeness: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The active rows' confidence (the centroid margin's percentile rank; 1 with a single cluster) and
    atypicality (robust z of the distance to the own centre and of the neighbours' distance)."""
    confidence, score = unscored(n_rows)
    if np.unique(lab).size >= 2:
        confidence[active] = percentile_rank(margin)
    score[active] = (_robust_z(1.0 - own, lab) + _robust_z(1.0 - closeness, np.zeros_like(lab))) / 2
    return confidence, score


def label_confidence(
    spaces: Sequence[np.ndarray | torch.Tensor],
    labels: np.ndarray | Sequence[int],
    *,
    num_threads: int | None = None,
) -> np.ndarray:
    """Per image, in [0, 1]: the percentile rank of its centroid margin (see the module docstring).
    Excluded rows (label < 0) get 1.0 and take no part."""
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
