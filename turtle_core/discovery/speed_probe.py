"""This machine's CPU speed, measured once before its first discovery so that the first estimate holds.

The estimate prices a discovery at costs measured on one reference machine (`discovery.estimate`) and then
learns this machine's speed from its first discovery. Before that, a machine unlike the reference was
mis-priced: on a 2-core machine with AVX-512 the demo's first estimate said 80 s for a run of 50 s
(benchmarks/README.md). The probe is a short TURTLE fit on fixed synthetic features (under a second of
CPU) whose seconds on the reference machine are known; its ratio stands in for the discovery's speed and,
for a backbone not yet run here, scales the first-guess embedding rate (on the machines measured, the
embedding and TURTLE sped up alike: 1.45x and 1.7x).

It runs in a child process (torch's thread count is one setting per process: the app's own work keeps its
threads) and counts that process's CPU time on one thread, not the wall clock: it starts when the app opens,
often beside the user's first scan, and must not read the machine as slower because of it. About 3 s of CPU,
most of it importing torch and the first fit's one-off costs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from turtle_core.discovery.turtle import Turtle
from turtle_core.embedding.rates import MAX_SPEED, PROBE_KEY, record_rate
from turtle_core.progress import check_cancel

ROWS, DIMS, CLUSTERS, STEPS = 2000, 1280, 10, 150  # the demo's shape
WARM_UP_ROWS, WARM_UP_STEPS = 200, 5
# The timed fit's CPU seconds where the speed is 1: on a 2-core AVX-512 machine it took 0.64-0.67 s (12
# processes) where discoveries ran at a median speed of 0.54 (0.38-0.69 over benchmarks/estimate_accuracy.py's
# 13 cases).
REFERENCE_S = 1.21
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds turtle_core


def probe_features() -> np.ndarray:
    """ROWS x DIMS features in CLUSTERS well-separated groups, the same on every call."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CLUSTERS, DIMS)).astype(np.float32)
    noise = rng.normal(scale=2.0, size=(ROWS, DIMS)).astype(np.float32)
    return centres[rng.integers(0, CLUSTERS, ROWS)] + noise


def measure_cpu_seconds() -> float:
    """The timed fit's CPU seconds in this process, on one thread (torch's and the BLAS libraries': their
    worker threads made one fit in a few a third slower)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    features = probe_features()
    with threadpool_limits(limits=1):
        # the first fit pays one-off costs (imports, first calls) that are not the machine's speed: ~1 s
        Turtle(n_clusters=CLUSTERS, outer_steps=WARM_UP_STEPS, device="cpu", random_state=0).fit(
            [features[:WARM_UP_ROWS]]
        )
        started = time.process_time()
        Turtle(n_clusters=CLUSTERS, outer_steps=STEPS, device="cpu", random_state=0).fit([features])
        return time.process_time() - started


def measure_cpu_speed(cancel: threading.Event | None = None, timeout_s: float = 300.0) -> float | None:
    """Time the probe in a child process, remember its speed (seconds here over seconds on the reference) and
    return it; None on a machine whose discoveries run on a GPU (the probe measures the CPU). Raises
    `Cancelled` on cancel, RuntimeError when the child fails."""
    if torch.cuda.is_available():
        return None
    child = subprocess.Popen(
        [sys.executable, "-m", __name__],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PACKAGE_ROOT,  # wherever the app was started from
    )
    started = time.monotonic()
    try:
        while child.poll() is None:
            check_cancel(cancel)
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"the speed probe took over {timeout_s:.0f} s")
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            child.kill()
        out, err = child.communicate()
    if child.returncode != 0:
        last = err.strip().splitlines()[-1] if err.strip() else f"exit status {child.returncode}"
        raise RuntimeError(f"the speed probe failed: {last}")
    speed = min(MAX_SPEED, max(1 / MAX_SPEED, float(out.split()[-1]) / REFERENCE_S))
    record_rate(PROBE_KEY, speed)
    return speed


if __name__ == "__main__":
    print(measure_cpu_seconds())
