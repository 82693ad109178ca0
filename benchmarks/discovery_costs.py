"""What each part of a discovery costs, measured part by part in one process: the estimate's reference
costs (`turtle_core/discovery/estimate.py`), and the standard effort at 10,000 images before and after
priced from costs measured side by side.

    nice -n 10 .venv/bin/python -m benchmarks discovery_costs                       # on the idle machine
    nice -n 10 .venv/bin/python -m benchmarks discovery_costs --idle-reference 20   # on a loaded one

Parts (Lite0 features of the suite's animal_mnist set, C = 10 unless said, one torch thread): a TURTLE
step on 12 rows, on 2,000 rows at C = 3 and C = 26, on 4,096 and on 10,000 rows; a label-free score on
12, 4,096 and 10,000 rows; a k-means start on 300, 4,096 and 10,000 rows; the preprocessing of 4,096
rows; a start of the stability choice's k-means on 2,000 rows. It fits the estimate's constants from
them and prints them. `--idle-reference S` scales every cost so that the demo's three quick selections
come to S seconds (20 s measured idle, benchmarks/README.md), for a machine shared with other work.
The standard effort at 10,000 images is then priced twice with these costs: the plan before
(`effort.legacy_plan`: 10,000-row steps, probes and k-means starts on every row) and the plan now.
Writes `benchmarks/results/discovery_costs.json`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, write_results
from benchmarks.suite.baseline import warm_up
from benchmarks.suite.features import FEATURES_DIR, load_set

DEFAULT_OUT = RESULTS / "discovery_costs.json"


def seconds(fn: Callable[[], Any], repeat: int = 1) -> float:
    """The median of `repeat` calls."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return float(np.median(runs))


def measure(X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Seconds of each part (TURTLE steps per step)."""
    import torch

    from turtle_core.discovery.engine import TurtleEngine
    from turtle_core.discovery.features import SpacePreprocessor, effective_components, joint_unit_rows
    from turtle_core.discovery.metrics import kmeans_baseline
    from turtle_core.discovery.runtime import cpu_threads
    from turtle_core.discovery.score import generalization_details
    from turtle_core.discovery.stability import kmeans_runs

    rows = np.random.default_rng(0).permutation(len(X))
    costs: dict[str, float] = {}
    with cpu_threads(None, torch.device("cpu")):
        for n, c in ((12, 10), (2000, 3), (2000, 26), (4096, 10), (10_000, 10)):
            F = SpacePreprocessor("whiten", effective_components(64, n, c)).fit_transform(X[rows[:n]])
            engine = TurtleEngine([F], n_clusters=c, gamma=10.0, inner_steps=10, batch_size=n, outer_lr=1e-3,
                                  inner_lr=1e-3, warm_start=True, precision="fp32", device=torch.device("cpu"),
                                  seed=0)  # fmt: skip
            steps = 200 if n <= 2000 else 50
            engine.prepare_chunk(steps)
            costs[f"step n{n} C{c}"] = seconds(lambda e=engine, s=steps: e.run_chunk(s)) / steps
        for n in (12, 4096, 10_000):
            F = SpacePreprocessor("whiten", effective_components(64, n, 10)).fit_transform(X[rows[:n]])
            costs[f"score n{n}"] = seconds(lambda F=F, n=n: generalization_details([F], y[rows[:n]]), 2)
        for n in (300, 4096, 10_000):
            costs[f"start n{n}"] = seconds(
                lambda n=n: kmeans_baseline([X[rows[:n]]], 10, normalize=False, n_init=1), 2
            )
        costs["prep n4096"] = seconds(lambda: SpacePreprocessor("whiten", 64).fit(X[rows[:4096]]), 2)
        costs["stability start n2000"] = (
            seconds(lambda: kmeans_runs(joint_unit_rows([X[rows[:2000]]]), 10, [0])) / 10
        )
    return costs


def fit_constants(costs: dict[str, float], dims: int = 1280) -> dict[str, float]:
    """The estimate's constants from the measured parts (C = 10 and 64 axes where not said)."""
    width = lambda c: c * 65 / 640  # noqa: E731  (C × (axes + 1) per 10 × 64)
    fixed = costs["step n12 C10"]
    row3, row26 = ((costs[f"step n2000 C{c}"] - fixed) / 2000 for c in (3, 26))
    at_width = max(0.0, (row26 - row3) / (width(26) - width(3)))
    score_fixed = costs["score n12"]
    per_start = (costs["start n4096"] - costs["start n300"]) / ((4096 - 300) * dims * 2.0)
    return {
        "STEP_S_PER_SPACE": fixed,
        "STEP_S_PER_ROW": max(0.0, row3 - at_width * width(3)),
        "STEP_ROW_AT_WIDTH": at_width,
        "SCORE_S": score_fixed,
        "SCORE_S_PER_ROW": (costs["score n4096"] - score_fixed) / (4096 * width(10)),
        "KMEANS_S": max(0.0, costs["start n300"] - per_start * 300 * dims * 2.0),
        "KMEANS_S_PER_VALUE": per_start,
        "PREP_S_PER_VALUE": costs["prep n4096"] / (4096 * dims * dims),
    }


def demo_quick_seconds(constants: dict[str, float]) -> float:
    """The demo's three quick selections (2,000 images, C = 10) priced with `constants`."""
    with patched(constants):
        from turtle_core.discovery.effort import EFFORTS, discovery_plan
        from turtle_core.discovery.estimate import plan_seconds

        return sum(plan_seconds(discovery_plan(EFFORTS["quick"], "auto", 0, 2000), 10, 2000, [1280]).turtle_s)


class patched:
    """The estimate module with other constants, for the length of a `with`."""

    def __init__(self, constants: dict[str, float]) -> None:
        from turtle_core.discovery import estimate

        self.module, self.new = estimate, constants
        self.old = {name: getattr(estimate, name) for name in constants}

    def __enter__(self) -> None:
        for name, value in self.new.items():
            setattr(self.module, name, value)

    def __exit__(self, *_: object) -> None:
        for name, value in self.old.items():
            setattr(self.module, name, value)


def standard_at_10k(constants: dict[str, float]) -> dict[str, float]:
    """The standard effort on 10,000 images × 1,280, C = 10, priced with `constants`: before and now."""
    from turtle_core.discovery.effort import EFFORTS, discovery_plan, legacy_plan
    from turtle_core.discovery.estimate import plan_seconds

    standard = EFFORTS["standard"]
    with patched(constants):
        before = plan_seconds(legacy_plan(standard), 10, 10_000, [1280], work_rows=20_000)
        now = plan_seconds(discovery_plan(standard, "auto", 0, 10_000), 10, 10_000, [1280])
    return {"before_s": before.total_s, "now_s": now.total_s, "ratio": before.total_s / now.total_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--idle-reference", type=float, default=None, help="seconds of the demo's three quick selections idle"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    data = load_set(FEATURES_DIR, "animal_mnist")
    warm_up()
    load = os.getloadavg()[0]
    costs = measure(np.asarray(data["features"], np.float32), np.asarray(data["labels"]))
    constants = fit_constants(costs)
    scale = 1.0 if args.idle_reference is None else args.idle_reference / demo_quick_seconds(constants)
    constants = {name: value * scale for name, value in constants.items()}
    priced = standard_at_10k(constants)
    for name, value in costs.items():
        print(f"{name:24s} {value * 1000:10.2f} ms")
    print(f"scale to the idle reference: {scale:.3f} (load average {load:.1f} → {os.getloadavg()[0]:.1f})")
    for name, value in constants.items():
        print(f"{name} = {value:.3g}")
    print(f"standard effort, 10,000 images: before {priced['before_s']:.0f} s, now {priced['now_s']:.0f} s, "
          f"{priced['ratio']:.2f}x")  # fmt: skip
    write_results(args.out, {"command": " ".join(sys.argv), "load_average": [load, os.getloadavg()[0]],
                                 "costs_s": costs, "scale": scale, "constants": constants, "standard_10k": priced})  # fmt: skip


if __name__ == "__main__":
    main()
