"""Fixes that propagate: re-assign every image the curator has not checked, learning from the ones they have.

The curator's checked images (confirmed or moved by hand) are the training set of a linear probe
in the backbones' feature spaces (each standardised, then concatenated); the probe labels every other
image. Checked images never change. A class that no checked image carries yet (a named cluster nobody has
checked) keeps its current members, so it cannot vanish just because nobody looked at it yet; it takes in
no other image, and its members come first in the review queue (confidence 0).

Variants measured on the curator-effort suite did worse: a weak prior on every unchecked image's current
label cost about twice the curator actions on digits and glyphs (the discovery's mistakes out-vote the
fixes), and so did the unchecked classes' members as down-weighted training rows (emoji 17.5 actions per
100 images against 6.6 for the plain probe, glyphs 38.7 against 25.2); self-training and the
discovery's cluster id as an extra feature were within noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from turtle_core.discovery.runtime import check_spaces, cpu_threads
from turtle_core.discovery.sampled import chunks

# Inverse L2 strength per training row, as scikit-learn's C (the anchor probe of curator-effort.md uses 0.1).
PROBE_C = 0.1
_LBFGS_STEPS = 100


@dataclass
class RefineResult:
    """New label per row (checked rows unchanged), its confidence (1.0 on checked rows), and the class
    probabilities over `classes` (the sorted distinct input labels)."""

    labels: np.ndarray
    confidence: np.ndarray
    probabilities: np.ndarray
    classes: np.ndarray

    def changed(self, labels: np.ndarray) -> np.ndarray:
        """Rows whose label differs from `labels`."""
        return np.asarray(labels) != self.labels


class FeatureProbe:
    """The backbones' feature spaces, each standardised (mean and spread over `rows`), concatenated; prepared
    once and reused across refine rounds. Nothing the size of the features is copied: the standardisation
    is folded into the probe's weights and every row is scored in chunks (a million 1,280-d images took
    20.5 GiB at peak when the standardised copy was materialised, `python -m benchmarks million --phases refine`).
    `rows` (default: all) picks the rows the probe works on; its positions are what `fit_predict` takes."""

    def __init__(self, spaces: Sequence[np.ndarray | torch.Tensor], rows: np.ndarray | None = None) -> None:
        self.arrays = [np.asarray(X) for X in check_spaces(spaces)]
        n = self.arrays[0].shape[0]
        self.rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
        self.means: list[np.ndarray] = []
        self.scales: list[np.ndarray] = []
        for X in self.arrays:
            total = np.zeros(X.shape[1])
            squares = np.zeros(X.shape[1])
            for block in chunks(self.rows.size):
                values = self._gather(X, block).astype(np.float64)
                if not np.isfinite(values).all():
                    raise ValueError("feature space contains NaN or infinite values")
                total += values.sum(0)
                squares += np.square(values).sum(0)
            mean = total / max(1, self.rows.size)
            spread = np.sqrt(np.maximum(squares / max(1, self.rows.size) - np.square(mean), 0.0))
            self.means.append(mean.astype(np.float32))
            self.scales.append(np.maximum(spread, 1e-6).astype(np.float32))

    @property
    def n_rows(self) -> int:
        return int(self.rows.size)

    def _gather(self, X: np.ndarray, positions: slice | np.ndarray) -> np.ndarray:
        return np.asarray(X[self.rows[positions]], dtype=np.float32)

    def standardised(self, positions: slice | np.ndarray) -> torch.Tensor:
        """The standardised, concatenated features of the rows at `positions` (a training-sized copy)."""
        parts = [
            (self._gather(X, positions) - mean) / scale
            for X, mean, scale in zip(self.arrays, self.means, self.scales, strict=True)
        ]
        return torch.from_numpy(np.ascontiguousarray(np.hstack(parts), dtype=np.float32))

    def fit_predict(
        self, rows: np.ndarray, targets: np.ndarray, weights: np.ndarray, n_classes: int
    ) -> np.ndarray:
        """Class probabilities (n_rows × n_classes) of a weighted multinomial logistic regression fitted on
        the rows at positions `rows`."""
        X = self.standardised(rows)
        y = torch.from_numpy(targets.astype(np.int64))
        w = torch.from_numpy(weights.astype(np.float32))
        n, d = X.shape
        W = torch.zeros(d, n_classes, requires_grad=True)
        b = torch.zeros(n_classes, requires_grad=True)
        l2 = 1.0 / (PROBE_C * float(w.sum()))
        optimizer = torch.optim.LBFGS(
            [W, b], lr=1.0, max_iter=_LBFGS_STEPS, history_size=10, line_search_fn="strong_wolfe"
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            nll = torch.nn.functional.cross_entropy(X @ W + b, y, reduction="none")
            loss = (nll * w).sum() / w.sum() + 0.5 * l2 * W.square().sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        return self.predict(W.detach(), b.detach())

    def predict(self, W: torch.Tensor, b: torch.Tensor) -> np.ndarray:
        """softmax(standardised @ W + b) for every row (W: one block of rows per space, in order), chunk by
        chunk, with the standardisation folded
        into per-space weights (raw rows @ W/scale, minus mean/scale @ W)."""
        blocks, offset = [], 0
        bias = b.clone()
        for mean, scale in zip(self.means, self.scales, strict=True):
            block = W[offset : offset + mean.size] / torch.from_numpy(scale)[:, None]
            bias -= torch.from_numpy(mean) @ block
            blocks.append(block)
            offset += mean.size
        out = np.empty((self.n_rows, W.shape[1]), dtype=np.float32)
        with torch.no_grad():
            for positions in chunks(self.n_rows):
                logits = bias.clone()
                for X, block in zip(self.arrays, blocks, strict=True):
                    logits = logits + torch.from_numpy(self._gather(X, positions)) @ block
                out[positions] = torch.softmax(logits, dim=1).numpy()
        return out


def refine_labels(
    spaces: Sequence[np.ndarray | torch.Tensor] | FeatureProbe,
    labels: np.ndarray | Sequence[int],
    checked: np.ndarray | Sequence[bool],
    *,
    random_state: int = 0,
    num_threads: int | None = None,
) -> RefineResult:
    """Re-assign every row that is not `checked`, learning from the checked rows' `labels` (any integers).

    `spaces` are the images' feature matrices (or a prepared `FeatureProbe`, to reuse across rounds).
    Returns labels from the same set as the input; checked rows keep theirs. Deterministic; `random_state`
    is accepted for a uniform estimator interface (the probe has no random part).
    """
    del random_state
    probe = spaces if isinstance(spaces, FeatureProbe) else FeatureProbe(spaces)
    labels = np.asarray(labels).ravel()
    checked = np.asarray(checked, dtype=bool).ravel()
    if labels.shape[0] != probe.n_rows or checked.shape[0] != probe.n_rows:
        raise ValueError(
            f"labels ({labels.shape[0]}) and checked ({checked.shape[0]}) need one entry per row ({probe.n_rows})"
        )
    classes, inverse = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        return RefineResult(
            labels.copy(), np.ones(labels.shape[0], np.float32), np.ones((labels.size, 1)), classes
        )
    learned_class = np.bincount(inverse[checked], minlength=classes.size) > 0
    # Images of a class nobody checked yet keep their label (the class does not vanish) and come first in
    # the review queue (confidence 0): the probe knows nothing of that class.
    frozen = ~checked & ~learned_class[inverse]
    probabilities = np.zeros((labels.size, classes.size), np.float32)
    if learned_class.sum() >= 2:
        rows = np.flatnonzero(checked)
        learned = np.flatnonzero(learned_class)
        position = np.cumsum(learned_class) - 1
        with cpu_threads(num_threads, torch.device("cpu")):
            probabilities[:, learned] = probe.fit_predict(
                rows, position[inverse[rows]], np.ones(rows.size), learned.size
            )
    else:  # fewer than two checked classes: nothing to tell apart yet
        probabilities[np.arange(labels.size), inverse] = 1.0
    new = probabilities.argmax(1)
    new[checked | frozen] = inverse[checked | frozen]
    # The margin between the two likeliest classes, not the top probability: it ordered the next round's
    # queue better on 5 of 6 suite sets (docs/decisions.md).
    ordered = np.sort(probabilities, axis=1)
    confidence = (ordered[:, -1] - ordered[:, -2]).astype(np.float32)
    confidence[frozen] = 0.0
    confidence[checked] = 1.0
    return RefineResult(classes[new], confidence, probabilities.astype(np.float32), classes)
