"""Per-group means of feature rows, for the k-means starts, the confidence margins and category shapes."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix


def group_means(X: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean row (n_groups × d, float32) of each group's rows, `groups` holding 0..n_groups-1 per row;
    an empty group gets the zero vector.

    The sums are a product with the one-hot membership matrix: `np.add.at` took 13 s on 128,117 × 1,536
    rows in 1,000 groups, this 0.15 s; at ImageNet's size that was minutes of one core."""
    groups = np.asarray(groups)
    members = csr_matrix(
        (np.ones(len(groups), dtype=np.float32), (groups, np.arange(len(groups)))),
        shape=(n_groups, len(groups)),
    )
    counts = np.maximum(np.bincount(groups, minlength=n_groups), 1)[:, None]
    return np.asarray(members @ np.asarray(X, dtype=np.float32) / counts, dtype=np.float32)
