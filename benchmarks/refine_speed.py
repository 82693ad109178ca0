"""Seconds for one `refine_labels` on 10,000 × 1,280 features, for a growing share of checked images.

N images × D features (the target: 10,000 × 1,280 in ≤ 10 s on a 2-core CPU), the features'
preparation included.

    .venv/bin/python -m benchmarks refine_speed [--n 10000] [--dim 1280] [--classes 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import RESULTS, write_results
from turtle_core.discovery.refine import FeatureProbe, refine_labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, args.classes, args.n)
    features = (rng.normal(size=(args.classes, args.dim)) * 0.5)[truth] + rng.normal(size=(args.n, args.dim))
    features = features.astype(np.float32)
    rows = []
    for share in (0.02, 0.1, 0.3):
        checked = rng.uniform(size=args.n) < share
        labels = np.where(checked, truth, rng.integers(0, args.classes, args.n))
        started = time.perf_counter()
        result = refine_labels(FeatureProbe([features]), labels, checked)
        seconds = time.perf_counter() - started
        accuracy = float((result.labels[~checked] == truth[~checked]).mean())
        rows.append(
            {"checked_share": share, "seconds": round(seconds, 2), "unchecked_accuracy": round(accuracy, 3)}
        )
        print(
            f"{args.n} × {args.dim}, {share:.0%} checked: {seconds:.2f} s, unchecked accuracy {accuracy:.3f}"
        )
    out = write_results(
        RESULTS / "refine_speed.json", {"n": args.n, "dim": args.dim, "classes": args.classes, "runs": rows}
    )
    print(f"wrote {out}")
