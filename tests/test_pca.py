"""The shared PCA: exact axes match an SVD, the randomized solver finds the same top axes, both never vary."""

from __future__ import annotations

import numpy as np
import pytest

from turtle_core.pca import fit_pca, principal_axes


def _low_rank(n: int, d: int, rank: int = 4, seed: int = 0) -> np.ndarray:
    """Rows with `rank` strong directions (variances 100, 50, 25, ...) plus a little noise, centred."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, rank)))[0]
    scores = rng.normal(size=(n, rank)) * np.sqrt(100.0 / 2.0 ** np.arange(rank))
    X = scores @ basis.T + 0.01 * rng.normal(size=(n, d))
    return (X - X.mean(0)).astype(np.float32)


def _same_axes(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest |cosine| between matching columns (axes are defined up to sign)."""
    a = a / np.linalg.norm(a, axis=0)
    b = b / np.linalg.norm(b, axis=0)
    return float(np.abs((a * b).sum(0)).min())


@pytest.mark.parametrize(("n", "d"), [(400, 30), (30, 400)])  # covariance and Gram paths
def test_exact_axes_are_the_svds(n: int, d: int) -> None:
    X = _low_rank(n, d)
    axes, variances = principal_axes(X, 3)
    _, s, vt = np.linalg.svd(X.astype(np.float64), full_matrices=False)
    assert axes.shape == (d, 3)
    assert _same_axes(axes, vt[:3].T) > 0.9999
    np.testing.assert_allclose(variances, s[:3] ** 2 / (n - 1), rtol=1e-4)


def test_exact_solver_drops_axes_without_variance() -> None:
    X = np.zeros((200, 10), np.float32)
    X[:, :3] = _low_rank(200, 3, rank=3)  # seven dimensions never vary
    axes, variances = principal_axes(X, None)
    assert axes.shape == (10, 3) and variances.min() > 0.1
    assert np.abs(axes[3:]).max() < 1e-6


def test_randomized_axes_find_the_exact_top_axes_and_never_vary() -> None:
    X = _low_rank(2000, 300, rank=6, seed=1)
    exact, exact_var = principal_axes(X, 4)
    fast, fast_var = principal_axes(X, 4, randomized=True, oversample=10)
    assert _same_axes(exact, fast) > 0.999
    np.testing.assert_allclose(fast_var, exact_var, rtol=1e-3)
    again, _ = principal_axes(X, 4, randomized=True, oversample=10)
    np.testing.assert_array_equal(fast, again)
    assert principal_axes(X[:3], 10, randomized=True)[0].shape == (300, 3)  # at most min(N, d) axes


def test_fit_pca_centres_and_projects() -> None:
    X = _low_rank(500, 20) + 7.0
    mean, axes = fit_pca(X, 2)
    np.testing.assert_allclose(mean, 7.0, atol=0.05)
    projected = (X - mean) @ axes
    assert axes.dtype == np.float32 and projected.shape == (500, 2)
    assert projected[:, 0].var() > projected[:, 1].var() > 0
