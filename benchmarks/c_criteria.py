"""Label-free criteria for the number of categories C on Animal-MNIST (Lite0), side by side.

    .venv/bin/python -m benchmarks c_criteria --features-dir benchmarks/features     # ~15 min, 1 thread

The engine's selection scores each C by the chance-corrected probe agreement (κ) on the whitened
features; on Animal-MNIST that score saturates and picks 15 for a true C of 10 (benchmarks/README.md).
This study screens `--starts` k-means starts per C exactly as `select_model` does (300 TURTLE
steps each), then computes, per C, criteria that might rank C better:

- `kappa`: the engine's score of the best screened start;
- `raw_kappa`: the same probe on the raw L2-normalised features instead of the whitened ones;
- `knn_modularity`: modularity of the best start's labeling on the cosine k-NN graph of the raw
  features (the true labels' k-NN purity is printed for reference);
- `few_shot`: κ of a probe trained on 300 images only (a margin-sensitive variant);
- `stability_topN`: mean adjusted Rand index between the N best-scoring starts.

Each criterion's pick is compared with the true C. JSON: benchmarks/results/c_criteria.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import FEATURES, RESULTS, write_results
from turtle_core.discovery.metrics import ari, evaluate
from turtle_core.discovery.selection import DEFAULT_SCREEN, generalization_details, select_model

OUT = RESULTS / "c_criteria.json"
STABILITY_TOPS = (3, 4, 5, 6, 8)


def knn_graph(X: np.ndarray, k: int, chunk: int = 2000) -> np.ndarray:
    """Indices of each row's k nearest other rows by cosine similarity (N × k)."""
    Z = torch.from_numpy(X / np.linalg.norm(X, axis=1, keepdims=True))
    rows = []
    for start in range(0, len(Z), chunk):
        sim = Z[start : start + chunk] @ Z.T
        sim[torch.arange(sim.shape[0]), torch.arange(start, start + sim.shape[0])] = -2.0
        rows.append(sim.topk(k, dim=1).indices)
    return torch.cat(rows).numpy()


def modularity(neighbours: np.ndarray, labels: np.ndarray) -> float:
    """Newman modularity of `labels` on the symmetrised k-NN graph (each directed edge counted both ways)."""
    n, k = neighbours.shape
    source = np.repeat(np.arange(n), k)
    target = neighbours.ravel()
    inside = float((labels[source] == labels[target]).mean())
    degree = k + np.bincount(target, minlength=n)
    share = np.bincount(labels, weights=degree) / degree.sum()
    return inside - float((share**2).sum())


def few_shot_kappa(X: np.ndarray, labels: np.ndarray, subsets: list[np.ndarray]) -> float:
    """κ of a logistic-regression probe trained on each small subset, tested on the other rows."""
    from sklearn.linear_model import LogisticRegression

    accuracies = []
    for subset in subsets:
        rest = np.setdiff1d(np.arange(len(X)), subset)
        probe = LogisticRegression(max_iter=300).fit(X[subset], labels[subset])
        accuracies.append(float((probe.predict(X[rest]) == labels[rest]).mean()))
    shares = np.bincount(labels) / len(labels)
    chance = float((shares**2).sum())
    return (float(np.mean(accuracies)) - chance) / (1.0 - chance)


def mean_pairwise_ari(labelings: list[np.ndarray]) -> float:
    pairs = [ari(a, b) for i, a in enumerate(labelings) for b in labelings[i + 1 :]]
    return float(np.mean(pairs)) if pairs else 0.0


def study(X: np.ndarray, truth: np.ndarray, c_values: list[int], starts: int, knn: int) -> dict[str, Any]:
    from sklearn.decomposition import PCA

    normed = X / np.linalg.norm(X, axis=1, keepdims=True)
    neighbours = knn_graph(X, knn)
    reduced = PCA(64, random_state=0).fit_transform(normed)
    rng = np.random.default_rng(0)
    subsets = [rng.choice(len(X), 300, replace=False) for _ in range(5)]
    reference = {
        "knn_purity_of_truth": round(float((truth[neighbours] == truth[:, None]).mean()), 4),
        "knn_modularity_of_truth": round(modularity(neighbours, truth), 4),
        "raw_kappa_of_truth": round(generalization_details([normed], truth, n_folds=5).kappa, 4),
        "few_shot_of_truth": round(few_shot_kappa(reduced, truth, subsets), 4),
    }
    print(json.dumps(reference), flush=True)
    rows = []
    for c in c_values:
        started = time.perf_counter()
        # Screening only: the full run is one step longer than a screening run and is not studied.
        result = select_model(
            [X], c, random_state=0, n_restarts=1, n_screen=starts, screen_steps=300,
            turtle_params={"outer_steps": 301},
        )  # fmt: skip
        ranked = sorted(result.screened, key=lambda candidate: -candidate.kappa)
        best = ranked[0].labels
        row: dict[str, Any] = {
            "C": c,
            "accuracy_of_best_start": round(evaluate(truth, best)["accuracy"], 4),
            "best_accuracy_of_any_start": round(
                max(evaluate(truth, s.labels)["accuracy"] for s in ranked), 4
            ),
            "kappa": round(ranked[0].kappa, 4),
            "raw_kappa": round(generalization_details([normed], best, n_folds=5).kappa, 4),
            "knn_modularity": round(modularity(neighbours, best), 4),
            "few_shot": round(few_shot_kappa(reduced, best, subsets), 4),
        }
        for top in STABILITY_TOPS:
            row[f"stability_top{top}"] = round(mean_pairwise_ari([s.labels for s in ranked[:top]]), 4)
        row["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
    criteria = ["kappa", "raw_kappa", "knn_modularity", "few_shot"] + [
        f"stability_top{t}" for t in STABILITY_TOPS
    ]
    picks = {name: int(max(rows, key=lambda r: r[name])["C"]) for name in criteria}
    return {"reference": reference, "rows": rows, "picks": picks}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features-dir", type=Path, default=FEATURES)
    parser.add_argument("--space", default="lite0", help="lite0 or lite2")
    parser.add_argument("--c-range", default="5,15")
    parser.add_argument("--starts", type=int, default=DEFAULT_SCREEN, help="screened k-means starts per C")
    parser.add_argument("--knn", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X = np.load(args.features_dir / f"animal_mnist_effnet-{args.space}.npy").astype(np.float32)
    truth = np.load(args.features_dir / "animal_mnist_labels.npy").astype(np.int64)
    lo, hi = (int(v) for v in args.c_range.split(","))
    report = study(X, truth, list(range(lo, hi + 1)), args.starts, args.knn)
    report.update(
        true_c=int(truth.max()) + 1, space=args.space, starts=args.starts, command=" ".join(sys.argv)
    )
    print("picks (true C = {}):".format(report["true_c"]), json.dumps(report["picks"]))
    write_results(args.out, report)
    print(f"wrote {args.out}")
