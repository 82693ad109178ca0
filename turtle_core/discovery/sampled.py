"""Discovery for folders of hundreds of thousands to millions of images: fit on a fixed-size random
sample, then assign and score every image in streamed chunks.

TURTLE's heads are linear, so the model chosen on a sample labels every other image the same way it
labels the sample (`predict_proba` in chunks). What grew with the number of images (the k-means starts,
the preprocessing's covariance, the k-means reference, the confidence's PCA) is fitted on
the sample; what every image needs (its cluster, its confidence and atypicality) is computed chunk by
chunk against what the sample learned, so memory holds the features once plus chunk-sized buffers.

Up to `SAMPLE_ROWS` images nothing here applies: `discovery_sample` returns None and the callers run
the exact, all-rows code (identical results on small folders).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from turtle_core.constants import DISCOVERY_SAMPLE_ROWS
from turtle_core.discovery.features import joint_unit_rows
from turtle_core.discovery.runtime import check_spaces, cpu_threads

SAMPLE_ROWS = DISCOVERY_SAMPLE_ROWS  # above it, discovery is fitted on a sample of this size
CHUNK_ROWS = 65_536  # rows per streamed block (65,536 × 1,280 float32 = 335 MB)
# Neighbours are searched among this many sampled rows (the exact path uses 20,000 above 20,000 rows;
# the share of same-cluster neighbours is a local average that a smaller reference still estimates).
NEIGHBOUR_REFERENCE_ROWS = 10_000
# k-means++ starts of the k-means reference on the sample (the exact path keeps 10): 10 starts on
# 50,000 × 1,280 took 149 s at load 6.7, as long as the whole TURTLE selection; the reference only
# compares, it labels nothing.
REFERENCE_KMEANS_INITS = 3


def discovery_sample(n_rows: int, sample_rows: int | None = None, seed: int = 0) -> np.ndarray | None:
    """Sorted row ids of the fixed random sample a discovery of `n_rows` images is fitted on, or None
    when there are at most `sample_rows` (default `SAMPLE_ROWS`) images (then every row is used,
    exactly as before)."""
    sample_rows = SAMPLE_ROWS if sample_rows is None else int(sample_rows)
    if n_rows <= sample_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=sample_rows, replace=False))


def chunks(n_rows: int, size: int | None = None) -> list[slice]:
    """Consecutive row blocks of `size` (default `CHUNK_ROWS`) covering `n_rows` rows."""
    size = CHUNK_ROWS if size is None else int(size)
    return [slice(lo, min(n_rows, lo + size)) for lo in range(0, n_rows, size)]


def predict_proba_chunked(model, spaces: Sequence[np.ndarray], chunk: int | None = None) -> np.ndarray:
    """`model.predict_proba(spaces)` (a fitted `Turtle`), computed chunk by chunk: N × C float32."""
    arrays = check_spaces(spaces)
    n = arrays[0].shape[0]
    out = np.empty((n, int(model.n_clusters)), dtype=np.float32)
    for rows in chunks(n, chunk):
        out[rows] = model.predict_proba([X[rows] for X in arrays])
    return out


def predict_rows_chunked(
    model, spaces: Sequence[np.ndarray], rows: np.ndarray, chunk: int | None = None
) -> np.ndarray:
    """`model.predict` (a fitted `Turtle`) of the given `rows` of `spaces`, gathered and labelled chunk
    by chunk, so the rows' features are never copied all at once."""
    rows = np.asarray(rows)
    labels = np.empty(rows.size, dtype=np.int64)
    for block in chunks(rows.size, chunk):
        labels[block] = model.predict([X[rows[block]] for X in spaces])
    return labels


def kmeans_baseline_sampled(
    spaces: Sequence[np.ndarray],
    n_clusters: int,
    sample: np.ndarray,
    *,
    random_state: int | None = 0,
    n_init: int = REFERENCE_KMEANS_INITS,
    chunk: int | None = None,
) -> np.ndarray:
    """`metrics.kmeans_baseline` (rows L2-normalised per space, concatenated) fitted on the `sample`
    rows with `n_init` k-means++ starts; every row is then assigned to its nearest centre, chunk by chunk."""
    from sklearn.cluster import KMeans

    arrays = check_spaces(spaces)
    model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state)
    model.fit(joint_unit_rows([X[sample] for X in arrays]))
    labels = np.empty(arrays[0].shape[0], dtype=np.int64)
    for rows in chunks(labels.size, chunk):
        labels[rows] = model.predict(joint_unit_rows([X[rows] for X in arrays]))
    return labels


# ------------------------------------------------------------------ confidence and atypicality
def confidence_and_atypicality_sampled(
    spaces: Sequence[np.ndarray | torch.Tensor],
    labels: np.ndarray | Sequence[int],
    sample: np.ndarray,
    *,
    num_threads: int | None = None,
    reference_rows: int = NEIGHBOUR_REFERENCE_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """`confidence.confidence_and_atypicality` for many rows: the joint space's PCA is fitted on the
    `sample` rows, neighbours are searched among `reference_rows` of them; every row is scored (margin,
    atypicality) as in the exact version."""
    from turtle_core.discovery import confidence as conf

    labels = np.asarray(labels).ravel()
    active = np.flatnonzero(labels >= 0)
    if active.size < 3:
        return conf.unscored(labels.size)
    arrays = check_spaces(spaces)
    if active.size < labels.size:  # excluded rows take no part: work on the active rows' sample
        arrays = [X[active] for X in arrays]
        position = np.full(labels.size, -1)
        position[active] = np.arange(active.size)
        sample = position[sample]
        sample = sample[sample >= 0]
    lab = labels[active]
    with cpu_threads(num_threads, torch.device("cpu")):
        Z = conf.joint_space(arrays, conf.PCA_DIMS, fit_rows=sample, chunk=CHUNK_ROWS)
        margin, own = conf.centroid_margin(Z, lab)
        reference = sample
        if reference.size > reference_rows:
            reference = np.sort(np.random.default_rng(1).choice(sample, reference_rows, replace=False))
        closeness = conf.neighbour_closeness_against(Z, reference)
    return conf.combine_scores(labels.size, active, lab, margin, own, closeness)
