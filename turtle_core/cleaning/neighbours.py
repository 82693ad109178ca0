"""Nearest neighbours for near-duplicates: in the embeddings (exact, or an inverted-file index over a
PCA projection with every candidate's distance computed exactly in the full space) and in the images'
pixel signatures, and the candidate pairs they name."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from turtle_core.progress import ProgressCallback, ProgressMeter, check_cancel

ANN_DIMS = 64
ANN_SAMPLE = 100_000
ANN_PROBES = 8
_CHUNK = 2048


def unit_blocks(spaces: Sequence[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Rows of every space L2-normalised and side by side, scaled so that 1 - dot = mean cosine distance."""
    weight = 1.0 / np.sqrt(len(spaces))
    blocks = []
    for space in spaces:
        block = np.asarray(space[rows], dtype=np.float32)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        blocks.append(block * (weight / np.maximum(norms, 1e-12)))
    return np.concatenate(blocks, axis=1)


def exact_neighbours(
    spaces: Sequence[np.ndarray],
    nodes: np.ndarray,
    k: int,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest other nodes of every node and their distances, by brute force (chunked)."""
    import torch

    features = torch.from_numpy(unit_blocks(spaces, nodes))
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


def approximate_neighbours(
    spaces: Sequence[np.ndarray],
    nodes: np.ndarray,
    k: int,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest other nodes of every node from an inverted-file index over a PCA projection,
    with their distances computed exactly in the full space."""
    import faiss

    n = len(nodes)
    rng = np.random.default_rng(seed)
    meter = ProgressMeter("duplicates", 3 * n, progress)
    sample = np.sort(rng.choice(n, size=min(n, ANN_SAMPLE), replace=False))
    fitted = unit_blocks(spaces, nodes[sample[: min(len(sample), 20_000)]])
    mean = fitted.mean(0)
    centred = fitted - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)  # principal axes of the sample, largest last
    basis = np.ascontiguousarray(vectors[:, ::-1][:, : min(ANN_DIMS, fitted.shape[1])], dtype=np.float32)
    del fitted, centred
    projected = np.empty((n, basis.shape[1]), np.float32)
    for start in range(0, n, 8 * _CHUNK):
        check_cancel(cancel)
        stop = min(n, start + 8 * _CHUNK)
        projected[start:stop] = (unit_blocks(spaces, nodes[start:stop]) - mean) @ basis
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
    return exact_distances(spaces, nodes, candidates, k, meter, cancel)


def exact_distances(
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
    norms = [row_norms(space, nodes) for space in spaces]
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


def row_norms(space: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """The L2 norm of each node's row of `space` (computed in chunks)."""
    norms = np.empty(len(nodes), np.float32)
    for start in range(0, len(nodes), 16 * _CHUNK):
        block = np.asarray(space[nodes[start : start + 16 * _CHUNK]], dtype=np.float32)
        norms[start : start + len(block)] = np.maximum(np.linalg.norm(block, axis=1), 1e-12)
    return norms


def signature_neighbours(
    vectors: np.ndarray, present: np.ndarray, k: int, exact: bool, seed: int
) -> np.ndarray:
    """Each node's `k` most correlated other nodes by pixel signature (-1 where none)."""
    n = len(vectors)
    found = np.full((n, k), -1, np.int64)
    rows = np.flatnonzero(present)
    if rows.size < 2:
        return found
    k_here = min(k, rows.size - 1)
    data = np.ascontiguousarray(vectors[rows])
    if exact:
        for start in range(0, rows.size, _CHUNK):
            block = data[start : start + _CHUNK] @ data.T
            block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
            top = np.argpartition(-block, k_here - 1, axis=1)[:, :k_here]
            found[rows[start : start + len(block)], :k_here] = rows[top]
        return found
    import faiss

    n_lists = int(min(4096, max(16, 4 * np.sqrt(rows.size)), max(16, rows.size // 39)))
    index = faiss.IndexIVFFlat(
        faiss.IndexFlatIP(data.shape[1]), data.shape[1], n_lists, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.niter = 10
    sample = np.random.default_rng(seed).choice(rows.size, size=min(rows.size, ANN_SAMPLE), replace=False)
    index.train(data[np.sort(sample)])
    index.add(data)
    index.nprobe = ANN_PROBES
    for start in range(0, rows.size, 16 * _CHUNK):
        _, near = index.search(data[start : start + 16 * _CHUNK], k_here + 1)
        own = np.arange(start, start + len(near))[:, None]
        near = np.where(near == own, -1, near)
        ordered = np.sort(np.where(near < 0, np.iinfo(np.int64).max, near), axis=1)[:, :k_here]
        found[rows[start : start + len(near)], :k_here] = np.where(
            ordered == np.iinfo(np.int64).max, -1, rows[np.minimum(ordered, rows.size - 1)]
        )
    return found


def candidate_pairs(*neighbours: np.ndarray) -> np.ndarray:
    """The distinct node pairs (a < b) that some neighbour list names."""
    found = []
    for indices in neighbours:
        sources = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
        targets = indices.ravel().astype(np.int64)
        valid = (targets >= 0) & (targets != sources)
        found.append(np.stack([np.minimum(sources, targets)[valid], np.maximum(sources, targets)[valid]], 1))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def pair_correlations(vectors: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The dot product of each pair of rows of `vectors` (computed in chunks: a million images name tens
    of millions of candidate pairs)."""
    found = np.empty(len(pairs), np.float32)
    for start in range(0, len(pairs), 32 * _CHUNK):
        chunk = pairs[start : start + 32 * _CHUNK]
        found[start : start + len(chunk)] = np.einsum("ij,ij->i", vectors[chunk[:, 0]], vectors[chunk[:, 1]])
    return found


def pair_distances(spaces: Sequence[np.ndarray], nodes: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Mean cosine distance over the spaces of each pair of nodes."""
    distances = np.zeros(len(pairs), np.float32)
    for start in range(0, len(pairs), 8 * _CHUNK):
        chunk = pairs[start : start + 8 * _CHUNK]
        left = unit_blocks(spaces, nodes[chunk[:, 0]])
        right = unit_blocks(spaces, nodes[chunk[:, 1]])
        distances[start : start + len(chunk)] = np.maximum(1.0 - np.einsum("ij,ij->i", left, right), 0.0)
    return distances
