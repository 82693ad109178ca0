"""2-D layouts of the embeddings for the map: PCA (instant) and UMAP (slow; run it in a background job).

`umap` is imported only inside `umap_layout`: importing it takes ~20 s on small machines.
UMAP's default here is `random_state=42`: the layout is computed once and cached, so a map that looks the
same after a cache clear, and deterministic tests, are worth more than the at most 2x speed-up that
parallel (unseeded) UMAP gives on a 2-core machine. Pass `random_state=None` on big machines.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from turtle_core.atomic import atomic_save_npy
from turtle_core.maps.epochs import EpochWatch
from turtle_core.pca import fit_pca
from turtle_core.progress import Progress, check_cancel

LayoutMethod = Literal["pca", "umap"]
LAYOUT_VERSION = 2  # bump when the layout algorithms change, so old cached layouts are not reused
UMAP_DEFAULTS: dict[str, Any] = {
    "n_neighbors": 15,
    "min_dist": 0.1,
    "metric": "cosine",
    "random_state": 42,
    "pca_dims": 50,
}
MIN_UMAP_POINTS = 16  # below this UMAP's graph and spectral start are meaningless: use PCA


def concat_spaces(spaces: Sequence[np.ndarray]) -> np.ndarray:
    """L2-normalise each embedding space row-wise, then concatenate them (float32, N × sum(D))."""
    if not spaces:
        raise ValueError("no embedding spaces given")
    blocks = [_as_matrix(space) for space in spaces]
    rows = {block.shape[0] for block in blocks}
    if len(rows) != 1:
        raise ValueError(f"embedding spaces have different numbers of images: {sorted(rows)}")
    normed = []
    for block in blocks:
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        normed.append(block / np.maximum(norms, 1e-12))
    return np.concatenate(normed, axis=1).astype(np.float32, copy=False)


def pca_layout(X: np.ndarray) -> np.ndarray:
    """The first two principal components (N × 2 float32); deterministic and fast."""
    return _pca(_as_matrix(X), 2)


def pca_layout_spaces(
    spaces: Sequence[np.ndarray], *, fit_rows: int | None = None, chunk: int | None = None
) -> np.ndarray:
    """`pca_layout(concat_spaces(spaces))` for any number of rows. Up to `fit_rows` (default
    `PCA_FIT_ROWS`) rows it is exactly that; above, the PCA is fitted on a fixed random sample of
    `fit_rows` rows and every row is projected in chunks of `chunk` rows, so the normalised,
    concatenated copy of all rows (5 GB at a million × 1,280) is never built."""
    fit_rows = PCA_FIT_ROWS if fit_rows is None else int(fit_rows)
    blocks = [np.asarray(X) for X in spaces]
    n = blocks[0].shape[0] if blocks else 0
    if n <= fit_rows:
        return pca_layout(concat_spaces(blocks))
    return _pca_fit_project(blocks, density_sample(n, fit_rows), chunk or TRANSFORM_CHUNK)


def _pca_fit_project(blocks: Sequence[np.ndarray], fit: np.ndarray, chunk: int) -> np.ndarray:
    """Two principal axes fitted on the rows `fit` of `concat_spaces(blocks)`; all rows projected on
    them, `chunk` rows at a time."""
    sample = _as_matrix(concat_spaces([X[fit] for X in blocks]))
    n = blocks[0].shape[0]
    out = np.zeros((n, 2), dtype=np.float32)
    fitted = _fit_axes(sample, 2)
    del sample
    if fitted is None:
        return out
    mean, axes = fitted
    for lo in range(0, n, chunk):
        block = _as_matrix(concat_spaces([X[lo : lo + chunk] for X in blocks]))
        out[lo : lo + chunk, : axes.shape[1]] = (block - mean) @ axes
    return out


def umap_layout(
    X: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    random_state: int | None = 42,
    pca_dims: int = 50,
    n_epochs: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """UMAP to 2-D (N × 2 float32) after reducing to `pca_dims` with PCA (0 = no PCA).
    Fewer than 16 points get the PCA layout. Setting `cancel` stops it (`Cancelled`) within an epoch."""
    data = _as_matrix(X)
    n = data.shape[0]
    if n < MIN_UMAP_POINTS:
        return _pca(data, 2)
    if n > UMAP_FIT_ROWS:  # a million rows: fit on a sample, transform the rest
        return sampled_umap_layout(
            data, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
            random_state=random_state, pca_dims=pca_dims, progress=progress, cancel=cancel,
        )  # fmt: skip
    if pca_dims and data.shape[1] > pca_dims:
        data = _pca(data, min(pca_dims, n - 1), iterated_power=4)
    if progress is not None:
        progress(Progress("layout", 0, n, message="UMAP: loading the library"))
    import umap  # slow import (~20 s): only when a UMAP layout is really needed

    check_cancel(cancel)
    if progress is not None:
        progress(Progress("layout", 0, n, message="UMAP: computing the layout"))
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(n_neighbors, n - 1)),
        min_dist=min_dist,
        metric=metric,
        random_state=random_state,
        n_jobs=1 if random_state is not None else -1,
        n_epochs=n_epochs,
        tqdm_kwds=EpochWatch(n, progress, cancel).tqdm_kwds(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs/random_state notices, disconnected-graph hints
        layout = reducer.fit_transform(data)
    layout = np.asarray(layout, dtype=np.float32)
    if not np.isfinite(layout).all():
        layout = np.nan_to_num(layout, nan=0.0, posinf=0.0, neginf=0.0)
    if progress is not None:
        progress(Progress("layout", n, n, message="UMAP: done"))
    return layout


class LayoutCache:
    """Layouts saved as `.npy` files (atomically), keyed by (caller's key, method, parameters)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path_for(self, key: str, method: LayoutMethod, **params: Any) -> Path:
        settings = _settings(method, params)
        blob = json.dumps(
            {"key": key, "method": method, "params": settings, "v": LAYOUT_VERSION}, sort_keys=True
        )
        digest = hashlib.sha1(blob.encode()).hexdigest()[:20]
        return self.directory / f"layout-{method}-{digest}.npy"

    def cached(
        self, key: str, method: LayoutMethod, n_rows: int | None = None, **params: Any
    ) -> np.ndarray | None:
        """The saved layout, or None when missing, unreadable or (with `n_rows`) of the wrong length."""
        path = self.path_for(key, method, **params)
        try:
            layout = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if layout.ndim != 2 or layout.shape[1] != 2 or not np.issubdtype(layout.dtype, np.floating):
            return None
        if n_rows is not None and layout.shape[0] != n_rows:
            return None
        return layout

    def get_or_compute(
        self,
        key: str,
        X: np.ndarray,
        method: LayoutMethod,
        *,
        progress: Callable[[Progress], None] | None = None,
        **params: Any,
    ) -> np.ndarray:
        """The cached layout for `key`, else computed from `X`, saved and returned.
        `params` are UMAP keyword arguments (see `umap_layout`)."""
        settings = _settings(method, params)
        n_rows = len(X)
        hit = self.cached(key, method, n_rows=n_rows, **params)
        if hit is not None:
            return hit
        layout = pca_layout(X) if method == "pca" else umap_layout(X, progress=progress, **settings)
        atomic_save_npy(self.path_for(key, method, **params), layout)
        return layout

    def get_or_compute_spaces(
        self,
        key: str,
        spaces: Sequence[np.ndarray],
        method: LayoutMethod,
        *,
        progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        **params: Any,
    ) -> np.ndarray:
        """`get_or_compute` from the embedding spaces themselves: the PCA layout is fitted on a sample
        and projected in chunks when there are many rows (`pca_layout_spaces`); UMAP gets
        `concat_spaces(spaces)`."""
        settings = _settings(method, params)
        n_rows = len(spaces[0]) if spaces else 0
        hit = self.cached(key, method, n_rows=n_rows, **params)
        if hit is not None:
            return hit
        if method == "pca":
            layout = pca_layout_spaces(spaces)
        else:
            layout = umap_layout(concat_spaces(spaces), progress=progress, cancel=cancel, **settings)
        atomic_save_npy(self.path_for(key, method, **params), layout)
        return layout


def _settings(method: str, params: dict[str, Any]) -> dict[str, Any]:
    if method == "pca":
        if params:
            raise ValueError(f"the PCA layout takes no parameters, got {sorted(params)}")
        return {}
    if method == "umap":
        unknown = set(params) - set(UMAP_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown UMAP parameters {sorted(unknown)}; known: {sorted(UMAP_DEFAULTS)}")
        return {**UMAP_DEFAULTS, **params}
    raise ValueError(f"unknown layout method {method!r}: use 'pca' or 'umap'")


def _as_matrix(X: np.ndarray) -> np.ndarray:
    data = np.asarray(X, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (images × features), got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("embeddings contain NaN or infinite values")
    return data


def _pca(data: np.ndarray, n_components: int, iterated_power: int = 3) -> np.ndarray:
    """Project onto the top principal components (zero-padded when there are fewer)."""
    out = np.zeros((data.shape[0], n_components), dtype=np.float32)
    fitted = _fit_axes(data, n_components, iterated_power)
    if fitted is not None:
        mean, axes = fitted
        out[:, : axes.shape[1]] = (data - mean) @ axes
    return out


def _fit_axes(
    data: np.ndarray, n_components: int, iterated_power: int = 3
) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and top principal axes (d × k, k ≤ `n_components`) of `data`; None when it has no axis (fewer
    than two rows). Exact for narrow or few rows; otherwise the randomized solver with few power
    iterations: ~3 s instead of ~9 s for 50k × 1024, plenty for a map."""
    n, d = data.shape
    k = min(n_components, d, max(n - 1, 0))
    if k == 0:
        return None
    randomized = min(n, d) > 4 * k + 10
    mean, axes = fit_pca(data, k, randomized=randomized, n_iter=iterated_power, oversample=10)
    # Each axis points where its largest loading is positive (scikit-learn's convention), so the map
    # keeps its orientation whichever solver ran.
    signs = np.sign(axes[np.abs(axes).argmax(0), np.arange(axes.shape[1])])
    return mean, axes * np.where(signs == 0, 1, signs).astype(np.float32)


# ------------------------------------------------------------------ big maps (hundreds of thousands of points)
PCA_FIT_ROWS = 50_000  # above this, the PCA map is fitted on a sample of this size and projects the rest
UMAP_FIT_ROWS = 50_000  # above this, UMAP is fitted on a sample of this size and `transform`s the rest
TRANSFORM_CHUNK = 50_000


def sampled_umap_layout(
    X: np.ndarray,
    *,
    fit_rows: int = UMAP_FIT_ROWS,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    random_state: int | None = 42,
    pca_dims: int = 50,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """UMAP for many rows: PCA and UMAP are fitted on `fit_rows` random rows, every other row is
    projected with them (`transform`, in chunks). Up to `fit_rows` rows this is `umap_layout`."""
    data = _as_matrix(X)
    n = data.shape[0]
    if n <= fit_rows:
        return umap_layout(
            data,
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            metric=metric,
            random_state=random_state,
            pca_dims=pca_dims,
            progress=progress,
            cancel=cancel,
        )
    rng = np.random.default_rng(0 if random_state is None else random_state)
    fit = np.sort(rng.choice(n, size=fit_rows, replace=False))
    mean, axes = _pca_axes(data[fit], pca_dims)
    if progress is not None:
        progress(Progress("layout", 0, n, message="UMAP: loading the library"))
    import umap

    check_cancel(cancel)
    if progress is not None:
        progress(Progress("layout", 0, n, message=f"UMAP: fitting on {fit_rows:,} sampled points"))
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        random_state=random_state,
        n_jobs=1 if random_state is not None else -1,
        tqdm_kwds=EpochWatch(fit_rows, progress, cancel).tqdm_kwds(),
    )
    out = np.zeros((n, 2), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out[fit] = reducer.fit_transform((data[fit] - mean) @ axes)
        rest = np.setdiff1d(np.arange(n), fit, assume_unique=True)
        for start in range(0, len(rest), TRANSFORM_CHUNK):
            check_cancel(cancel)
            rows = rest[start : start + TRANSFORM_CHUNK]
            out[rows] = reducer.transform((data[rows] - mean) @ axes)
            if progress is not None:
                done = fit_rows + start + len(rows)
                progress(Progress("layout", done, n, message="UMAP: placing the other points"))
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _pca_axes(sample: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top `dims` principal axes (D × dims, float32) of `sample`; identity when D <= dims."""
    d = sample.shape[1]
    if not dims or d <= dims:
        return sample.mean(axis=0, dtype=np.float64).astype(np.float32), np.eye(d, dtype=np.float32)
    fitted = _fit_axes(sample, dims, iterated_power=4)
    assert fitted is not None
    return fitted


def density_sample(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted row ids of a fixed random sample of `size` of `n` points (all when n <= size): the
    points drawn on top of a density map, the same on every rerun."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
