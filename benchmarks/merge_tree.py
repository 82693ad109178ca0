"""When the number of categories is unknown: discover more clusters than needed, merge along the tree.

    .venv/bin/python -m benchmarks merge_tree --features-dir benchmarks/features      # demo + synthetic

On data with known classes: (1) the label-free suggested number of categories (largest relative jump
in merge height) against the true C; (2) the accuracy of the tree's cut at the true C against a
discovery run at the true C (same effort and seed); for two centroid geometries (whitened as TURTLE sees the features, or raw L2) and both
linkages; `majority_merge_accuracy` is the best any merge of those clusters could reach. Over-clustering is done by
TURTLE (the engine's selection, `--effort`) and, for reference, by k-means. Results merge into
`results/merge_tree.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import FEATURES, RESULTS, write_results
from turtle_core.discovery.effort import EFFORTS
from turtle_core.discovery.hierarchy import merge_tree
from turtle_core.discovery.metrics import hungarian_accuracy, nmi

OUT = RESULTS / "merge_tree.json"
VARIANTS = ("whiten/average", "whiten/ward", "l2/average", "l2/ward")  # centroid geometry / linkage


def _turtle(X: np.ndarray, k: int, seed: int, effort: str) -> np.ndarray:
    from turtle_core.discovery.selection import select_model

    return np.asarray(select_model([X], k, random_state=seed, **EFFORTS[effort].select_kwargs()).best.labels_)


def _kmeans(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return KMeans(k, n_init=4, random_state=seed).fit_predict(Xn)


def _majority(labels: np.ndarray, y: np.ndarray) -> float:
    """The best any merge of these clusters can do: each cluster to its most common true class."""
    mapped = labels.copy()
    for c in np.unique(labels):
        mapped[labels == c] = np.bincount(y[labels == c]).argmax()
    return hungarian_accuracy(y, mapped)


def evaluate_case(
    X: np.ndarray, y: np.ndarray, over: list[int], seeds: list[int], effort: str, methods: list[str]
) -> list[dict[str, object]]:
    true_c = len(np.unique(y))
    rows = []
    for method in methods:
        for seed in seeds:
            started = time.perf_counter()
            direct = _turtle(X, true_c, seed, effort) if method == "turtle" else _kmeans(X, true_c, seed)
            direct_s = time.perf_counter() - started
            for k in over:
                started = time.perf_counter()
                labels = _turtle(X, k, seed, effort) if method == "turtle" else _kmeans(X, k, seed)
                over_s = time.perf_counter() - started
                row: dict[str, object] = {
                    "method": method,
                    "seed": seed,
                    "true_c": true_c,
                    "discovered_c": int(len(np.unique(labels))),
                    "direct_accuracy": round(hungarian_accuracy(y, direct), 4),
                    "direct_nmi": round(nmi(y, direct), 4),
                    "direct_s": round(direct_s, 1),
                    "majority_merge_accuracy": round(_majority(labels, y), 4),
                    "over_s": round(over_s, 1),
                }
                for variant in VARIANTS:
                    geometry, linkage = variant.split("/")
                    started = time.perf_counter()
                    tree = merge_tree([X], labels, linkage=linkage, geometry=geometry)  # type: ignore[arg-type]
                    tree_s = time.perf_counter() - started
                    cut = tree.relabel(labels, min(true_c, tree.n_clusters))
                    suggested = tree.suggested_n_groups()
                    row[variant] = {
                        "suggested_c": suggested,
                        "cut_accuracy": round(hungarian_accuracy(y, cut), 4),
                        "cut_nmi": round(nmi(y, cut), 4),
                        "suggested_cut_accuracy": round(
                            hungarian_accuracy(y, tree.relabel(labels, suggested)), 4
                        ),
                        "tree_s": round(tree_s, 3),
                    }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def _blobs(
    true_c: int, seed: int, dim: int = 64, per_class: int = 150, spread: float = 0.45
) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian classes of unequal sizes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(true_c, dim)) * spread
    sizes = rng.integers(per_class // 2, per_class * 2, size=true_c)
    y = np.repeat(np.arange(true_c), sizes)
    return (centres[y] + rng.normal(size=(y.size, dim))).astype(np.float32), y


def summarise(rows: list[dict[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for variant in VARIANTS:
        entries = [r[variant] for r in rows]  # type: ignore[index]
        out[variant] = {
            "suggested_equals_true": sum(
                e["suggested_c"] == r["true_c"] for e, r in zip(entries, rows, strict=True)
            ),  # type: ignore[index]
            "suggested_within_1": sum(
                abs(e["suggested_c"] - r["true_c"]) <= 1 for e, r in zip(entries, rows, strict=True)
            ),  # type: ignore[index,operator]
            "cases": len(rows),
            "cut_accuracy_mean": round(float(np.mean([e["cut_accuracy"] for e in entries])), 4),  # type: ignore[index]
        }
    out["direct_accuracy_mean"] = round(float(np.mean([r["direct_accuracy"] for r in rows])), 4)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features-dir", type=Path, default=FEATURES)
    parser.add_argument("--parts", default="demo,synthetic")
    parser.add_argument("--effort", default="quick")
    parser.add_argument("--seeds", default="0,100")
    parser.add_argument("--over", default="15,20", help="over-clustered C on the demo")
    parser.add_argument("--methods", default="turtle,kmeans")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    report = json.loads(OUT.read_text()) if OUT.exists() else {}
    if "demo" in args.parts:
        X = np.load(args.features_dir / "animal_mnist_effnet-lite0.npy")
        y = np.load(args.features_dir / "animal_mnist_labels.npy")
        over = [int(k) for k in args.over.split(",")]
        rows = evaluate_case(X, y, over, seeds, args.effort, methods)
        report["demo"] = {
            "features": "Lite0, 2,000-image demo",
            "effort": args.effort,
            "rows": rows,
            "summary": summarise(rows),
        }
        write_results(OUT, report)
    if "synthetic" in args.parts:
        rows = []
        for true_c in (4, 6, 8, 10):
            for seed in seeds:
                X, y = _blobs(true_c, seed)
                rows += evaluate_case(X, y, [2 * true_c], [seed], args.effort, methods)
        report["synthetic"] = {
            "data": "64-d Gaussian classes, spread 0.45, unequal sizes (75-300), over-clustered at 2C",
            "effort": args.effort,
            "rows": rows,
            "summary": summarise(rows),
        }
        write_results(OUT, report)
    summaries = {k: v.get("summary") for k, v in report.items() if isinstance(v, dict) and k != "machine"}
    print(json.dumps(summaries, indent=1))
