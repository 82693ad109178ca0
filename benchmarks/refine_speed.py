"""Seconds for one `refine_labels` on N images × D features (the issue's target: 10,000 × 1,280 in ≤ 10 s
on the 2-core CPU), for a growing share of checked images, including the features' preparation.

    .venv/bin/python benchmarks/refine_speed.py [--n 10000] [--dim 1280] [--classes 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from turtle_core.atomic import atomic_write_json  # noqa: E402
from turtle_core.discovery.refine import FeatureProbe, refine_labels  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    truth = rng.integers(0, args.classes, args.n)
    features = (rng.normal(size=(args.classes, args.dim)) * 0.5)[truth] + rng.normal(size=(args.n, args.dim))
    features = features.astype(np.float32)
    rows = []
    for share in (0.02, 0.1, 0.3):
        known = rng.uniform(size=args.n) < share
        labels = np.where(known, truth, rng.integers(0, args.classes, args.n))
        started = time.perf_counter()
        result = refine_labels(FeatureProbe([features]), labels, known)
        seconds = time.perf_counter() - started
        accuracy = float((result.labels[~known] == truth[~known]).mean())
        rows.append(
            {"checked_share": share, "seconds": round(seconds, 2), "unchecked_accuracy": round(accuracy, 3)}
        )
        print(
            f"{args.n} × {args.dim}, {share:.0%} checked: {seconds:.2f} s, unchecked accuracy {accuracy:.3f}"
        )
    out = ROOT / "benchmarks" / "results" / "refine_speed.json"
    atomic_write_json(
        out,
        {
            "n": args.n,
            "dim": args.dim,
            "classes": args.classes,
            "load_average": os.getloadavg(),
            "runs": rows,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
