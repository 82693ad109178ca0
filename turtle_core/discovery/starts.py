"""Where TURTLE's heads start: k-means of the input spaces (Euclidean or cosine), and the clusters' means."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from turtle_core.constants import DISCOVERY_WORK_ROWS
from turtle_core.discovery.groups import group_means

# k-means++ starts behind the k-means inits: one, so that seeds give diverse starts for select_model to
# screen (the lowest-inertia k-means of several is not the one TURTLE does best from).
KMEANS_INIT_RUNS = 1


def kmeans_init_labels(
    spaces: Sequence[np.ndarray],
    n_clusters: int,
    seed: int,
    *,
    cosine: bool = False,
    n_init: int = KMEANS_INIT_RUNS,
    device: torch.device | None = None,
) -> np.ndarray:
    """k-means of the concatenated input spaces (rows L2-normalised first when `cosine`): the start
    of `init="kmeans"` / `"kmeans_cosine"`.

    The backbones' own geometry, not the whitened one TURTLE trains in. On Animal-MNIST (Lite0)
    TURTLE started from k-means of the whitened features reached 0.70 / 0.64 / 0.60 accuracy over
    three seeds; started from k-means of the input features, good starts lead it to 0.84, and Euclidean
    starts found that basin more often than cosine ones (5 of 16 seeds against 0 of the same 16;
    docs/decisions.md). `select_model` screens starts of both kinds. Above `DISCOVERY_WORK_ROWS` rows
    the k-means is fitted on a random sample of that many (drawn with `seed`) and every row assigned
    (on a CUDA `device` there).
    """
    from threadpoolctl import threadpool_limits

    from turtle_core.discovery.metrics import kmeans_baseline

    n_rows = int(np.asarray(spaces[0]).shape[0])
    fit_rows = None
    if n_rows > DISCOVERY_WORK_ROWS:
        rng = np.random.default_rng(seed % (2**31))
        fit_rows = np.sort(rng.choice(n_rows, DISCOVERY_WORK_ROWS, replace=False))
    with threadpool_limits(limits=torch.get_num_threads()):  # the same thread budget as the fit
        return kmeans_baseline(
            spaces,
            n_clusters,
            normalize=cosine,
            random_state=seed % (2**31),
            n_init=n_init,
            fit_rows=fit_rows,
            device=device,
        )


def cluster_means(features: Sequence[np.ndarray], labels: np.ndarray, n_clusters: int) -> list[np.ndarray]:
    """Per-space means (C × d_k) of each cluster's rows; an empty cluster gets the zero vector."""
    return [group_means(X, labels, n_clusters) for X in features]
