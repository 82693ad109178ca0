"""What the benchmarks share: the repository's folders, a timer, the machine facts and the results JSON."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from turtle_core.atomic import atomic_write_json

if TYPE_CHECKING:
    from turtle_core.ingest.scan import ImageRecord
    from turtle_core.state.discovery_result import DiscoveryResult

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FEATURES = REPO / "benchmarks" / "features"  # git-ignored: features the quality benchmarks read
DATA = REPO / "benchmarks" / "data"  # git-ignored: image sets and caches the benchmarks build


@dataclass(frozen=True)
class Timing:
    """Wall times of one or more calls of a function, and what its last call returned."""

    result: Any
    seconds: float  # the median over the calls
    runs: list[float]
    ended: float  # time.perf_counter() when the last call returned

    @property
    def started(self) -> float:
        """time.perf_counter() when the last call began."""
        return self.ended - self.runs[-1]


def timed(fn: Callable[[], Any], repeat: int = 1, sync: Callable[[], None] | None = None) -> Timing:
    """Call `fn` `repeat` times. `sync` (e.g. `torch.cuda.synchronize`) runs before each call and
    inside each timing after it, so that a device's queued work is counted where it was started."""
    runs, result, ended = [], None, 0.0
    for _ in range(repeat):
        if sync is not None:
            sync()
        started = time.perf_counter()
        result = fn()
        if sync is not None:
            sync()
        ended = time.perf_counter()
        runs.append(ended - started)
    return Timing(result, statistics.median(runs), runs, ended)


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages now (the machine may be shared: a timing needs its load)."""
    return [round(value, 2) for value in os.getloadavg()]


_run_start: dict[str, Any] = {}


def start_run() -> None:
    """Note the load average and the date as a benchmark starts (`python -m benchmarks` calls it)."""
    _run_start.update(
        load=load_average(), date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    )


start_run()  # a benchmark's `main` called without the runner still gets a start


def machine_facts() -> dict[str, Any]:
    """What a timing needs beside it: CPUs (and the vector instructions torch's kernels use on them: the
    same 2 cores ran the demo 1.4x faster with AVX-512 than with AVX2), memory, the 1/5/15-minute load
    average when the run started and now, torch's threads and version, the date the run started (UTC)."""
    import torch

    return {
        "date": _run_start["date"],
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
        "load_average_at_start": _run_start["load"],
        "load_average_at_end": load_average(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
    }


def standin_discovery(
    images: list[ImageRecord],
    labels: np.ndarray,
    confidence: np.ndarray,
    n_clusters: int,
    identity: str,
    score: float = 0.0,
    params: dict[str, Any] | None = None,
) -> DiscoveryResult:
    """A discovery result for labels that no discovery made, to measure what comes after one; each
    image's probability of its own label is its confidence, of the others 0."""
    from turtle_core.state.discovery_result import DiscoveryResult

    probabilities = np.zeros((len(labels), n_clusters), dtype=np.float32)
    probabilities[np.arange(len(labels)), labels] = confidence
    return DiscoveryResult(
        images=images,
        labels=labels,
        probabilities=probabilities,
        confidence=confidence,
        n_clusters=n_clusters,
        score=score,
        scores_by_k={n_clusters: score},
        params=params or {},
        backbones=["synthetic"],
        identities=[identity],
        seconds=0.0,
    )


def write_results(path: Path, payload: dict[str, Any]) -> Path:
    """Write a benchmark's JSON atomically with the machine facts of this run under `machine` (in a
    file that merges several runs, they describe the run that wrote it last)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**payload, "machine": machine_facts()})
    return path
