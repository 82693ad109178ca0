"""Where and how TURTLE and the probes run: the device, the CPU thread budget, and the input check."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None` → CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_cpu_threads() -> int:
    """Half the cores (at least 1): a TURTLE step is many small operations that synchronise every
    thread, and one busy core then stalls them all; on a shared machine fewer threads run faster."""
    return max(1, (os.cpu_count() or 2) // 2)


@contextlib.contextmanager
def cpu_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """Temporarily run torch's CPU kernels on `n` threads (default: `default_cpu_threads()`)."""
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)) if n else min(previous, default_cpu_threads()))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_spaces(
    spaces: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
) -> list[np.ndarray]:
    if isinstance(spaces, (np.ndarray, torch.Tensor)) and spaces.ndim == 2:
        raise TypeError("pass a list of feature spaces, e.g. fit([X]) for a single space")
    arrays = []
    for k, X in enumerate(spaces):
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"feature space {k} must be 2-D (N × d), got shape {X.shape}")
        arrays.append(X)
    if not arrays:
        raise ValueError("at least one feature space is needed")
    sizes = {X.shape[0] for X in arrays}
    if len(sizes) != 1:
        raise ValueError(f"all feature spaces must have the same number of rows, got {sorted(sizes)}")
    return arrays
