"""Near-duplicates from the embeddings the discovery already has: a nearest-neighbour graph, a threshold
that adapts to the folder, and groups built around a kept image.

Distance between two images: the mean over backbones of their cosine distance (0 = same direction).
Images with identical content (one content hash) are one node of the graph, so exact copies are always
grouped together and never use up each other's neighbour slots. Up to `EXACT_LIMIT` nodes the
neighbours are exact; above it they come from an inverted-file index (faiss) over a PCA projection,
and every candidate's distance is then computed exactly in the full space.

Embeddings are invariant to what a category ignores, so different pictures of one kind can lie as close as
two copies of one picture; a pair near in the embeddings is confirmed by the images' pixel signatures
(16 × 16 RGB, measured at scan time, compared as a whole at 8 × 8). No fixed correlation separates copies
from look-alikes in every folder: crops of one photograph or of one texture correlate as much as a cropped or turned copy does. So
the check is relative to each image's own look-alikes, like a ratio test: a pair is confirmed when its
signature distance (1 - correlation) is at most `SIGNATURE_RATIO` of the larger of the two images'
look-alike distances, the distance to their `LOOKALIKE_RANK`-th nearest signature. A copy stands out
from the look-alikes of its folder; a look-alike does not. Pairs whose signatures are practically
identical (correlation ≥ `SIGNATURE_IDENTICAL`) are confirmed whatever their look-alikes, so that a
picture with many copies, whose nearest signatures are all copies, keeps them.

A crop moves every detail of a picture: where details are few and sharp (a glyph on a plain ground), a
copy cropped by a few percent no longer correlates with its source much better than look-alikes do. So a
pair is also confirmed by the same ratio test on shifted signatures (`cleaning.shifted`): the best
correlation of the whole of one image with a slightly smaller window of the other, anywhere in it, at most
`SHIFTED_RATIO` of the larger of the two images' look-alike distances measured the same way.

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

from turtle_core.cleaning.neighbours import (
    approximate_neighbours,
    candidate_pairs,
    exact_neighbours,
    pair_correlations,
    pair_distances,
    signature_neighbours,
)
from turtle_core.cleaning.shifted import shifted_correlations, shifted_lookalikes
from turtle_core.ingest.quality import plain_vectors, signature_pixels
from turtle_core.progress import ProgressCallback, check_cancel

EXACT_LIMIT = 50_000
NEIGHBOURS = 16
# The default threshold, as a fraction of the folder's median nearest-neighbour distance
# (benchmarks/cleaning_duplicates.py chose it on planted copies; cleanlab's default is 0.13).
DEFAULT_FRACTION = 5.0
EMBEDDINGS_ONLY_FRACTION = 0.5  # images scanned without pixel signatures: the embeddings alone decide
# Two images near in the embeddings are near-duplicates when their signature distance is at most this
# fraction of the larger of their look-alike distances (chosen on benchmarks/cleaning_duplicates.py's
# colour_crops and emoji), or when their signatures correlate at least SIGNATURE_IDENTICAL.
SIGNATURE_RATIO = 0.25
LOOKALIKE_RANK = 4
SIGNATURE_IDENTICAL = 0.998
# Or when their shifted signatures are within this fraction of their shifted look-alike distances (chosen
# on benchmarks/cleaning_duplicates.py's glyphs; grey_textures and digits were not tuned on).
SHIFTED_RATIO = 0.05
_STORED_RATIO = 0.5  # candidate pairs farther than this fraction of their look-alike distance are not kept
# 3: each node's look-alike distance; signatures correlated per colour channel; 4: shifted signatures
# (older formats are not read: the graph is built again)
_GRAPH_FORMAT = 4


@dataclass(frozen=True)
class NeighbourGraph:
    """The nearest neighbours of every distinct image. `node_of_row` maps an image row to its node
    (images with identical content share one); `indices`/`distances` (nodes × k, ascending, -1 / inf
    padded) list each node's nearest other nodes."""

    node_of_row: np.ndarray
    indices: np.ndarray
    distances: np.ndarray
    exact: bool
    # Candidate pairs (nodes a < b) from both the embeddings' and the signatures' neighbours, with their
    # embedding distance and signature correlation; None when the images have no pixel signatures.
    pairs: np.ndarray | None = None
    pair_distances: np.ndarray | None = None
    pair_matches: np.ndarray | None = None
    # Each node's look-alike distance: 1 - the signature correlation of its LOOKALIKE_RANK-th nearest
    # signature (inf without a signature).
    lookalike: np.ndarray | None = None
    # The same two with shifted signatures (`cleaning.shifted`).
    pair_shifted: np.ndarray | None = None
    lookalike_shifted: np.ndarray | None = None

    @property
    def n_nodes(self) -> int:
        return int(self.indices.shape[0])

    @property
    def has_signatures(self) -> bool:
        return self.pairs is not None

    def nearest_distances(self) -> np.ndarray:
        """Each node's distance to its nearest other node (nodes without one left out)."""
        first = self.distances[:, 0] if self.distances.size else np.zeros(0, np.float32)
        return first[np.isfinite(first)]

    def median_distance(self) -> float:
        """The folder's typical nearest-neighbour distance (0 when there are fewer than two nodes)."""
        nearest = self.nearest_distances()
        return float(np.median(nearest)) if nearest.size else 0.0

    def default_threshold(self, fraction: float | None = None) -> float:
        """`fraction` of the median nearest-neighbour distance: the threshold adapts to the folder
        (default `DEFAULT_FRACTION` with pixel signatures, `EMBEDDINGS_ONLY_FRACTION` without)."""
        if fraction is None:
            fraction = DEFAULT_FRACTION if self.has_signatures else EMBEDDINGS_ONLY_FRACTION
        return fraction * self.median_distance()

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        extra = {}
        if self.pairs is not None:
            extra = {
                "pairs": self.pairs,
                "pair_distances": self.pair_distances,
                "pair_matches": self.pair_matches,
                "lookalike": self.lookalike,
                "pair_shifted": self.pair_shifted,
                "lookalike_shifted": self.lookalike_shifted,
            }
        np.savez(
            buffer,
            format=np.asarray(_GRAPH_FORMAT),
            node_of_row=self.node_of_row,
            indices=self.indices,
            distances=self.distances,
            exact=np.asarray(self.exact),
            **extra,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> NeighbourGraph:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            if int(arrays["format"]) != _GRAPH_FORMAT:
                raise ValueError(f"unsupported neighbour graph format {int(arrays['format'])}")
            names = (
                "pairs",
                "pair_distances",
                "pair_matches",
                "lookalike",
                "pair_shifted",
                "lookalike_shifted",
            )
            pairs = {k: arrays[k] for k in names if k in arrays.files}
            return cls(
                arrays["node_of_row"], arrays["indices"], arrays["distances"], bool(arrays["exact"]), **pairs
            )


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
    signatures: Sequence[str | None] | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    seed: int = 0,
) -> NeighbourGraph:
    """The `k` nearest neighbours of every distinct image (rows of `spaces` align with `content_hashes`);
    with `signatures` (per row, `ingest.quality.pixel_signature`) also the candidate pairs among the
    nearest neighbours in the embeddings or in the signatures, with both measures."""
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
        indices, distances = exact_neighbours(spaces, first_row, k, progress, cancel)
    else:
        indices, distances = approximate_neighbours(spaces, first_row, k, progress, cancel, seed)
    graph = NeighbourGraph(node_of_row, indices, distances, exact)
    if signatures is None:
        return graph
    pixels, present = signature_pixels([signatures[row] for row in first_row])
    vectors = plain_vectors(pixels)
    similar = signature_neighbours(vectors, present, k, exact, seed)
    lookalike = lookalike_distances(vectors, present, similar, LOOKALIKE_RANK)
    pairs = candidate_pairs(indices, similar)
    matches = pair_correlations(vectors, pairs)
    del vectors
    check_cancel(cancel)
    shifted = shifted_correlations(pixels, pairs)
    del pixels
    lookalike_shifted = np.where(present, shifted_lookalikes(pairs, shifted, similar, LOOKALIKE_RANK), np.inf)
    keep = present[pairs[:, 0]] & present[pairs[:, 1]]
    keep &= _confirmed(pairs, matches, lookalike, shifted, lookalike_shifted, _STORED_RATIO, _STORED_RATIO)
    pairs, matches, shifted = pairs[keep], matches[keep], shifted[keep]
    check_cancel(cancel)
    return NeighbourGraph(
        node_of_row,
        indices,
        distances,
        exact,
        pairs.astype(np.int32),
        pair_distances(spaces, first_row, pairs),
        matches.astype(np.float32),
        lookalike.astype(np.float32),
        shifted.astype(np.float32),
        lookalike_shifted.astype(np.float32),
    )


def lookalike_distances(
    vectors: np.ndarray, present: np.ndarray, similar: np.ndarray, rank: int
) -> np.ndarray:
    """Each node's signature distance (1 - correlation) to its `rank`-th nearest signature among
    `similar` (its farthest one when it has fewer; inf without a signature or any neighbour)."""
    found = np.full(len(vectors), np.inf, np.float32)
    for start in range(0, len(vectors), 2048):
        block = similar[start : start + 2048]
        valid = (block >= 0) & present[np.maximum(block, 0)]
        own = vectors[start : start + len(block)]
        correlation = np.einsum("ij,ikj->ik", own, vectors[np.maximum(block, 0)])
        distance = np.sort(np.where(valid, 1.0 - correlation, np.inf), axis=1)
        counts = valid.sum(axis=1)
        column = np.clip(np.minimum(counts, rank) - 1, 0, None)
        chosen = distance[np.arange(len(block)), column] if block.shape[1] else np.full(len(block), np.inf)
        found[start : start + len(block)] = np.where(present[start : start + len(block)], chosen, np.inf)
    return found


def duplicate_groups(
    graph: NeighbourGraph,
    threshold: float,
    priority: np.ndarray,
    ratio: float = SIGNATURE_RATIO,
    shifted_ratio: float = SHIFTED_RATIO,
) -> list[DuplicateGroup]:
    """Groups of near-duplicates at `threshold`, each around the kept image (highest `priority` per row).
    In a graph with pixel signatures two images are near-duplicates when their embeddings are within the
    threshold and their signature distance is at most `ratio` of the larger of their look-alike
    distances (or their signatures are practically identical, or their shifted signatures' distance is at
    most `shifted_ratio` of their shifted look-alike distances); without, the embeddings alone decide.
    Exact copies are grouped at any threshold. Largest groups first."""
    rows_of_node = _rows_by_node(graph.node_of_row)
    priority = np.asarray(priority, dtype=np.float64)
    node_priority = np.full(graph.n_nodes, -np.inf)
    np.maximum.at(node_priority, graph.node_of_row, priority)
    partners = _pairs_within(graph, threshold, ratio, shifted_ratio)
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


def distance_histogram(
    graph: NeighbourGraph, bins: int = 40, upper: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin edges of the nearest-neighbour distances up to `upper` (default: their 99th
    percentile; larger ones fall in the last bin), for the threshold's histogram."""
    nearest = graph.nearest_distances()
    top = upper if upper is not None else float(np.percentile(nearest, 99)) if nearest.size else 1.0
    return np.histogram(np.clip(nearest, 0, top), bins=bins, range=(0.0, max(top, 1e-6)))


# ---------------------------------------------------------------------------------------- internals


def _rows_by_node(node_of_row: np.ndarray) -> list[list[int]]:
    order = np.argsort(node_of_row, kind="stable")
    bounds = np.searchsorted(node_of_row[order], np.arange(int(node_of_row.max(initial=-1)) + 2))
    return [order[bounds[i] : bounds[i + 1]].tolist() for i in range(len(bounds) - 1)]


def _ratios(distance: np.ndarray, lookalike_a: np.ndarray, lookalike_b: np.ndarray) -> np.ndarray:
    """Signature distances as a fraction of the larger of the two images' look-alike distances."""
    scale = np.maximum(lookalike_a, lookalike_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(scale > 0, distance / np.where(scale > 0, scale, 1.0), np.inf)
    return np.where(np.isfinite(scale), ratios, np.inf)


def _confirmed(
    pairs: np.ndarray,
    matches: np.ndarray,
    lookalike: np.ndarray,
    shifted: np.ndarray,
    lookalike_shifted: np.ndarray,
    ratio: float,
    shifted_ratio: float,
) -> np.ndarray:
    """Which candidate pairs their signatures confirm: the whole signatures' distance within `ratio` of the
    larger of the two images' look-alike distances, practically identical signatures, or the shifted
    signatures' distance within `shifted_ratio` of their shifted look-alike distances."""
    a, b = pairs[:, 0], pairs[:, 1]
    confirmed = _ratios(1.0 - matches, lookalike[a], lookalike[b]) <= ratio
    confirmed |= matches >= SIGNATURE_IDENTICAL
    confirmed |= _ratios(1.0 - shifted, lookalike_shifted[a], lookalike_shifted[b]) <= shifted_ratio
    return confirmed


def _pairs_within(
    graph: NeighbourGraph, threshold: float, ratio: float, shifted_ratio: float
) -> list[list[tuple[int, float]]]:
    """For every node, the other nodes that are near-duplicates of it at `threshold`."""
    partners: list[list[tuple[int, float]]] = [[] for _ in range(graph.n_nodes)]
    if graph.pairs is not None:
        assert graph.pair_distances is not None and graph.pair_matches is not None
        assert graph.lookalike is not None
        assert graph.pair_shifted is not None and graph.lookalike_shifted is not None
        confirmed = _confirmed(
            graph.pairs,
            graph.pair_matches,
            graph.lookalike,
            graph.pair_shifted,
            graph.lookalike_shifted,
            ratio,
            shifted_ratio,
        )
        keep = (graph.pair_distances <= threshold) & confirmed
        for a, b, d in zip(*graph.pairs[keep].T.tolist(), graph.pair_distances[keep].tolist(), strict=True):
            partners[a].append((b, d))
            partners[b].append((a, d))
        return partners
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
