"""Pixel signatures compared over small crops: a crop of a picture shifts and enlarges every detail of it,
so the whole of one signature is compared with windows of the other, each averaged down to
`WINDOW_SIDE` × `WINDOW_SIDE`, and the best match kept.

The windows of a signature: the whole picture, and squares of `WINDOW_SCALE` of its side at
`WINDOW_POSITIONS` × `WINDOW_POSITIONS` places from one corner to the other (a crop of up to a tenth of
the side, anywhere). Each window is an area average over the signature's 16 × 16 cells, so a window that
cuts through cells weighs them by how much of them it covers.
"""

from __future__ import annotations

import functools

import numpy as np

from turtle_core.ingest.quality import area_weights

WINDOW_SCALE = 0.9
WINDOW_POSITIONS = 3
WINDOW_SIDE = 10  # chosen on benchmarks/cleaning_duplicates.py's glyphs, as SHIFTED_RATIO
_NODES = 1024  # windows are made for this many images at a time
_PAIRS = 16_384  # and compared with this many partners at a time


@functools.cache
def span_weights(cells: int) -> np.ndarray:
    """Spans × WINDOW_SIDE × cells: the weights of each span of a signature's side, the whole side first,
    then WINDOW_SCALE of it at each of WINDOW_POSITIONS places (windows are a span down by one across)."""
    spans = [(0.0, 1.0)]
    spans += [
        (float(start), WINDOW_SCALE) for start in np.linspace(0.0, 1.0 - WINDOW_SCALE, WINDOW_POSITIONS)
    ]
    return np.stack([area_weights(cells, WINDOW_SIDE, start, size) for start, size in spans])


def window_vectors(pixels: np.ndarray, whole_only: bool = False) -> np.ndarray:
    """Signature pixels (images × cells × cells × RGB) as images × windows × (3 × WINDOW_SIDE²) unit
    vectors, each colour channel centred on its own mean (zero for a flat window); window 0 is the whole
    picture, the others a span down by one across. With `whole_only`, window 0 alone."""
    count, cells = len(pixels), pixels.shape[1]
    block = np.ascontiguousarray(pixels.transpose(1, 0, 3, 2), dtype=np.float32)
    block = block.reshape(cells, count * 3 * cells)  # cell down × (image, channel, cell across)
    spans = span_weights(cells)
    parts = [_windows(block, spans[:1], count)]
    if not whole_only:
        parts.append(_windows(block, spans[1:], count))
    windows = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    windows -= windows.mean(axis=3, keepdims=True)
    flat = windows.reshape(count, windows.shape[1], -1)
    norms = np.sqrt(np.einsum("nwk,nwk->nw", flat, flat))[:, :, None]
    flat /= np.where(norms > 0, norms, 1.0)
    return flat


def _windows(block: np.ndarray, spans: np.ndarray, count: int) -> np.ndarray:
    """Every span down by every span across of each image: images × windows × RGB × WINDOW_SIDE².
    Down first for every image and channel at once, then across: two plain matrix products."""
    n_spans, side, cells = spans.shape
    weights = spans.reshape(-1, cells)
    both = (weights @ block).reshape(-1, cells) @ weights.T
    both = both.reshape(n_spans, side, count, 3, n_spans, side).transpose(2, 0, 4, 3, 1, 5)
    return np.ascontiguousarray(both).reshape(count, n_spans * n_spans, 3, side * side)


def shifted_correlations(pixels: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """For each pair of rows (a, b) of signature `pixels`, the best correlation of the whole of one with a
    window of the other, either way round (the whole of both among them)."""
    n = len(pixels)
    wholes = np.empty((n, WINDOW_SIDE * WINDOW_SIDE * 3), np.float32)
    for start in range(0, n, 8 * _NODES):
        wholes[start : start + 8 * _NODES] = window_vectors(pixels[start : start + 8 * _NODES], True)[:, 0]
    if not len(pairs):
        return np.zeros(0, np.float32)
    # every pair twice, once from each end: each image's windows are made once, against all its partners
    owners = np.concatenate([pairs[:, 0], pairs[:, 1]]).astype(np.int32)
    degree = np.bincount(owners, minlength=n)
    order = np.argsort(owners, kind="stable").astype(np.int32)  # each image's partners side by side
    del owners
    partners = np.concatenate([pairs[:, 1], pairs[:, 0]]).astype(np.int32)[order]
    values = np.full(len(order), -1.0, np.float32)
    nodes = np.argsort(degree, kind="stable")  # images of like degree together: little padding
    nodes = nodes[degree[nodes] > 0]
    first = np.concatenate([[0], np.cumsum(degree)])
    for start in range(0, len(nodes), _NODES):
        chunk = nodes[start : start + _NODES]
        windows = window_vectors(pixels[chunk])  # nodes × windows × dims
        width = int(degree[chunk].max())
        slots = np.arange(width)
        per_node = max(1, _PAIRS // width)
        for low in range(0, len(chunk), per_node):
            some = chunk[low : low + per_node]
            filled = slots[None, :] < degree[some][:, None]
            where = np.minimum(first[some][:, None] + slots[None, :], len(order) - 1)
            their = wholes[np.where(filled, partners[where], 0)]  # nodes × slots × dims
            found = np.matmul(windows[low : low + per_node], their.transpose(0, 2, 1))  # × windows × slots
            values[order[where[filled]]] = found.max(axis=1)[filled]
    return np.maximum(values[: len(pairs)], values[len(pairs) :])


def shifted_lookalikes(
    pairs: np.ndarray, correlations: np.ndarray, similar: np.ndarray, rank: int
) -> np.ndarray:
    """Each node's distance (1 - shifted correlation) to the `rank`-th nearest of its `similar` nodes
    (its farthest one when it has fewer; inf without any), read from `correlations` of the distinct
    `pairs` (a < b, sorted, as `neighbours.candidate_pairs` gives them; they include every node's
    `similar` ones)."""
    n = similar.shape[0]
    if not len(pairs) or not similar.shape[1]:
        return np.full(n, np.inf, np.float32)
    nodes = np.repeat(np.arange(n), similar.shape[1])
    others = similar.ravel().astype(np.int64)
    valid = (others >= 0) & (others != nodes)
    keys = pairs[:, 0].astype(np.int64) * n + pairs[:, 1]
    wanted = np.minimum(nodes, others) * n + np.maximum(nodes, others)
    where = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    valid &= keys[where] == wanted
    distance = np.sort(np.where(valid, 1.0 - correlations[where], np.inf).reshape(n, -1), axis=1)
    counts = valid.reshape(n, -1).sum(axis=1)
    column = np.clip(np.minimum(counts, rank) - 1, 0, None)
    found = distance[np.arange(n), column]
    return np.where(counts > 0, found, np.inf).astype(np.float32)
