"""The paper's label-free generalisation score: how well linear probes trained on a labeling predict it on
held-out rows (k-fold, every space), with a chance correction so that it does not favour few clusters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from turtle_core.constants import PROBE_MAX_ROWS
from turtle_core.discovery.runtime import check_spaces, cpu_threads, resolve_device


@dataclass(frozen=True)
class GeneralizationScore:
    """Cross-validated linear-probe agreement with a labeling.

    `accuracy` is the paper's score (mean held-out accuracy over folds and spaces); `chance` is the
    agreement expected by chance from the cluster sizes alone (Σ_c π_c²); `kappa` is Cohen's
    chance-corrected agreement (accuracy − chance) / (1 − chance).
    """

    accuracy: float
    chance: float
    kappa: float
    per_space: tuple[float, ...]


def _stratified_folds(labels: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold id per row; every cluster is spread evenly over the folds (small clusters over a few)."""
    folds = np.empty(labels.shape[0], dtype=np.int64)
    offset = 0
    for cluster in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cluster))
        folds[members] = (np.arange(members.size) + offset) % n_folds
        offset += members.size
    return folds


def _probe_heldout_accuracy(
    X: torch.Tensor,
    y: torch.Tensor,
    folds: torch.Tensor,
    n_folds: int,
    n_classes: int,
    l2: float,
    max_iter: int,
) -> np.ndarray:
    """Held-out accuracy per fold of L2-regularised multinomial logistic regression, all folds at once."""
    n, d = X.shape
    # Classes × rows layout: the softmax runs over a short leading axis with rows contiguous (fast on CPU).
    Xt = torch.cat([X, torch.ones(n, 1, dtype=X.dtype, device=X.device)], dim=1).T.contiguous()
    train = (folds[None, :] != torch.arange(n_folds, device=X.device)[:, None]).to(X.dtype)  # F × N
    weight = train / train.sum(1, keepdim=True).clamp_min(1.0)
    W = torch.zeros(n_folds * n_classes, d + 1, dtype=X.dtype, device=X.device, requires_grad=True)
    target = y[None, None, :].expand(n_folds, 1, n)
    optimizer = torch.optim.LBFGS(
        [W], lr=1.0, max_iter=max_iter, history_size=10, tolerance_grad=1e-5, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        log_p = torch.log_softmax((W @ Xt).view(n_folds, n_classes, n), dim=1)
        nll = -log_p.gather(1, target).squeeze(1)
        loss = (nll * weight).sum() + 0.5 * l2 * W[:, :d].square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        pred = (W @ Xt).view(n_folds, n_classes, n).argmax(1)  # F × N
        correct = (pred == y[None, :]).to(X.dtype)
        held_out = 1.0 - train
        acc = (correct * held_out).sum(1) / held_out.sum(1).clamp_min(1.0)
    return acc.cpu().numpy()


def generalization_details(
    spaces: Sequence[np.ndarray | torch.Tensor],
    labels: np.ndarray | Sequence[int],
    *,
    n_folds: int = 10,
    random_state: int | None = 0,
    device: str | torch.device | None = None,
    l2: float | None = None,
    max_iter: int = 60,
) -> GeneralizationScore:
    """The paper's label-free score with its chance correction (see `GeneralizationScore`).

    Every space is standardised (centred, one global scale); `l2` defaults to 1/N_train, the
    per-row equivalent of scikit-learn's default C = 1.
    """
    arrays = check_spaces(spaces)
    y_raw = np.asarray(labels).ravel()
    n = arrays[0].shape[0]
    if y_raw.shape[0] != n:
        raise ValueError(f"labels has {y_raw.shape[0]} entries for {n} rows")
    _, y_np = np.unique(y_raw, return_inverse=True)
    n_classes = int(y_np.max()) + 1
    proportions = np.bincount(y_np) / n
    chance = float((proportions**2).sum())
    if n_classes == 1:
        return GeneralizationScore(1.0, 1.0, 0.0, tuple(1.0 for _ in arrays))
    rng = np.random.default_rng(random_state)
    rows = np.arange(n)
    if n > PROBE_MAX_ROWS:
        rows = np.sort(rng.choice(n, PROBE_MAX_ROWS, replace=False))
        y_np = y_np[rows]
    n_folds = max(2, min(int(n_folds), rows.size))
    folds = _stratified_folds(y_np, n_folds, rng)
    dev = resolve_device(device)
    y = torch.from_numpy(y_np).to(dev)
    fold_t = torch.from_numpy(folds).to(dev)
    l2_value = float(l2) if l2 is not None else 1.0 / (rows.size * (n_folds - 1) / n_folds)
    per_space = []
    with cpu_threads(None, dev):
        for X in arrays:
            Xs = torch.from_numpy(np.ascontiguousarray(X[rows], dtype=np.float32)).to(dev)
            Xs = Xs - Xs.mean(0, keepdim=True)
            Xs = Xs / Xs.square().sum(1).mean().sqrt().clamp_min(1e-12) * np.sqrt(Xs.shape[1])
            acc = _probe_heldout_accuracy(Xs, y, fold_t, n_folds, n_classes, l2_value, max_iter)
            per_space.append(float(acc.mean()))
    accuracy = float(np.mean(per_space))
    kappa = (accuracy - chance) / (1.0 - chance)
    return GeneralizationScore(accuracy, chance, float(kappa), tuple(per_space))


def generalization_score(
    spaces: Sequence[np.ndarray | torch.Tensor],
    labels: np.ndarray | Sequence[int],
    *,
    n_folds: int = 10,
    random_state: int | None = 0,
    device: str | torch.device | None = None,
) -> float:
    """The paper's score: mean k-fold held-out accuracy of linear probes trained on `labels`, over spaces."""
    return generalization_details(
        spaces, labels, n_folds=n_folds, random_state=random_state, device=device
    ).accuracy
