"""Feature preprocessing shared by TURTLE and k-means: L2 normalisation, centering, PCA whitening."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch

from turtle_core.discovery.runtime import check_spaces, map_rows
from turtle_core.pca import principal_axes

PreprocessingMethod = Literal["none", "l2", "center_l2", "standardize", "pca", "whiten", "whiten_l2"]
PREPROCESSING_METHODS: tuple[str, ...] = get_args(PreprocessingMethod)

DEFAULT_PREPROCESSING: PreprocessingMethod = "whiten"
# Measured on Animal-MNIST (EfficientNet-Lite features, C=10): whitening to 64 axes beat 32, 128 and
# 256 for TURTLE (see docs/decisions.md); at least 2 axes per cluster are kept (effective_components).
DEFAULT_N_COMPONENTS: int = 64

_EPS = 1e-12


def _as_float_matrix(X: np.ndarray | torch.Tensor, name: str = "features") -> np.ndarray:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows = images), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _l2_rows(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), _EPS)


@dataclass
class SpacePreprocessor:
    """A fitted feature transform for one space (`fit` on the training rows, `transform` any rows).

    Methods: ``none``; ``l2`` (unit-norm rows); ``center_l2`` (subtract the mean, then unit-norm rows);
    ``standardize`` (per-dimension z-score); ``pca`` (centre and project on the top `n_components`
    principal axes); ``whiten`` (``pca`` with every axis scaled to unit variance); ``whiten_l2``
    (``whiten`` followed by unit-norm rows).
    """

    method: PreprocessingMethod = DEFAULT_PREPROCESSING
    n_components: int | None = DEFAULT_N_COMPONENTS
    mean_: np.ndarray | None = field(default=None, repr=False)
    projection_: np.ndarray | None = field(default=None, repr=False)
    explained_variance_: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.method not in PREPROCESSING_METHODS:
            raise ValueError(f"unknown preprocessing {self.method!r}; choose one of {PREPROCESSING_METHODS}")
        if self.n_components is not None and self.n_components < 1:
            raise ValueError("n_components must be at least 1 (or None for all)")

    def fit(
        self, X: np.ndarray | torch.Tensor, device: str | torch.device | None = None
    ) -> SpacePreprocessor:
        """Learn the transform's statistics from `X` (N × d); `device` runs the PCA's big matmul there."""
        X = _as_float_matrix(X)
        method = self.method
        self.mean_ = self.projection_ = self.explained_variance_ = None
        if method in ("center_l2", "standardize", "pca", "whiten", "whiten_l2"):
            self.mean_ = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        if method == "standardize":
            std = X.std(axis=0, dtype=np.float64).astype(np.float32)
            self.projection_ = np.diag(1.0 / np.maximum(std, 1e-6)).astype(np.float32)
        elif method in ("pca", "whiten", "whiten_l2"):
            target = torch.device(device) if device is not None else torch.device("cpu")
            if target.type == "cuda":  # centred in place on the device: no second copy of X, there or here
                centred = torch.from_numpy(X).to(target)
                centred -= torch.from_numpy(self.mean_).to(target)
                self._fit_pca(centred, target)
            else:
                self._fit_pca(X - self.mean_, target)
        return self

    def _fit_pca(self, Xc: np.ndarray | torch.Tensor, device: torch.device) -> None:
        axes, variances = principal_axes(Xc, self.n_components, device=device)  # float64
        if self.method in ("whiten", "whiten_l2"):
            axes = axes / np.sqrt(variances)
        self.projection_ = axes.astype(np.float32)
        self.explained_variance_ = variances.astype(np.float32)

    def transform(self, X: np.ndarray | torch.Tensor, device: str | torch.device | None = None) -> np.ndarray:
        """Apply the fitted transform; returns float32 rows. On a CUDA `device` the projection runs
        there, a chunk of rows at a time."""
        X = _as_float_matrix(X)
        method = self.method
        if method == "none":
            return X
        if method == "l2":
            return _l2_rows(X)
        if self.mean_ is None:
            raise RuntimeError("SpacePreprocessor is not fitted; call fit() first")
        if X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"expected {self.mean_.shape[0]} feature dimensions, got {X.shape[1]}")
        if (
            device is not None
            and torch.device(device).type == "cuda"
            and method in ("pca", "whiten", "whiten_l2")
        ):
            return self._transform_on(X, torch.device(device))
        Xc = X - self.mean_
        if method == "center_l2":
            return _l2_rows(Xc)
        assert self.projection_ is not None
        Z = Xc @ self.projection_
        if method == "whiten_l2":
            Z = _l2_rows(Z)
        return np.ascontiguousarray(Z, dtype=np.float32)

    def _transform_on(self, X: np.ndarray, device: torch.device) -> np.ndarray:
        assert self.mean_ is not None and self.projection_ is not None
        mean = torch.from_numpy(self.mean_).to(device)
        projection = torch.from_numpy(self.projection_).to(device)

        def project(blocks: list[torch.Tensor]) -> torch.Tensor:
            Z = (blocks[0] - mean) @ projection
            if self.method == "whiten_l2":
                Z = Z / Z.norm(dim=1, keepdim=True).clamp_min(_EPS)
            return Z

        return map_rows([X], project, device)

    def fit_transform(self, X: np.ndarray | torch.Tensor) -> np.ndarray:
        return self.fit(X).transform(X)


def effective_components(n_components: int | None, n_rows: int, n_clusters: int | None = None) -> int:
    """The number of PCA/whitening axes to keep for `n_rows` rows: `n_components`, raised to 2 per cluster
    when `n_clusters` asks for more, and capped at `n_rows // 10`.

    Whitening scales every kept axis to unit variance; on a small set the axes beyond about n/10 are
    mostly sampling noise, and amplifying them erases the cluster structure (seen on 24 images of 3
    colours: k-means 1.0 accuracy, TURTLE on 23 whitened axes 0.46).
    """
    wanted = n_components or n_rows
    if n_clusters is not None and n_components is not None:
        wanted = max(wanted, 2 * int(n_clusters))
    return max(2, min(wanted, n_rows // 10))


def prepare_space(
    X: np.ndarray | torch.Tensor,
    method: PreprocessingMethod = DEFAULT_PREPROCESSING,
    *,
    n_components: int | None = DEFAULT_N_COMPONENTS,
) -> np.ndarray:
    """Preprocess one feature space (N × d) with `method`, fitted on `X` itself; float32 result."""
    return SpacePreprocessor(method, n_components).fit_transform(X)


def prepare_spaces(
    spaces: Sequence[np.ndarray | torch.Tensor],
    method: PreprocessingMethod = DEFAULT_PREPROCESSING,
    *,
    n_components: int | None = DEFAULT_N_COMPONENTS,
) -> list[np.ndarray]:
    """`prepare_space` applied to every space."""
    return [prepare_space(X, method, n_components=n_components) for X in spaces]


def joint_unit_rows(spaces: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
    """Every space's rows L2-normalised, concatenated, each space weighing alike (divided by the square
    root of the number of spaces): k-means' input and the confidence's joint space before its PCA."""
    blocks = []
    for X in check_spaces(spaces):
        block = np.asarray(X, dtype=np.float32)
        blocks.append(block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12))
    return np.hstack(blocks) / np.float32(np.sqrt(len(blocks)))


def squared_distances(Z: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (N × C, clipped at 0) from every row of `Z` to every centre."""
    squared = (
        np.einsum("ij,ij->i", Z, Z)[:, None] - 2.0 * (Z @ centres.T) + np.einsum("ij,ij->i", centres, centres)
    )
    return np.maximum(squared, 0.0)
