"""Near-duplicates from the embeddings the discovery already has: a nearest-neighbour graph, a threshold
that adapts to the folder, and groups built around a kept image.

Distance between two images: the mean over backbones of their cosine distance (0 = same direction).
Images with identical content (one content hash) are one node of the graph, so exact copies are always
grouped together and never use up each other's neighbour slots. Up to `EXACT_LIMIT` nodes the
neighbours are exact; above it they come from an inverted-file index (faiss) over a PCA projection,
and every candidate's distance is then computed exactly in the full space.

Groups are not connected components (which chain unrelated images through intermediate ones): images
are visited from the one most worth keeping (most pixels, then largest file); each not yet grouped
becomes the kept image of a group holding every other ungrouped image within the threshold of it.
Every member of a group is therefore within the threshold of its kept image.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from turtle_core.progress import ProgressCallback, ProgressMeter, check_cancel

EXACT_LIMIT = 50_000
NEIGHBOURS = 16
# The default threshold, as a fraction of the folder's median nearest-neighbour distance
# (benchmarks/cleaning_duplicates.py chose it on planted copies; cleanlab's default is 0.13).
DEFAULT_FRACTION = 0.5
ANN_DIMS = 64
ANN_SAMPLE = 100_000
ANN_PROBES = 8
_CHUNK = 2048
_GRAPH_FORMAT = 1


@dataclass(frozen=True)
class NeighbourGraph:
    """The nearest neighbours of every distinct image. `node_of_row` maps an image row to its node
    (images with identical content share one); `indices`/`distances` (nodes × k, ascending, -1 / inf
    padded) list each node's nearest other nodes."""

    node_of_row: np.ndarray
    indices: np.ndarray
    distances: np.ndarray
    exact: bool

    @property
    def n_nodes(self) -> int:
        return int(self.indices.shape[0])

    def nearest_distances(self) -> np.ndarray:
        """Each node's distance to its nearest other node (nodes without one left out)."""
        first = self.distances[:, 0] if self.distances.size else np.zeros(0, np.float32)
        return first[np.isfinite(first)]

    def median_distance(self) -> float:
        """The folder's typical nearest-neighbour distance (0 when there are fewer than two nodes)."""
        nearest = self.nearest_distances()
        return float(np.median(nearest)) if nearest.size else 0.0

    def default_threshold(self, fraction: float = DEFAULT_FRACTION) -> float:
        """`fraction` of the median nearest-neighbour distance: the threshold adapts to the folder."""
        return fraction * self.median_distance()

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            format=np.asarray(_GRAPH_FORMAT),
            node_of_row=self.node_of_row,
            indices=self.indices,
            distances=self.distances,
            exact=np.asarray(self.exact),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> NeighbourGraph:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            if int(arrays["format"]) != _GRAPH_FORMAT:
                raise ValueError(f"unsupported neighbour graph format {int(arrays['format'])}")
            return cls(arrays["node_of_row"], arrays["indices"], arrays["distances"], bool(arrays["exact"]))


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are near-duplicates of the kept one: `keep` and `others` are image rows,
    `distances` each other's distance to the kept image (0 for an exact copy)."""

    keep: int
    others: tuple[int, ...]
    distances: tuple[float, ...]

    @property
    def rows(self) -> tuple[int, ...]:
        return (self.keep, *self.others)

    @property
    def exact(self) -> bool:
        """Every image of the group has the kept image's content."""
        return all(distance == 0.0 for distance in self.distances)


def build_neighbour_graph(
    spaces: Sequence[np.ndarray],
    content_hashes: Sequence[str],
    *,
    k: int = NEIGHBOURS,
    exact_limit: int = EXACT_LIMIT,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    seed: int = 0,
) -> NeighbourGraph:
    """The `k` nearest neighbours of every distinct image (rows of `spaces` align with `content_hashes`)."""
    n_rows = len(content_hashes)
    if any(space.shape[0] != n_rows for space in spaces):
        raise ValueError("every feature matrix needs one row per image")
    _, first_row, node_of_row = np.unique(np.asarray(content_hashes), return_index=True, return_inverse=True)
    node_of_row = node_of_row.astype(np.int64).ravel()
    k = max(1, min(k, len(first_row) - 1))
    if len(first_row) < 2:
        empty = np.zeros((len(first_row), 0))
        return NeighbourGraph(node_of_row, empty.astype(np.int32), empty.astype(np.float32), True)
    exact = len(first_row) <= exact_limit
    if exact:
        indices, distances = _exact_neighbours(spaces, first_row, k, progress, cancel)
    else:
        indices, distances = _approximate_neighbours(spaces, first_row, k, progress, cancel, seed)
    return NeighbourGraph(node_of_row, indices, distances, exact)


def duplicate_groups(graph: NeighbourGraph, threshold: float, priority: np.ndarray) -> list[DuplicateGroup]:
    """Groups of near-duplicates at `threshold`, each around the kept image (highest `priority` per row).
    Exact copies are grouped at any threshold. Largest groups first."""
    rows_of_node = _rows_by_node(graph.node_of_row)
    priority = np.asarray(priority, dtype=np.float64)
    node_priority = np.full(graph.n_nodes, -np.inf)
    np.maximum.at(node_priority, graph.node_of_row, priority)
    partners = _pairs_within(graph, threshold)
    has_copies = np.asarray([len(rows) > 1 for rows in rows_of_node])
    candidates = np.flatnonzero(has_copies | np.asarray([len(p) > 0 for p in partners]))
    taken = np.zeros(graph.n_nodes, bool)
    groups: list[DuplicateGroup] = []
    for node in candidates[np.argsort(-node_priority[candidates], kind="stable")]:
        if taken[node]:
            continue
        members = [(other, distance) for other, distance in partners[node] if not taken[other]]
        if not members and not has_copies[node]:
            continue
        taken[node] = True
        rows = sorted(rows_of_node[node], key=lambda row: -priority[row])
        others = [(row, 0.0) for row in rows[1:]]
        for other, distance in sorted(members, key=lambda item: item[1]):
            taken[other] = True
            others.extend((row, distance) for row in rows_of_node[other])
        groups.append(
            DuplicateGroup(int(rows[0]), tuple(int(r) for r, _ in others), tuple(float(d) for _, d in others))
        )
    return sorted(groups, key=lambda group: (-len(group.others), group.keep))


def keep_priority(pixels: Sequence[int], file_sizes: Sequence[int]) -> np.ndarray:
    """Which image of a group to keep: the most pixels, then the largest file."""
    pixels_array = np.asarray(pixels, dtype=np.float64)
    sizes = np.asarray(file_sizes, dtype=np.float64)
    return pixels_array * 1e12 + np.minimum(sizes, 1e12 - 1)


def distance_histogram(graph: NeighbourGraph, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin edges of the nearest-neighbour distances (for the threshold's histogram)."""
    nearest = graph.nearest_distances()
    top = float(np.percentile(nearest, 99)) if nearest.size else 1.0
    return np.histogram(np.clip(nearest, 0, top), bins=bins, range=(0.0, max(top, 1e-6)))


# ---------------------------------------------------------------------------------------- internals


def _unit_blocks(spaces: Sequence[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Rows of every space L2-normalised and side by side, scaled so that 1 - dot = mean cosine distance."""
    weight = 1.0 / np.sqrt(len(spaces))
    blocks = []
    for space in spaces:
        block = np.asarray(space[rows], dtype=np.float32)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        blocks.append(block * (weight / np.maximum(norms, 1e-12)))
    return np.concatenate(blocks, axis=1)


def _exact_neighbours(
    spaces: Sequence[np.ndarray],
    nodes: np.ndarray,
    k: int,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> tuple[np.ndarray, np.ndarray]:
    import torch

    features = torch.from_numpy(_unit_blocks(spaces, nodes))
    n = features.shape[0]
    indices = np.empty((n, k), np.int32)
    distances = np.empty((n, k), np.float32)
    meter = ProgressMeter("duplicates", n, progress)
    for start in range(0, n, _CHUNK):
        check_cancel(cancel)
        stop = min(n, start + _CHUNK)
        similarity = features[start:stop] @ features.T
        similarity[torch.arange(stop - start), torch.arange(start, stop)] = -torch.inf
        top, where = similarity.topk(k, dim=1)
        indices[start:stop] = where.numpy()
        distances[start:stop] = np.maximum(1.0 - top.numpy(), 0.0)
        meter.advance(stop - start, message="nearest neighbours")
    return indices, distances


def _approximate_neighbours(
    spaces: Sequence[np.ndarray],
    nodes: np.ndarray,
    k: int,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    n = len(nodes)
    rng = np.random.default_rng(seed)
    meter = ProgressMeter("duplicates", 3 * n, progress)
    sample = np.sort(rng.choice(n, size=min(n, ANN_SAMPLE), replace=False))
    fitted = _unit_blocks(spaces, nodes[sample[: min(len(sample), 20_000)]])
    mean = fitted.mean(0)
    centred = fitted - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)  # principal axes of the sample, largest last
    basis = np.ascontiguousarray(vectors[:, ::-1][:, : min(ANN_DIMS, fitted.shape[1])], dtype=np.float32)
    del fitted, centred
    projected = np.empty((n, basis.shape[1]), np.float32)
    for start in range(0, n, 8 * _CHUNK):
        check_cancel(cancel)
        stop = min(n, start + 8 * _CHUNK)
        projected[start:stop] = (_unit_blocks(spaces, nodes[start:stop]) - mean) @ basis
        meter.advance(stop - start, message="projecting")
    n_lists = int(min(4096, max(16, 4 * np.sqrt(n)), max(16, len(sample) // 39)))  # faiss: 39 per list
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(basis.shape[1]), basis.shape[1], n_lists)
    index.cp.niter = 10  # the lists only need to be roughly balanced, not converged
    index.train(projected[sample])
    index.add(projected)
    index.nprobe = ANN_PROBES
    candidates = np.empty((n, k + 1), np.int64)
    for start in range(0, n, 16 * _CHUNK):
        check_cancel(cancel)
        stop = min(n, start + 16 * _CHUNK)
        _, candidates[start:stop] = index.search(projected[start:stop], k + 1)
        meter.advance(stop - start, message="approximate neighbours")
    del index, projected
    return _exact_distances(spaces, nodes, candidates, k, meter, cancel)


def _exact_distances(
    spaces: Sequence[np.ndarray],
    nodes: np.ndarray,
    candidates: np.ndarray,
    k: int,
    meter: ProgressMeter,
    cancel: threading.Event | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest of each node's candidates, by their distance in the full space."""
    import torch

    n = len(nodes)
    norms = [_row_norms(space, nodes) for space in spaces]
    indices = np.empty((n, k), np.int32)
    distances = np.empty((n, k), np.float32)
    for start in range(0, n, _CHUNK):
        check_cancel(cancel)
        stop = min(n, start + _CHUNK)
        found = candidates[start:stop]
        found = np.where(found == np.arange(start, stop)[:, None], -1, found)  # not itself
        safe = np.maximum(found, 0)
        similarity = np.zeros(found.shape, np.float32)
        for space, norm in zip(spaces, norms, strict=True):
            queries = torch.from_numpy(np.ascontiguousarray(space[nodes[start:stop]], dtype=np.float32))
            others = torch.from_numpy(np.asarray(space[nodes[safe.ravel()]], dtype=np.float32))
            dots = torch.bmm(others.view(stop - start, found.shape[1], -1), queries[:, :, None])[:, :, 0]
            similarity += dots.numpy() / (norm[start:stop, None] * norm[safe])
        dist = np.maximum(1.0 - similarity / len(spaces), 0.0)
        dist[found < 0] = np.inf
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        nearest = np.take_along_axis(dist, order, 1)
        indices[start:stop] = np.where(np.isfinite(nearest), np.take_along_axis(found, order, 1), -1)
        distances[start:stop] = nearest
        meter.advance(stop - start, message="exact distances")
    return indices, distances


def _row_norms(space: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    norms = np.empty(len(nodes), np.float32)
    for start in range(0, len(nodes), 16 * _CHUNK):
        block = np.asarray(space[nodes[start : start + 16 * _CHUNK]], dtype=np.float32)
        norms[start : start + len(block)] = np.maximum(np.linalg.norm(block, axis=1), 1e-12)
    return norms


def _rows_by_node(node_of_row: np.ndarray) -> list[list[int]]:
    order = np.argsort(node_of_row, kind="stable")
    bounds = np.searchsorted(node_of_row[order], np.arange(int(node_of_row.max(initial=-1)) + 2))
    return [order[bounds[i] : bounds[i + 1]].tolist() for i in range(len(bounds) - 1)]


def _pairs_within(graph: NeighbourGraph, threshold: float) -> list[list[tuple[int, float]]]:
    """For every node, the other nodes within `threshold` (either one lists the other as a neighbour)."""
    partners: list[list[tuple[int, float]]] = [[] for _ in range(graph.n_nodes)]
    near = (graph.distances <= threshold) & (graph.indices >= 0)
    sources, slots = np.nonzero(near)
    targets = graph.indices[sources, slots]
    values = graph.distances[sources, slots]
    seen: set[tuple[int, int]] = set()
    for a, b, d in zip(sources.tolist(), targets.tolist(), values.tolist(), strict=True):
        key = (a, b) if a < b else (b, a)
        if a == b or key in seen:
            continue
        seen.add(key)
        partners[a].append((b, d))
        partners[b].append((a, d))
    return partners
