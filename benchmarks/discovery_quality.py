"""Discovery quality on Animal-MNIST (10,000 images, 10 classes) embedded with EfficientNet-Lite0/Lite2.

    .venv/bin/python -m benchmarks discovery_quality --features-dir benchmarks/features
    .venv/bin/python -m benchmarks discovery_quality --parts default,kmeans          # the headline only

Compares the engine's default discovery (`select_model` with its defaults: no label is used to
choose anything) on one space (Lite0) and two spaces (Lite0 + Lite2) with k-means (raw and
L2-normalised features): Hungarian accuracy, NMI, ARI, seconds. Optional parts: a table of TURTLE
variants (preprocessing, γ, spaces, warm/cold...), the reference-style loop, and how well the
label-free choice of C works (Animal-MNIST over a C range; synthetic blobs with several true C).
Without `--features-dir` the features are computed through the engine (the `embed_dataset` benchmark)
into benchmarks/features/ first. JSON: benchmarks/results/discovery_quality.json (parts merge in).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import FEATURES, RESULTS, write_results
from turtle_core.discovery.effort import EFFORTS
from turtle_core.discovery.metrics import evaluate, kmeans_baseline
from turtle_core.discovery.selection import choose, select_model
from turtle_core.discovery.turtle import Turtle

OUT = RESULTS / "discovery_quality.json"
PARTS = (
    "default",
    "quick",
    "kmeans",
    "demo",
    "screening",
    "variants",
    "restarts",
    "reference",
    "c_range",
    "synthetic_c",
)
# Measured earlier on other Lite0 features (the engine's CPU resizing makes slightly different ones).
FACTS = {
    "k-means raw Lite0 (earlier, other features)": {"accuracy": 0.690, "nmi": 0.611},
    "k-means L2 Lite0 (earlier, other features)": {"accuracy": 0.602, "nmi": 0.587},
    "reference-style TURTLE Lite0 cold, T=6000 (earlier, other features)": {"accuracy": 0.597, "nmi": 0.566},
    "reference-style TURTLE Lite0 warm, T=6000 (earlier, other features)": {"accuracy": 0.660, "nmi": 0.644},
    "reference-style TURTLE Lite0+Lite2 warm, T=6000 (earlier, other features)": {
        "accuracy": 0.644,
        "nmi": 0.654,
    },
}

# One fit each (no selection, seed 0): what moves the quality. Name → (spaces, Turtle parameters).
# Single runs vary by about ±0.05 accuracy with the seed; the `restarts` part measures that spread.
_RANDOM = {"init": "random"}
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "raw features, random init (the paper's setting)": ("lite0", {"preprocessing": "none", **_RANDOM}),
    "whiten-256, random init": ("lite0", {"n_components": 256, **_RANDOM}),
    "whiten-128, random init": ("lite0", {"n_components": 128, **_RANDOM}),
    "whiten-64, random init": ("lite0", {"n_components": 64, **_RANDOM}),
    "pca-256 (no whitening), random init": (
        "lite0",
        {"preprocessing": "pca", "n_components": 256, **_RANDOM},
    ),
    "whiten-256, random init, γ=5": ("lite0", {"n_components": 256, "gamma": 5.0, **_RANDOM}),
    "whiten-256, random init, γ=20": ("lite0", {"n_components": 256, "gamma": 20.0, **_RANDOM}),
    "whiten-256, random init, cold start (inner lr 1e-2)": (
        "lite0",
        {"n_components": 256, "warm_start": False, "inner_lr": 1e-2, **_RANDOM},
    ),
    "whiten-64, k-means init (engine default)": ("lite0", {}),
    "whiten-256, k-means init": ("lite0", {"n_components": 256}),
    "two spaces, raw features, random init": ("lite0+lite2", {"preprocessing": "none", **_RANDOM}),
    "two spaces, whiten-256, random init": ("lite0+lite2", {"n_components": 256, **_RANDOM}),
    "two spaces, whiten-64, random init": ("lite0+lite2", {"n_components": 64, **_RANDOM}),
    "two spaces, whiten-64, k-means init (engine default)": ("lite0+lite2", {}),
    "two spaces, whiten-32, k-means init": ("lite0+lite2", {"n_components": 32}),
    "two spaces, whiten-128, k-means init": ("lite0+lite2", {"n_components": 128}),
    "two spaces, whiten-256, k-means init": ("lite0+lite2", {"n_components": 256}),
}


def load_features(folder: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`animal_mnist_{lite0,lite2}.npy` (or the engine's `animal_mnist_effnet-lite{0,2}.npy`) and labels."""
    spaces = {}
    for name in ("lite0", "lite2"):
        for candidate in (f"animal_mnist_{name}.npy", f"animal_mnist_effnet-{name}.npy"):
            if (folder / candidate).exists():
                spaces[name] = np.load(folder / candidate).astype(np.float32)
                break
        else:
            raise FileNotFoundError(f"no features for {name} in {folder}")
    return spaces, np.load(folder / "animal_mnist_labels.npy").astype(np.int64)


def compute_features(folder: Path) -> Path:
    """Embed the bundled Animal-MNIST through the engine (cached) unless `folder` already has the features."""
    try:
        load_features(folder)
        return folder
    except FileNotFoundError:
        from benchmarks.embed_dataset import embed_animal_mnist

        embed_animal_mnist(1000, ["effnet-lite0", "effnet-lite2"], folder)
        return folder


def space_list(spaces: dict[str, np.ndarray], key: str) -> list[np.ndarray]:
    return [spaces[name] for name in key.split("+")]


def _row(name: str, labels: np.ndarray, truth: np.ndarray, seconds: float, **extra: Any) -> dict[str, Any]:
    row = {
        "name": name,
        **{k: round(v, 4) for k, v in evaluate(truth, labels).items()},
        "seconds": round(seconds, 1),
    }
    row.update(extra)
    print(json.dumps(row), flush=True)
    return row


def _summary(name: str, runs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Mean, min and max of accuracy / NMI / ARI over runs (seeds), printed and returned with the runs."""
    row: dict[str, Any] = {"name": name, **extra}
    for metric in ("accuracy", "nmi", "ari"):
        values = np.array([r[metric] for r in runs])
        row[f"{metric}_mean"] = round(float(values.mean()), 4)
        row[f"{metric}_min"] = round(float(values.min()), 4)
        row[f"{metric}_max"] = round(float(values.max()), 4)
    row["seconds_mean"] = round(float(np.mean([r["seconds"] for r in runs])), 1)
    print(json.dumps(row), flush=True)
    row["runs"] = runs
    return row


def default_discovery(
    spaces: dict[str, np.ndarray],
    truth: np.ndarray,
    n_clusters: int,
    keys: Sequence[str] = ("lite0", "lite0+lite2"),
    seeds: Sequence[int] = (0, 100, 200),
    label: str = "default",
    **select_kwargs: Any,
) -> list[dict[str, Any]]:
    """The engine's default discovery (`select_model` defaults, or `select_kwargs`), once per seed,
    per space set."""
    rows = []
    for key in keys:
        runs = []
        for seed in seeds:
            started = time.perf_counter()
            result = select_model(space_list(spaces, key), n_clusters, random_state=seed, **select_kwargs)
            seconds = time.perf_counter() - started
            full = [
                {
                    "params": c.params,
                    "score": round(c.score, 4),
                    **{k: round(v, 4) for k, v in evaluate(truth, c.labels).items()},
                }
                for c in result.candidates
            ]
            screened = [
                {
                    "seed": c.params["random_state"],
                    "score": round(c.score, 4),
                    "accuracy": round(evaluate(truth, c.labels)["accuracy"], 4),
                }
                for c in result.screened
            ]
            runs.append(
                _row(
                    f"TURTLE {label} discovery, {key}, random_state={seed}",
                    result.best.labels_,
                    truth,
                    seconds,
                    chosen_params=result.best_params,
                    full_runs=full,
                    screened=screened,
                )
            )
        rows.append(_summary(f"TURTLE {label} discovery, {key}", runs, spaces=key, seeds=list(seeds)))
    return rows


def kmeans_rows(
    spaces: dict[str, np.ndarray],
    truth: np.ndarray,
    n_clusters: int,
    keys: Sequence[str] = ("lite0", "lite0+lite2"),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
) -> list[dict[str, Any]]:
    """k-means (n_init=10, raw and L2-normalised), once per seed, per space set."""
    rows = []
    for key in keys:
        for normalize in (False, True):
            name = f"k-means {'L2-normalised' if normalize else 'raw'}, {key}"
            runs = []
            for seed in seeds:
                started = time.perf_counter()
                labels = kmeans_baseline(
                    space_list(spaces, key), n_clusters, normalize=normalize, random_state=seed
                )
                runs.append(
                    _row(f"{name}, random_state={seed}", labels, truth, time.perf_counter() - started)
                )
            rows.append(_summary(name, runs, spaces=key, seeds=list(seeds)))
    return rows


def variant_rows(
    spaces: dict[str, np.ndarray], truth: np.ndarray, n_clusters: int, outer_steps: int
) -> list[dict[str, Any]]:
    rows = []
    for name, (key, params) in VARIANTS.items():
        started = time.perf_counter()
        model = Turtle(n_clusters, outer_steps=outer_steps, random_state=0, **params).fit(
            space_list(spaces, key)
        )
        rows.append(
            _row(
                name,
                model.labels_,
                truth,
                time.perf_counter() - started,
                spaces=key,
                params=params,
                T=outer_steps,
            )
        )
    return rows


def restart_rows(
    spaces: dict[str, np.ndarray], truth: np.ndarray, n_clusters: int, n_seeds: int = 6
) -> list[dict[str, Any]]:
    """The default Turtle with `n_seeds` seeds: spread of single runs, and what the label-free score picks
    among the first 3 (the default number of restarts) and among all."""
    rows = []
    for key in ("lite0", "lite0+lite2"):
        started = time.perf_counter()
        result = select_model(
            space_list(spaces, key), n_clusters, n_restarts=n_seeds, random_state=0, tolerance=0.0
        )
        runs = [
            {
                "seed": c.params["random_state"],
                "kappa": round(c.kappa, 4),
                **{k: round(v, 4) for k, v in evaluate(truth, c.labels).items()},
            }
            for c in result.candidates
        ]
        accuracy = np.array([r["accuracy"] for r in runs])
        kappa = np.array([r["kappa"] for r in runs])
        pick3 = max(runs[:3], key=lambda r: r["kappa"])
        row = {
            "name": f"default Turtle, {n_seeds} seeds, {key}",
            "spaces": key,
            "runs": runs,
            "accuracy_mean": round(float(accuracy.mean()), 4),
            "accuracy_std": round(float(accuracy.std()), 4),
            "nmi_mean": round(float(np.mean([r["nmi"] for r in runs])), 4),
            "pearson_kappa_accuracy": round(float(np.corrcoef(kappa, accuracy)[0, 1]), 3),
            "picked_among_first_3": pick3,
            "picked_among_all": max(runs, key=lambda r: r["kappa"]),
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps({k: v for k, v in row.items() if k != "runs"}), flush=True)
        rows.append(row)
    return rows


def screening_study(
    spaces: dict[str, np.ndarray],
    truth: np.ndarray,
    n_clusters: int,
    seeds: Sequence[int] = tuple(range(200, 216)),
    steps: Sequence[int] = (100, 300),
) -> dict[str, Any]:
    """What screening sees (Lite0): per k-means start (Euclidean and cosine, one k-means++ start each)
    the start's accuracy, and after `steps` TURTLE steps the accuracy and the score that ranks it."""
    from turtle_core.discovery.features import SpacePreprocessor
    from turtle_core.discovery.selection import generalization_details
    from turtle_core.discovery.turtle import kmeans_init_labels

    X = spaces["lite0"]
    pre = SpacePreprocessor("whiten", 64).fit(X)
    features = [pre.transform(X)]
    rows = []
    for cosine in (False, True):
        for seed in seeds:
            start = kmeans_init_labels([X], n_clusters, seed, cosine=cosine)
            row: dict[str, Any] = {
                "geometry": "cosine" if cosine else "euclidean",
                "seed": seed,
                "start_accuracy": round(evaluate(truth, start)["accuracy"], 4),
            }
            for T in steps:
                model = Turtle(n_clusters, outer_steps=T, random_state=seed)
                model._fit_prepared(features, [pre], [X.shape[1]], start)
                row[f"accuracy_T{T}"] = round(evaluate(truth, model.labels_)["accuracy"], 4)
                row[f"kappa_T{T}"] = round(generalization_details(features, model.labels_).kappa, 4)
            print(json.dumps(row), flush=True)
            rows.append(row)
    summary: dict[str, Any] = {}
    for T in steps:
        ranked = sorted(rows, key=lambda r: r[f"kappa_T{T}"], reverse=True)
        summary[f"accuracy_of_top3_by_kappa_T{T}"] = [r[f"accuracy_T{T}"] for r in ranked[:3]]
    for geometry in ("euclidean", "cosine"):
        own = [r for r in rows if r["geometry"] == geometry]
        summary[f"{geometry}_starts_reaching_0.75_at_T{max(steps)}"] = sum(
            r[f"accuracy_T{max(steps)}"] >= 0.75 for r in own
        )
    print(json.dumps(summary), flush=True)
    return {"rows": rows, "summary": summary, "n_starts_per_geometry": len(seeds)}


def reference_rows(spaces: dict[str, np.ndarray], truth: np.ndarray, n_clusters: int) -> list[dict[str, Any]]:
    from benchmarks.reference_loop import reference_turtle

    rows = []
    for key, warm in (("lite0", False), ("lite0", True)):
        out = reference_turtle(space_list(spaces, key), n_clusters, warm_start=warm)
        name = f"reference-style loop, {key}, {'warm' if warm else 'cold'}, T=6000"
        rows.append(_row(name, out["labels"], truth, out["seconds"], spaces=key))
    return rows


def c_choice(
    spaces: Sequence[np.ndarray], truth: np.ndarray, c_range: tuple[int, int], **select_kwargs: Any
) -> dict[str, Any]:
    """One `select_model` over a C range; the picks of the raw and the chance-corrected criteria."""
    result = select_model(spaces, c_range, random_state=0, **select_kwargs)
    picks = {}
    for criterion in ("accuracy", "kappa"):
        rescored = [
            dataclasses.replace(c, score=c.accuracy if criterion == "accuracy" else c.kappa)
            for c in result.candidates
        ]
        picks[criterion] = choose(rescored).n_clusters
    per_c = {
        c.n_clusters: {
            "probe_accuracy": round(c.accuracy, 4),
            "kappa": round(c.kappa, 4),
            "used": c.n_used,
            "true_accuracy": round(evaluate(truth, c.labels)["accuracy"], 4),
        }
        for c in result.candidates
    }
    return {"true_c": int(len(np.unique(truth))), "picked": picks, "per_c": per_c}


def c_range_study(
    spaces: dict[str, np.ndarray],
    truth: np.ndarray,
    c_range: tuple[int, int],
    outer_steps: int,
    key: str = "lite0+lite2",
) -> dict[str, Any]:
    started = time.perf_counter()
    out = c_choice(space_list(spaces, key), truth, c_range, turtle_params={"outer_steps": outer_steps})
    out.update(
        spaces=key,
        c_range=list(c_range),
        T=outer_steps,
        seconds=round(time.perf_counter() - started),
    )
    print(json.dumps(out), flush=True)
    return out


def blobs(
    n: int, n_clusters: int, dims: Sequence[int], sep: float, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.permutation(np.arange(n) % n_clusters)
    spaces = []
    for d in dims:
        centers = rng.normal(size=(n_clusters, d)) * sep
        spaces.append((centers[truth] + rng.normal(size=(n, d))).astype(np.float32))
    return spaces, truth


def synthetic_c_study(seeds: Sequence[int] = (0, 1)) -> dict[str, Any]:
    """Blobs with several true C (well separated and overlapping): how often each criterion picks the truth."""
    runs = []
    for true_c in (3, 4, 6, 8, 10):
        for sep in (4.0, 1.0):
            for seed in seeds:
                spaces, truth = blobs(1200, true_c, (16, 24), sep, seed)
                out = c_choice(
                    spaces, truth, (2, 12), grid=[{"warm_start": True}], turtle_params={"outer_steps": 300}
                )
                out.update(sep=sep, seed=seed)
                print(json.dumps({k: out[k] for k in ("true_c", "sep", "seed", "picked")}), flush=True)
                runs.append(out)
    hits = {crit: sum(r["picked"][crit] == r["true_c"] for r in runs) for crit in ("accuracy", "kappa")}
    return {"runs": runs, "correct": hits, "total": len(runs)}


def demo_rows(
    spaces: dict[str, np.ndarray],
    truth: np.ndarray,
    n_clusters: int,
    keys: Sequence[str],
    per_class: int = 200,
) -> dict[str, Any]:
    """The app's default demo folder (`write_demo_folder(per_class=200)`: 2,000 images): default and
    quick discovery and k-means on its rows of the features."""
    from turtle_core.ingest.demo import demo_indices

    rows = np.concatenate(list(demo_indices(truth, per_class).values()))
    subset = {name: X[rows] for name, X in spaces.items()}
    return {
        "per_class": per_class,
        "default": default_discovery(subset, truth[rows], n_clusters, keys),
        "quick": default_discovery(
            subset, truth[rows], n_clusters, keys, label="quick-effort", **EFFORTS["quick"].select_kwargs()
        ),
        "kmeans": kmeans_rows(subset, truth[rows], n_clusters, keys),
    }


def run_quality(
    spaces: dict[str, np.ndarray],
    truth: np.ndarray,
    *,
    parts: Sequence[str] = ("default", "kmeans"),
    n_clusters: int = 10,
    variant_steps: int = 2000,
    c_range: tuple[int, int] = (5, 15),
    c_steps: int = 2000,
    keys: Sequence[str] = ("lite0", "lite0+lite2"),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the requested parts on the given features (`spaces`: {"lite0": N×d, "lite2": N×d})."""
    report: dict[str, Any] = {}
    if "default" in parts:
        log("== default discovery")
        report["default"] = default_discovery(spaces, truth, n_clusters, keys)
    if "quick" in parts:
        log("== quick-effort discovery")
        report["quick"] = default_discovery(
            spaces, truth, n_clusters, keys, label="quick-effort", **EFFORTS["quick"].select_kwargs()
        )
    if "kmeans" in parts:
        log("== k-means")
        report["kmeans"] = kmeans_rows(spaces, truth, n_clusters, keys)
    if "screening" in parts:
        log("== what screening sees")
        report["screening"] = screening_study(spaces, truth, n_clusters)
    if "variants" in parts:
        log("== variants")
        report["variants"] = variant_rows(spaces, truth, n_clusters, variant_steps)
    if "restarts" in parts:
        log("== seeds of the default Turtle and the score's pick")
        report["restarts"] = restart_rows(spaces, truth, n_clusters)
    if "reference" in parts:
        log("== reference-style loop (slow)")
        report["reference"] = reference_rows(spaces, truth, n_clusters)
    if "demo" in parts:
        log("== the app's demo (200 images per class)")
        report["demo"] = demo_rows(spaces, truth, n_clusters, keys)
    if "c_range" in parts:
        log("== choice of C on Animal-MNIST")
        report["c_range"] = c_range_study(spaces, truth, c_range, c_steps, keys[0])
    if "synthetic_c" in parts:
        log("== choice of C on synthetic blobs")
        report["synthetic_c"] = synthetic_c_study()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features-dir", type=Path, default=None)
    parser.add_argument(
        "--parts", default="default,kmeans,variants", help=f"comma-separated subset of {PARTS}"
    )
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--variant-steps", type=int, default=2000)
    parser.add_argument("--c-range", default="5,15")
    parser.add_argument("--c-steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--spaces", default="lite0,lite0+lite2", help="space sets for default and kmeans (comma-separated)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    torch.set_num_threads(args.threads)
    folder = args.features_dir or compute_features(FEATURES)
    spaces, truth = load_features(folder)
    lo, hi = (int(v) for v in args.c_range.split(","))
    report = run_quality(
        spaces,
        truth,
        parts=parts,
        n_clusters=args.clusters,
        variant_steps=args.variant_steps,
        c_range=(lo, hi),
        c_steps=args.c_steps,
        keys=args.spaces.split(","),
    )
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    previous.update(report)
    previous["facts"] = FACTS
    previous["features"] = {name: list(X.shape) for name, X in spaces.items()}
    previous["last_command"] = " ".join(sys.argv)
    write_results(args.out, previous)
    print(f"wrote {args.out}")
