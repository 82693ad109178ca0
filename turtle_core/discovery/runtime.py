"""Where and how TURTLE and the probes run: the device, the CPU thread budget, and the input check."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence

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


# TF32 matmuls are one setting for the whole process too: on while any CUDA fit asks, put back after the last.
_tf32_lock = threading.Lock()
_tf32_users: list[int] = [0]
_tf32_before: list[bool] = [False]


@contextlib.contextmanager
def tf32_matmuls(device: torch.device) -> Iterator[None]:
    """Run float32 matmuls on the GPU's TF32 tensor cores (10-bit mantissa, float32 range and
    accumulation) while the block runs: at C = 1,000 on ImageNet's size the step is bound by its matmuls,
    which are then several times faster (benchmarks/gpu_check.py, part `imagenet`). No effect on the CPU."""
    if device.type != "cuda":
        yield
        return
    with _tf32_lock:
        if _tf32_users[0] == 0:
            _tf32_before[0] = torch.backends.cuda.matmul.allow_tf32
        _tf32_users[0] += 1
        torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        with _tf32_lock:
            _tf32_users[0] -= 1
            if _tf32_users[0] == 0:
                torch.backends.cuda.matmul.allow_tf32 = _tf32_before[0]


DEVICE_CHUNK_ROWS = 65_536  # rows moved to the GPU at a time by `map_rows`


def map_rows(
    arrays: Sequence[np.ndarray], fn: Callable[[list[torch.Tensor]], torch.Tensor], device: torch.device
) -> np.ndarray:
    """`fn` applied to the same rows of each array (as float32) on `device`, `DEVICE_CHUNK_ROWS` at a
    time, the results gathered as one host array: a million rows' matmuls on the GPU, not the CPU."""
    n = len(arrays[0])
    out: np.ndarray | None = None
    for start in range(0, max(n, 1), DEVICE_CHUNK_ROWS):
        blocks = [
            torch.from_numpy(np.ascontiguousarray(X[start : start + DEVICE_CHUNK_ROWS], dtype=np.float32)).to(
                device
            )
            for X in arrays
        ]
        result = fn(blocks).cpu().numpy()
        if out is None:
            out = np.empty((n, *result.shape[1:]), dtype=result.dtype)
        out[start : start + len(result)] = result
    assert out is not None
    return out


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
