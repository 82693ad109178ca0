"""The learner behind "Propagate my fixes": a linear probe on the backbones' feature spaces, as a value.

`FeatureProbe` holds a folder's feature spaces and their standardisation (each space's mean and spread over
the rows it works on); `FeatureProbe.fit` trains a multinomial logistic regression on some of those rows and
returns a `LinearProbe`: the means and spreads, the weights and bias, and the class each output stands for.
A `LinearProbe` scores *any* rows (`predict_proba(spaces)`: images added to the folder later, another
folder embedded with the same backbones), chunk by chunk, and converts to and from plain arrays
(`to_arrays` / `from_arrays`) to be saved as a classifier file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from turtle_core.discovery.runtime import check_spaces
from turtle_core.discovery.sampled import chunks

# Inverse L2 strength per training row, as scikit-learn's C (the anchor probe of curator-effort.md uses 0.1).
PROBE_C = 0.1
_LBFGS_STEPS = 100


@dataclass(frozen=True, eq=False)
class LinearProbe:
    """softmax(Σ_k ((x_k − mean_k) / scale_k) @ weights_k + bias) over `classes`, for rows of the spaces
    `x_1..x_K` (the backbones' features, in the order the probe was fitted on)."""

    means: tuple[np.ndarray, ...]
    scales: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]  # per space: d_k × n_classes, in standardised units
    bias: np.ndarray
    classes: np.ndarray  # the label each output column stands for

    @property
    def n_classes(self) -> int:
        return int(self.classes.size)

    def logits(
        self, spaces: Sequence[np.ndarray | torch.Tensor], rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Raw scores (n × n_classes) of `rows` (default: every row) of `spaces`, chunk by chunk; the
        standardisation is folded into the weights, so no standardised copy of the features is made."""
        arrays = check_spaces(spaces)
        if [X.shape[1] for X in arrays] != [m.size for m in self.means]:
            raise ValueError(
                f"the probe was fitted on spaces of {[m.size for m in self.means]} dimensions, "
                f"got {[X.shape[1] for X in arrays]}"
            )
        picked = np.arange(arrays[0].shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        blocks, bias = [], torch.from_numpy(np.asarray(self.bias, np.float32)).clone()
        for mean, scale, weight in zip(self.means, self.scales, self.weights, strict=True):
            block = torch.from_numpy(np.asarray(weight / scale[:, None], np.float32))
            bias -= torch.from_numpy(np.asarray(mean, np.float32)) @ block
            blocks.append(block)
        out = np.empty((picked.size, self.n_classes), dtype=np.float32)
        with torch.no_grad():
            for positions in chunks(picked.size):
                scores = bias.clone()
                for X, block in zip(arrays, blocks, strict=True):
                    scores = scores + torch.from_numpy(np.asarray(X[picked[positions]], np.float32)) @ block
                out[positions] = scores.numpy()
        return out

    def predict_proba(
        self, spaces: Sequence[np.ndarray | torch.Tensor], rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Class probabilities (n × n_classes, columns in `classes` order) of `rows` of `spaces`."""
        return softmax(self.logits(spaces, rows))

    def predict(
        self, spaces: Sequence[np.ndarray | torch.Tensor], rows: np.ndarray | None = None
    ) -> np.ndarray:
        """The likeliest class (a value of `classes`) of each row."""
        return self.classes[self.logits(spaces, rows).argmax(1)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (e.g. for `np.savez`); `from_arrays` reads them back."""
        arrays = {"bias": self.bias, "classes": self.classes}
        for k, (mean, scale, weight) in enumerate(zip(self.means, self.scales, self.weights, strict=True)):
            arrays.update({f"mean_{k}": mean, f"scale_{k}": scale, f"weight_{k}": weight})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LinearProbe:
        n_spaces = sum(1 for name in arrays if name.startswith("weight_"))
        return cls(
            tuple(np.asarray(arrays[f"mean_{k}"], np.float32) for k in range(n_spaces)),
            tuple(np.asarray(arrays[f"scale_{k}"], np.float32) for k in range(n_spaces)),
            tuple(np.asarray(arrays[f"weight_{k}"], np.float32) for k in range(n_spaces)),
            np.asarray(arrays["bias"], np.float32),
            np.asarray(arrays["classes"]),
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


class FeatureProbe:
    """The backbones' feature spaces, each standardised (mean and spread over `rows`), concatenated; prepared
    once and reused across fits. Nothing the size of the features is copied: rows are picked by index and
    the standardisation is folded into the weights (a million 1,280-d images took 20.5 GiB at peak when the
    standardised copy was materialised, `python -m benchmarks million --phases refine`).
    `rows` (default: all) picks the rows the probe works on; its positions are what `fit` takes."""

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

    def fit(
        self,
        positions: np.ndarray,
        targets: np.ndarray,
        classes: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> LinearProbe:
        """A multinomial logistic regression (L2, `PROBE_C` per unit of weight) fitted on the rows at
        `positions`, whose classes are `targets` (indices into `classes`), each row counted `weights` times
        (default 1)."""
        X = self.standardised(np.asarray(positions, dtype=np.int64))
        y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
        w = torch.ones(X.shape[0]) if weights is None else torch.from_numpy(np.asarray(weights, np.float32))
        n_classes = int(np.asarray(classes).size)
        W = torch.zeros(X.shape[1], n_classes, requires_grad=True)
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
        weights = W.detach().numpy()
        splits = np.cumsum([mean.size for mean in self.means])[:-1]
        return LinearProbe(
            tuple(self.means),
            tuple(self.scales),
            tuple(np.ascontiguousarray(part) for part in np.split(weights, splits)),
            b.detach().numpy().copy(),
            np.asarray(classes).copy(),
        )

    def logits(self, probe: LinearProbe) -> np.ndarray:
        """`probe`'s scores for every row this `FeatureProbe` works on."""
        return probe.logits(self.arrays, self.rows)
