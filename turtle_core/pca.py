"""Principal axes of a set of rows: the one PCA behind TURTLE's whitening, the confidence's joint space
and the maps' layouts.

Two solvers share it. `exact` builds the smaller of the covariance and the Gram matrix in float32 (the
expensive part, on any torch device) and decomposes it in float64 for stable small eigenvalues; axes with
no variance are dropped. `randomized` is torch's seeded low-rank PCA (`torch.pca_lowrank`): much cheaper
for a few axes of many wide rows, and the same on every run.
"""

from __future__ import annotations

import numpy as np
import torch

_EPS = 1e-12


def principal_axes(
    X: np.ndarray | torch.Tensor,
    n_components: int | None,
    *,
    randomized: bool = False,
    n_iter: int = 3,
    oversample: int = 0,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The top principal axes of the rows of `X` (N × d, already centred) as columns (d × k) and their
    variances (k): float64 from the exact solver, float32 from the randomized one. `n_components=None`
    keeps every axis with variance (exact solver only).

    Exact: at most `n_components` axes, fewer when the rest have no variance. Randomized:
    `min(n_components, N, d)` axes from a `n_components + oversample` wide sketch refined by `n_iter`
    power iterations (seeded: the result never varies between runs)."""
    T = X if isinstance(X, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    if randomized:
        if n_components is None:
            raise ValueError("the randomized solver needs a number of components")
        return _randomized_axes(T, int(n_components), n_iter, oversample)
    return _exact_axes(T.to(torch.device(device) if device is not None else T.device), n_components)


def _exact_axes(Xt: torch.Tensor, n_components: int | None) -> tuple[np.ndarray, np.ndarray]:
    n, d = Xt.shape
    if n >= d:
        cov = (Xt.T @ Xt).double() / max(n - 1, 1)
        evals, evecs = torch.linalg.eigh(cov)
    else:
        gram = (Xt @ Xt.T).double() / max(n - 1, 1)
        evals, u = torch.linalg.eigh(gram)
        evecs = Xt.double().T @ u / torch.sqrt(torch.clamp(evals * max(n - 1, 1), min=_EPS))
    evals, evecs = evals.cpu(), evecs.cpu()
    evals, evecs = evals.flip(0), evecs.flip(1)
    keep = int((evals > max(float(evals[0]), _EPS) * 1e-9).sum())
    k = max(1, min(keep, n_components or keep))
    return evecs[:, :k].numpy(), evals[:k].numpy()


def _randomized_axes(
    T: torch.Tensor, n_components: int, n_iter: int, oversample: int
) -> tuple[np.ndarray, np.ndarray]:
    k = min(n_components, *T.shape)
    q = min(k + max(0, int(oversample)), *T.shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _, S, V = torch.pca_lowrank(T, q=q, center=False, niter=n_iter)
    variances = S[:k].square() / max(T.shape[0] - 1, 1)
    return V[:, :k].contiguous().numpy(), variances.numpy()


def fit_pca(
    rows: np.ndarray, n_components: int, *, randomized: bool = False, n_iter: int = 3, oversample: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d, float32) and top principal axes (d × k, k ≤ `n_components`) of `rows` (N × d): any rows
    `Y` project with `(Y - mean) @ axes`."""
    mean = rows.mean(axis=0, dtype=np.float64).astype(np.float32)
    axes, _ = principal_axes(
        rows - mean, n_components, randomized=randomized, n_iter=n_iter, oversample=oversample
    )
    return mean, np.ascontiguousarray(axes, dtype=np.float32)
