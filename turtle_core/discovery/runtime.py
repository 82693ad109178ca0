"""Where and how TURTLE and the probes run: the device, the CPU thread budget, and the input check."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
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


# torch's thread count is one setting for the whole process, and jobs run side by side in threads: each
# `cpu_threads` registers what it asked for, the count follows the latest one still active, and the count
# found before the first one is put back when the last one ends, in whatever order they end.
_threads_lock = threading.Lock()
_threads_active: dict[int, int] = {}  # entry number → threads asked for, in the order of entry
_threads_before: list[int] = []  # the count to put back when no `cpu_threads` is active any more
_entries = itertools.count()


@contextlib.contextmanager
def cpu_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """Temporarily run torch's CPU kernels on `n` threads (default: `default_cpu_threads()`, or fewer if
    fewer are set). Safe when jobs in several threads overlap: the process's count is restored exactly
    once, when the last of them ends."""
    if device.type != "cpu":
        yield
        return
    with _threads_lock:
        current = torch.get_num_threads()
        if not _threads_active:
            _threads_before[:] = [current]
        wanted = max(1, int(n)) if n else min(current, default_cpu_threads())
        entry = next(_entries)
        _threads_active[entry] = wanted
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        with _threads_lock:
            del _threads_active[entry]
            latest = next(reversed(_threads_active.values()), None)
            torch.set_num_threads(latest if latest is not None else _threads_before[0])


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
