"""Which partition to trust: TURTLE's or plain k-means', decided without labels by how stable each is.

TURTLE's entropy term favours clusters of equal size. On folders whose categories are balanced it finds
them far better than k-means (digits: 0.83 against 0.60 accuracy); on imbalanced folders it splits the big
categories and k-means wins (emoji 5:1, Animal-MNIST 10:1, colour crops 4.8:1). No geometric criterion
told the two cases apart on the curator-effort suite (silhouette, Calinski-Harabasz and Davies-Bouldin
always preferred k-means, neighbour agreement and modularity always TURTLE). Stability did (Lange et al.,
"Stability-based validation of clustering solutions", 2004): the method whose independent runs agree
with each other more is the one whose partition reflects the data rather than its own bias. TURTLE's
runs are independent quick selections (`discovery.discover`); k-means' are `STABILITY_KMEANS_RUNS` seeds
of k-means with `STABILITY_KMEANS_INITS` starts each. Numbers in docs/decisions.md (the stability choice).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from turtle_core.constants import (
    PARTITIONS,
    STABILITY_KMEANS_INITS,
    STABILITY_KMEANS_RUNS,
    STABILITY_KMEANS_SAMPLE_ROWS,
)
from turtle_core.discovery.features import joint_unit_rows, squared_distances
from turtle_core.discovery.runtime import default_cpu_threads
from turtle_core.progress import Progress, ProgressCallback, check_cancel

Method = Literal["turtle", "kmeans"]


@dataclass
class PartitionChoice:
    """The partition kept (`labels`, soft `probabilities`), which method made it, and both agreements
    (mean pairwise adjusted Rand index of each method's runs; NaN where a method had a single run)."""

    method: Method
    labels: np.ndarray = field(repr=False)
    probabilities: np.ndarray = field(repr=False)
    turtle_agreement: float
    kmeans_agreement: float
    # The kept k-means partition's centroids, to assign rows it was not fitted on.
    centroids: CentroidModel | None = field(default=None, repr=False)
    # The k-means run at seed `random_state` when it was fitted on every row: what `metrics.kmeans_baseline`
    # gives at that seed (10 starts, L2-normalised spaces), so a discovery need not run it again.
    kmeans_reference: np.ndarray | None = field(default=None, repr=False)
    # That run's centres (in the joint space of L2-normalised rows), whichever rows it was fitted on: the
    # reference for rows it did not see (a discovery fitted on a sample assigns every image to them).
    reference_centres: np.ndarray | None = field(default=None, repr=False)


def mean_pairwise_ari(labelings: Sequence[np.ndarray]) -> float:
    """Mean adjusted Rand index over every pair of labelings (NaN for fewer than two)."""
    from turtle_core.discovery.metrics import ari

    pairs = list(itertools.combinations(labelings, 2))
    return float(np.mean([ari(a, b) for a, b in pairs])) if pairs else float("nan")


@dataclass
class KMeansRun:
    labels: np.ndarray
    inertia: float
    distances: np.ndarray  # N × C squared distances to the centres
    centres: np.ndarray


@dataclass
class CentroidModel:
    """A k-means partition as a model: any rows' probabilities from their distances to the centres."""

    centres: np.ndarray
    scale: float

    @property
    def n_clusters(self) -> int:
        return int(self.centres.shape[0])

    def predict_proba(self, spaces: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
        return soft_assignment(squared_distances(joint_unit_rows(spaces), self.centres), self.scale)


def kmeans_runs(
    data: np.ndarray,
    n_clusters: int,
    seeds: Sequence[int],
    cancel: threading.Event | None = None,
    sample_rows: int = STABILITY_KMEANS_SAMPLE_ROWS,
    progress: ProgressCallback | None = None,
) -> list[KMeansRun]:
    """k-means (best of `STABILITY_KMEANS_INITS` k-means++ starts) once per seed, on TURTLE's CPU thread
    budget; fitted on one fixed sample of `sample_rows` rows when there are more (inertias then compare on
    that sample), every row assigned: its 30 fits would otherwise outgrow TURTLE's own time."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    fit_rows = data
    if data.shape[0] > sample_rows:
        fit_rows = data[np.sort(np.random.default_rng(0).choice(data.shape[0], sample_rows, replace=False))]
    runs: list[KMeansRun] = []
    message = "Comparing with k-means: which partition do independent runs agree on more?"
    for seed in seeds:
        if progress is not None:
            progress(Progress("stability", len(runs), len(seeds), message=message, unit="runs"))
        check_cancel(cancel)
        model = KMeans(n_clusters=n_clusters, n_init=STABILITY_KMEANS_INITS, random_state=int(seed))
        # TURTLE's thread budget: on a shared 2-core machine (load 10) two OpenMP threads took 6x as long
        # as one for the same partition (digits, 10 starts: 51 s against 8.6 s).
        with threadpool_limits(limits=default_cpu_threads()):
            model.fit(fit_rows)
            distances = model.transform(data) ** 2
        runs.append(
            KMeansRun(
                distances.argmin(1).astype(np.int64),
                float(model.inertia_),
                distances,
                model.cluster_centers_.astype(np.float32),
            )
        )
    if progress is not None:
        progress(Progress("stability", len(runs), len(seeds), message=message, unit="runs"))
    return runs


def assignment_scale(squared_distances: np.ndarray) -> float:
    """The median gap between the nearest and the second-nearest centre (`soft_assignment`'s scale)."""
    d = np.sort(np.asarray(squared_distances, dtype=np.float64), axis=1)
    return max(float(np.median(d[:, 1] - d[:, 0])), 1e-12) if d.shape[1] >= 2 else 1.0


def soft_assignment(squared_distances: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Probabilities from squared centre distances: a softmax whose scale is the median gap between the
    nearest and the second-nearest centre (so a typical row is about 73 % sure of its cluster)."""
    d = np.asarray(squared_distances, dtype=np.float64)
    if d.shape[1] < 2:
        return np.ones_like(d, dtype=np.float32)
    ordered = np.sort(d, axis=1)
    scale = assignment_scale(d) if scale is None else float(scale)
    logits = -(d - ordered[:, :1]) / scale
    weights = np.exp(logits)
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


def choose_partition(
    spaces: Sequence[np.ndarray | torch.Tensor],
    turtle_runs: Sequence[np.ndarray],
    turtle_labels: np.ndarray,
    turtle_probabilities: np.ndarray,
    *,
    random_state: int = 0,
    cancel: threading.Event | None = None,
    keep: str = "auto",
    progress: ProgressCallback | None = None,
) -> PartitionChoice:
    """TURTLE's chosen run, unless k-means' runs agree with each other more than TURTLE's runs
    (`turtle_runs`, at least two) do: then the lowest-inertia k-means run, at TURTLE's number of clusters.
    `keep="turtle"` or `"kmeans"` forces that method (the curator's override; TURTLE's needs no k-means run)."""
    if keep not in PARTITIONS:
        raise ValueError(f"keep must be one of {', '.join(PARTITIONS)}; got {keep!r}")
    turtle_agreement = mean_pairwise_ari(turtle_runs)
    n_clusters = int(turtle_probabilities.shape[1])
    keep_turtle = PartitionChoice(
        "turtle", np.asarray(turtle_labels), np.asarray(turtle_probabilities), turtle_agreement, float("nan")
    )
    if keep == "turtle" or n_clusters < 2 or (keep == "auto" and len(turtle_runs) < 2):
        return keep_turtle
    seeds = [int(random_state) + i for i in range(STABILITY_KMEANS_RUNS)]
    runs = kmeans_runs(joint_unit_rows(spaces), n_clusters, seeds, cancel, progress=progress)
    kmeans_agreement = mean_pairwise_ari([run.labels for run in runs])
    reference = runs[0].labels if len(turtle_labels) <= STABILITY_KMEANS_SAMPLE_ROWS else None
    keep_turtle.kmeans_agreement = kmeans_agreement
    keep_turtle.kmeans_reference = reference
    keep_turtle.reference_centres = runs[0].centres
    if keep == "auto" and not kmeans_agreement > turtle_agreement:
        return keep_turtle
    best = min(runs, key=lambda run: run.inertia)
    scale = assignment_scale(best.distances)
    return PartitionChoice(
        "kmeans",
        best.labels,
        soft_assignment(best.distances, scale),
        turtle_agreement,
        kmeans_agreement,
        CentroidModel(best.centres, scale),
        reference,
        runs[0].centres,
    )
