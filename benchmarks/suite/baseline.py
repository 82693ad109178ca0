"""Run a discovery with an earlier version of the engine, in its own process (benchmarks/discovery_schedule.py).

    PYTHONPATH=ROOT python benchmarks/suite/baseline.py ROOT FEATURES.npz OUT.npz --effort standard --seed 0 [--shortcut]

ROOT is an extracted copy of the repository at the baseline commit, first on PYTHONPATH so that its
`turtle_core` is imported, not this one's (checked). Writes labels, the kept method and the discovery's seconds (measured around `discover` alone,
not the imports). `--shortcut` (fixed C, efforts that ran their own selection beside the three quick
ones): the quick selections and the k-means comparison run first, and the effort's own selection only
when TURTLE's partition is kept. With a fixed C the own selection cannot change a k-means decision, so
the labels are the full run's; the seconds are then not the full run's and are written as NaN.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path)
    parser.add_argument("features", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--effort", default="standard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shortcut", action="store_true")
    args = parser.parse_args(argv)
    import turtle_core
    from turtle_core.discovery.discover import discover
    from turtle_core.discovery.effort import EFFORTS

    if not Path(turtle_core.__file__).resolve().is_relative_to(args.root.resolve()):
        raise SystemExit(f"turtle_core comes from {turtle_core.__file__}, not {args.root}: set PYTHONPATH")

    with np.load(args.features) as data:
        features, n_clusters = data["features"], int(data["n_clusters"])
    effort = EFFORTS[args.effort]
    warm_up()
    started = time.perf_counter()
    if args.shortcut and effort != EFFORTS["quick"]:
        labels, method = _shortcut(features, n_clusters, args.effort, args.seed)
        seconds = float("nan")
    else:
        found = discover([features], n_clusters, effort, random_state=args.seed)
        labels, method = found.labels, found.choice.method
        seconds = time.perf_counter() - started
    np.savez(
        args.out, labels=np.asarray(labels, np.int64), method=np.array(method), seconds=np.float64(seconds)
    )


def warm_up() -> None:
    """Import what a discovery's first call imports (torch's optimisers load torch._dynamo; scikit-learn's
    k-means), so that the seconds measured are the discovery's, not the imports'."""
    import torch
    from sklearn.cluster import KMeans

    torch.optim.LBFGS([torch.zeros(1, requires_grad=True)])
    KMeans(2, n_init=1, random_state=0).fit(np.arange(8, dtype=np.float64).reshape(4, 2))


def _shortcut(features: np.ndarray, n_clusters: int, effort: str, seed: int) -> tuple[np.ndarray, str]:
    """The baseline's `discover` at `effort` in the order that skips the own selection when k-means wins."""
    from turtle_core.constants import STABILITY_TURTLE_RUNS
    from turtle_core.discovery.effort import EFFORTS
    from turtle_core.discovery.selection import select_model
    from turtle_core.discovery.stability import choose_partition

    quick = [
        select_model([features], n_clusters, random_state=seed + i, **EFFORTS["quick"].select_kwargs())
        for i in range(STABILITY_TURTLE_RUNS)
    ]
    runs = [q.best.labels_ for q in quick]
    choice = choose_partition([features], runs, runs[0], quick[0].best.probabilities_, random_state=seed)
    if choice.method == "kmeans":
        return choice.labels, "kmeans"
    own = select_model([features], n_clusters, random_state=seed, **EFFORTS[effort].select_kwargs())
    return own.best.labels_, "turtle"


if __name__ == "__main__":
    main()
