"""Which clusters are alike: a merge tree over cluster centroids in the backbone features.

For curators who do not know the number of categories: discover more clusters than needed, then
merge along this tree. The tree is agglomerative over the clusters (not the images), so it costs
milliseconds and no training: cutting it at any number of categories is a view of the current
clusters. Two linkages: ``average`` (mean cosine distance between the member clusters' centroids,
weighted by size; the default) and ``ward`` (size-weighted increase of the within-group variance).
Centroids are taken in the whitened space TURTLE itself works in (``geometry="whiten"``, the default)
or on the raw L2-normalised features (``"l2"``). On the demo (TURTLE at 15 clusters, cut at the true
10) whitened centroids cut at 0.66-0.67 accuracy against 0.57 for raw ones (benchmarks/merge_tree.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Linkage = Literal["ward", "average"]
Geometry = Literal["whiten", "l2"]
DEFAULT_LINKAGE: Linkage = "average"
DEFAULT_GEOMETRY: Geometry = "whiten"
_EPS = 1e-12


@dataclass(frozen=True)
class MergeStep:
    """One merge of the tree: the clusters of the two groups it joins, and how far apart they were."""

    left: tuple[int, ...]
    right: tuple[int, ...]
    height: float


@dataclass(frozen=True)
class MergeTree:
    """Agglomerative merges of `cluster_ids`, lowest first (`steps[i]` is the i-th merge)."""

    cluster_ids: tuple[int, ...]
    sizes: tuple[int, ...]
    steps: tuple[MergeStep, ...]
    linkage: Linkage

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_ids)

    @property
    def heights(self) -> np.ndarray:
        return np.array([step.height for step in self.steps], dtype=np.float64)

    def groups(self, n_groups: int) -> list[tuple[int, ...]]:
        """The clusters grouped as the tree has them at `n_groups` categories (1..n_clusters): each group
        lists its cluster ids, largest cluster first; groups ordered by their largest cluster's id."""
        n = self.n_clusters
        if not 1 <= n_groups <= max(n, 1):
            raise ValueError(f"the tree has {n} clusters: choose 1 to {n} categories, got {n_groups}")
        group_of = {cid: (cid,) for cid in self.cluster_ids}
        for step in self.steps[: n - n_groups]:
            joined = group_of[step.left[0]] + group_of[step.right[0]]
            for cid in joined:
                group_of[cid] = joined
        size = dict(zip(self.cluster_ids, self.sizes, strict=True))
        unique = {frozenset(g): g for g in group_of.values()}.values()
        ordered = [tuple(sorted(g, key=lambda c: (-size[c], c))) for g in unique]
        return sorted(ordered, key=lambda g: g[0])

    def relabel(self, assignments: np.ndarray, n_groups: int) -> np.ndarray:
        """`assignments` with every cluster replaced by its group's first (largest) cluster id at
        `n_groups` categories; other values (e.g. excluded images) are kept."""
        out = np.asarray(assignments).copy()
        source = np.asarray(assignments)
        for group in self.groups(n_groups):
            out[np.isin(source, group)] = group[0]
        return out

    def suggested_n_groups(self) -> int:
        """A label-free number of categories: the cut below the largest relative jump in merge height
        (between 2 and n_clusters - 1 categories; n_clusters when the tree is too small to tell)."""
        n = self.n_clusters
        if n < 4:
            return n
        heights = self.heights
        # Cutting at k categories applies the first n - k merges; the next merge would cost heights[n - k].
        best_k, best_ratio = n, 0.0
        for k in range(2, n):
            done, nxt = heights[n - k - 1], heights[n - k]
            ratio = nxt / max(done, _EPS)
            if ratio > best_ratio:
                best_k, best_ratio = k, ratio
        return best_k

    def suggestions(self, limit: int = 5, apart: Sequence[frozenset[int]] = ()) -> list[MergeStep]:
        """The first `limit` merges of the tree: the groups of clusters that are most alike. A merge that
        would only join clusters of one set in `apart` (e.g. the parts of a split just made) is skipped."""
        kept = [
            step
            for step in self.steps
            if not any(set(step.left) | set(step.right) <= together for together in apart)
        ]
        return kept[: max(0, limit)]


def cluster_centroids(
    spaces: Sequence[np.ndarray],
    assignments: np.ndarray,
    cluster_ids: Sequence[int],
    *,
    geometry: Geometry = DEFAULT_GEOMETRY,
) -> np.ndarray:
    """Mean feature of each cluster (rows in `cluster_ids` order). Each space is whitened as TURTLE's
    default preprocessing does (`geometry="whiten"`) or left raw (`"l2"`), L2-normalised row-wise and
    weighted equally before the spaces are concatenated."""
    if not spaces:
        raise ValueError("no embedding spaces given")
    if geometry not in ("whiten", "l2"):
        raise ValueError(f"unknown geometry {geometry!r}: use 'whiten' or 'l2'")
    assign = np.asarray(assignments)
    blocks = []
    for space in spaces:
        X = np.asarray(space, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] != assign.shape[0]:
            raise ValueError(f"features of shape {X.shape} do not match {assign.shape[0]} assignments")
        if geometry == "whiten":
            X = _whitened(X, len(cluster_ids))
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), _EPS)
        blocks.append(X / np.sqrt(len(spaces)))
    features = np.concatenate(blocks, axis=1)
    centroids = np.zeros((len(cluster_ids), features.shape[1]), dtype=np.float64)
    for row, cid in enumerate(cluster_ids):
        members = assign == cid
        if not members.any():
            raise ValueError(f"cluster {cid} has no images")
        centroids[row] = features[members].mean(axis=0, dtype=np.float64)
    return centroids


def _whitened(X: np.ndarray, n_clusters: int) -> np.ndarray:
    from turtle_core.discovery.features import (
        DEFAULT_N_COMPONENTS,
        SpacePreprocessor,
        effective_components,
        prepare_space,
    )
    from turtle_core.discovery.sampled import chunks, discovery_sample

    axes = effective_components(DEFAULT_N_COMPONENTS, X.shape[0], n_clusters)
    sample = discovery_sample(X.shape[0])
    if sample is None:
        return prepare_space(X, "whiten", n_components=axes)
    # Many rows: the whitening is fitted on the discovery's sample and applied chunk by chunk, so the
    # centred copies of all rows (twice 5 GB at a million × 1,280) are never built.
    fitted = SpacePreprocessor("whiten", axes).fit(X[sample])
    out = None
    for rows in chunks(X.shape[0]):
        block = fitted.transform(X[rows])
        if out is None:
            out = np.empty((X.shape[0], block.shape[1]), dtype=np.float32)
        out[rows] = block
    assert out is not None
    return out


def whitened_spaces(spaces: Sequence[np.ndarray], n_clusters: int) -> list[np.ndarray]:
    """Each space whitened as TURTLE's default preprocessing does: the slow part of a whitened tree
    (a PCA per space), so a caller that builds trees after every edit computes it once and passes
    the result with `geometry="l2"`."""
    return [_whitened(np.asarray(X, dtype=np.float32), n_clusters) for X in spaces]


def merge_tree(
    spaces: Sequence[np.ndarray],
    assignments: np.ndarray,
    cluster_ids: Sequence[int] | None = None,
    *,
    linkage: Linkage = DEFAULT_LINKAGE,
    geometry: Geometry = DEFAULT_GEOMETRY,
) -> MergeTree:
    """The merge tree of the clusters in `assignments` (ids >= 0; negative ids, e.g. excluded images,
    are ignored) from their centroids in `spaces` (one N × D feature matrix per backbone)."""
    assign = np.asarray(assignments)
    ids = sorted(int(c) for c in np.unique(assign) if c >= 0) if cluster_ids is None else list(cluster_ids)
    sizes = np.array([int((assign == cid).sum()) for cid in ids], dtype=np.float64)
    if not ids:
        raise ValueError("there are no clusters to compare")
    centroids = cluster_centroids(spaces, assign, ids, geometry=geometry)
    steps = _agglomerate(ids, sizes, centroids, linkage)
    return MergeTree(tuple(ids), tuple(int(s) for s in sizes), tuple(steps), linkage)


def _agglomerate(
    ids: list[int], sizes: np.ndarray, centroids: np.ndarray, linkage: Linkage
) -> list[MergeStep]:
    """Greedy agglomeration over clusters weighted by their sizes, one distance row updated per merge."""
    if linkage not in ("ward", "average"):
        raise ValueError(f"unknown linkage {linkage!r}: use 'ward' or 'average'")
    n = len(ids)
    members: list[list[int]] = [[i] for i in range(n)]
    size = sizes.astype(np.float64).copy()
    mean = centroids.copy()
    if linkage == "ward":
        distance = np.stack([_ward_row(mean, size, i) for i in range(n)]) if n else np.zeros((0, 0))
    else:
        unit = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), _EPS)
        distance = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)  # cosine distance between cluster centroids
    np.fill_diagonal(distance, np.inf)
    steps: list[MergeStep] = []
    for _ in range(n - 1):
        a, b = sorted(np.unravel_index(int(np.argmin(distance)), distance.shape))
        steps.append(
            MergeStep(
                left=tuple(ids[i] for i in _largest_first(members[a], sizes)),
                right=tuple(ids[i] for i in _largest_first(members[b], sizes)),
                height=float(distance[a, b]),
            )
        )
        total = size[a] + size[b]
        if linkage == "ward":
            mean[a] = (size[a] * mean[a] + size[b] * mean[b]) / total
            size[a] = total
            row = _ward_row(mean, size, a)
        else:  # size-weighted mean of the pairwise centroid distances (Lance-Williams)
            row = (size[a] * distance[a] + size[b] * distance[b]) / total
            size[a] = total
        dead = ~np.isfinite(distance[b]) | ~np.isfinite(distance[a])
        row[dead] = np.inf
        distance[a, :] = row
        distance[:, a] = row
        distance[b, :] = np.inf
        distance[:, b] = np.inf
        distance[a, a] = np.inf
        members[a] = members[a] + members[b]
    return steps


def _ward_row(mean: np.ndarray, size: np.ndarray, i: int) -> np.ndarray:
    """Ward's merge cost of group i with every group: the increase of the within-group sum of squares,
    as a square root so that heights are in distance units."""
    diff = mean - mean[i]
    return np.sqrt(2.0 * size * size[i] / (size + size[i]) * np.einsum("ij,ij->i", diff, diff))


def _largest_first(rows: list[int], sizes: np.ndarray) -> list[int]:
    return sorted(rows, key=lambda i: (-sizes[i], i))
