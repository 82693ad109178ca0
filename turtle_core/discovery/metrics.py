"""Clustering quality against known classes (Hungarian accuracy, NMI, ARI) and the k-means baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def _label_vectors(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(y_true).ravel()
    pred = np.asarray(y_pred).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {true.shape[0]} vs {pred.shape[0]}")
    if true.size == 0:
        raise ValueError("no labels to compare")
    return true, pred


def contingency_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> np.ndarray:
    """Counts of (cluster, class) pairs: rows = predicted clusters, columns = true classes."""
    true, pred = _label_vectors(y_true, y_pred)
    _, true_idx = np.unique(true, return_inverse=True)
    _, pred_idx = np.unique(pred, return_inverse=True)
    table = np.zeros((pred_idx.max() + 1, true_idx.max() + 1), dtype=np.int64)
    np.add.at(table, (pred_idx, true_idx), 1)
    return table


def hungarian_accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes.

    With more clusters than classes the unmatched clusters count as errors (and vice versa).
    """
    table = contingency_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def nmi(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Normalised mutual information (arithmetic normalisation)."""
    true, pred = _label_vectors(y_true, y_pred)
    return float(normalized_mutual_info_score(true, pred))


def ari(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Adjusted Rand index."""
    true, pred = _label_vectors(y_true, y_pred)
    return float(adjusted_rand_score(true, pred))


def evaluate(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> dict[str, float]:
    """`{"accuracy", "nmi", "ari"}` of a clustering against true classes."""
    return {
        "accuracy": hungarian_accuracy(y_true, y_pred),
        "nmi": nmi(y_true, y_pred),
        "ari": ari(y_true, y_pred),
    }


def kmeans_baseline(
    spaces: Sequence[np.ndarray | torch.Tensor],
    n_clusters: int,
    *,
    normalize: bool = True,
    random_state: int | None = 0,
    n_init: int = 10,
    fit_rows: np.ndarray | None = None,
    device: torch.device | None = None,
) -> np.ndarray:
    """k-means (best of `n_init` k-means++ starts) on the concatenated spaces, each L2-normalised per
    row when `normalize`; fitted on the rows `fit_rows` (default: all), every row assigned (on a CUDA
    `device` there, a chunk of rows at a time, without concatenating the spaces on the host)."""
    from sklearn.cluster import KMeans

    blocks = [X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X) for X in spaces]
    if not blocks:
        raise ValueError("kmeans_baseline needs at least one feature space")
    n_rows = blocks[0].shape[0]
    if not 1 <= n_clusters <= n_rows:
        raise ValueError(f"n_clusters must be between 1 and the number of rows ({n_rows}), got {n_clusters}")
    model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state)
    if fit_rows is not None and device is not None and device.type == "cuda":
        model.fit(_side_by_side([block[fit_rows] for block in blocks], normalize))
        return _nearest_centres(blocks, model.cluster_centers_, normalize, device)
    data = _side_by_side(blocks, normalize)
    if fit_rows is None:
        return model.fit_predict(data).astype(np.int64)
    return model.fit(data[fit_rows]).predict(data).astype(np.int64)


def _side_by_side(blocks: Sequence[np.ndarray], normalize: bool) -> np.ndarray:
    out = []
    for block in blocks:
        block = block.astype(np.float32, copy=False)
        if normalize:
            block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        out.append(block)
    return np.concatenate(out, axis=1)


def _nearest_centres(
    blocks: Sequence[np.ndarray], centres: np.ndarray, normalize: bool, device: torch.device
) -> np.ndarray:
    """The nearest of `centres` (rows in the concatenated space) for every row, on `device`."""
    from turtle_core.discovery.runtime import map_rows

    widths = np.cumsum([0, *(block.shape[1] for block in blocks)])
    parts = [
        torch.from_numpy(np.ascontiguousarray(centres[:, a:b], dtype=np.float32)).to(device)
        for a, b in zip(widths[:-1], widths[1:], strict=True)
    ]
    half_norms = 0.5 * sum(part.square().sum(1) for part in parts)

    def nearest(rows: list[torch.Tensor]) -> torch.Tensor:
        if normalize:
            rows = [X / X.norm(dim=1, keepdim=True).clamp_min(1e-12) for X in rows]
        score = sum(X @ part.T for X, part in zip(rows, parts, strict=True)) - half_norms
        return score.argmax(1)

    return map_rows(list(blocks), nearest, device).astype(np.int64)
