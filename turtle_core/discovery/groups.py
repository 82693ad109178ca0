"""Per-group means of feature rows, for the k-means starts, the confidence margins and category shapes."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

CHUNK_ROWS = 65_536


def group_means(X: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean row (n_groups × d, float32) of each group's rows, `groups` holding 0..n_groups-1 per row;
    an empty group gets the zero vector.

    The sums are products with the one-hot membership matrix, in float64 as `np.add.at` made them but a
    chunk of rows at a time (no float64 copy of X): the same means, 0.43 s against 13 s on 128,117 × 1,536
    rows in 1,000 groups; at ImageNet's size that was minutes of one core."""
    groups = np.asarray(groups)
    sums = np.zeros((n_groups, X.shape[1]))
    for start in range(0, len(groups), CHUNK_ROWS):
        part = groups[start : start + CHUNK_ROWS]
        members = csr_matrix((np.ones(len(part)), (part, np.arange(len(part)))), shape=(n_groups, len(part)))
        sums += members @ np.asarray(X[start : start + CHUNK_ROWS], dtype=np.float64)
    counts = np.maximum(np.bincount(groups, minlength=n_groups), 1)[:, None]
    return (sums / counts).astype(np.float32)
