"""Cost of the state redesign per edit and per page run, side by side with the old direct path.

    .venv/bin/python -m benchmarks state_speed            # JSON: benchmarks/results/state_speed.json

For each size: median time of (a) the old path, `curation.move(...)` + `curation.save(...)`, against
(b) `state.apply(Move(...))` (lock, file-signature sync, discovery check, the same edit, atomic save),
and (c) `state.snapshot()` (what every page run now takes: sync + a copy of the curation).
Synthetic discovery; 2 shared CPU cores, so only the ratios mean much.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, timed, write_results
from turtle_core.ingest.scan import ImageRecord
from turtle_core.state.discovery_result import DiscoveryResult
from turtle_core.state.edits import Move
from turtle_core.state.project_state import ProjectState
from turtle_core.state.store import ProjectStore

REPEATS = 30


def discovery(n: int, k: int = 20) -> DiscoveryResult:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, n).astype(np.int32)
    probabilities = rng.dirichlet(np.ones(k), n).astype(np.float32)
    images = [ImageRecord(f"d{i // 1000}/img_{i:06d}.png", 1, 0, f"h{i}", 8, 8, None) for i in range(n)]
    return DiscoveryResult(
        images, labels, probabilities, probabilities.max(1), k, 0.5, {k: 0.5}, {}, [], [], 0.0
    )


def median_ms(fn) -> float:
    return timed(fn, repeat=REPEATS).seconds * 1000


def measure(n: int, tmp: Path) -> dict[str, float]:
    result = discovery(n)
    state = ProjectState(ProjectStore(tmp / "state"), tmp)
    state.install_discovery(result)
    old = state.curation.copy()
    rng = np.random.default_rng(1)

    def direct() -> None:
        old.move(rng.choice(n, 20, replace=False), int(rng.integers(0, 20)))
        old.save(tmp / "old.npz", result.image_key(), result.discovery_id)

    def through_apply() -> None:
        keys = tuple(result.images[int(r)].path for r in rng.choice(n, 20, replace=False))
        state.apply(Move(discovery_id=result.discovery_id, images=keys, cluster_id=int(rng.integers(0, 20))))

    direct_ms, apply_ms, snapshot_ms = median_ms(direct), median_ms(through_apply), median_ms(state.snapshot)
    return {
        "n_images": n,
        "direct_edit_and_save_ms": round(direct_ms, 2),
        "apply_ms": round(apply_ms, 2),
        "apply_over_direct": round(apply_ms / direct_ms, 2),
        "snapshot_ms": round(snapshot_ms, 2),
    }


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    rows = []
    for n in (10_000, 50_000):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(n, Path(tmp)))
            print(rows[-1])
    write_results(RESULTS / "state_speed.json", {"repeats": REPEATS, "rows": rows})
