"""TURTLE speed: the engine's loop against the reference-style loop on the same features, same run.

    .venv/bin/python -m benchmarks turtle_speed                       # CPU: 10k × 1280, C=10, T=6000
    .venv/bin/python -m benchmarks turtle_speed --device cuda --n 50000 --dims 768,1024 --reference-steps 200

Features are a synthetic Gaussian mixture (one centre set per space, known labels) unless
`--features-dir` names a folder with animal_mnist_lite0.npy (+ lite2 for two spaces) and
animal_mnist_labels.npy. The reference loop runs `--reference-steps` outer steps and its per-step
time is extrapolated to the full schedule (the output says so); give `--reference-steps` equal to
`--steps` to also compare its accuracy. JSON goes to benchmarks/results/turtle_speed[-TAG].json.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import RESULTS, write_results
from benchmarks.reference_loop import reference_turtle
from turtle_core.discovery.metrics import evaluate
from turtle_core.discovery.turtle import Turtle


def gaussian_mixture(
    n: int, dims: list[int], n_clusters: int, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Equal-size Gaussian clusters seen in every space; the centres are far enough apart to be learnable."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_clusters)
    spaces = []
    for d in dims:
        centers = rng.normal(size=(n_clusters, d)) * (3.0 / np.sqrt(d)) * 1.5
        noise = rng.normal(size=(n, d)).astype(np.float32) / np.sqrt(d)
        spaces.append((centers[labels] + noise).astype(np.float32))
    return spaces, labels


def load_features(folder: Path, n_spaces: int) -> tuple[list[np.ndarray], np.ndarray]:
    names = ["lite0", "lite2"][:n_spaces]
    spaces = [np.load(folder / f"animal_mnist_{name}.npy").astype(np.float32) for name in names]
    return spaces, np.load(folder / "animal_mnist_labels.npy")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_engine(
    spaces: list[np.ndarray], labels: np.ndarray, args: argparse.Namespace, steps: int, **params: Any
) -> dict:
    """Fit the engine for `steps` outer steps; per-step time, and quality when the schedule is full."""
    model = Turtle(
        args.clusters,
        outer_steps=steps,
        device=args.device,
        num_threads=args.threads,
        random_state=args.seed,
        **params,
    )
    _sync(args.device)
    started = time.perf_counter()
    model.fit(spaces)
    _sync(args.device)
    seconds = time.perf_counter() - started
    result = {
        "params": dict(params),
        "steps_run": steps,
        "preprocessing": model.preprocessing,
        "n_components": model.n_components,
        "precision": model.precision,
        "warm_start": model.warm_start,
        "init": model.init,
        "seconds": round(seconds, 3),
        "seconds_per_step": seconds / max(steps, 1),
        "seconds_full_schedule": round(seconds / max(steps, 1) * args.steps, 3),
        "extrapolated": steps != args.steps,
    }
    if steps == args.steps:
        result.update({k: round(v, 4) for k, v in evaluate(labels, model.labels_).items()})
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dims", default="1280", help="comma-separated dimensions, one per space")
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--reference-steps", type=int, default=20)
    parser.add_argument(
        "--raw-steps", type=int, default=0, help="steps for the engine on raw features (default: --steps)"
    )
    parser.add_argument(
        "--engine-steps", type=int, default=0, help="steps for the engine's defaults (default: --steps)"
    )
    parser.add_argument("--reference-warm-start", action="store_true", help="reference uses warm start")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both loops")
    parser.add_argument("--features-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    dims = [int(d) for d in args.dims.split(",")]
    if args.features_dir is not None:
        spaces, labels = load_features(args.features_dir, len(dims))
        source = f"Animal-MNIST features from {args.features_dir}"
    else:
        spaces, labels = gaussian_mixture(args.n, dims, args.clusters, args.seed)
        source = "synthetic Gaussian mixture"
    n, dims = spaces[0].shape[0], [X.shape[1] for X in spaces]
    print(f"{source}: N={n}, dims={dims}, C={args.clusters}, T={args.steps}, device={args.device}")

    if args.device.startswith("cuda"):  # CUDA context, cuBLAS handles: not part of either loop's time
        Turtle(args.clusters, outer_steps=50, device=args.device).fit([X[:2000] for X in spaces])
        reference_turtle([X[:2000] for X in spaces], args.clusters, outer_steps=2, device=args.device)

    results: dict[str, Any] = {}
    results["engine_default"] = time_engine(spaces, labels, args, args.engine_steps or args.steps)
    print("engine (defaults)", results["engine_default"])
    results["engine_raw_features"] = time_engine(
        spaces,
        labels,
        args,
        args.raw_steps or args.steps,
        preprocessing="none",
        precision="fp32",
        init="random",
        warm_start=args.reference_warm_start,
    )
    print(
        "engine (reference's features and arithmetic: no preprocessing, fp32)", results["engine_raw_features"]
    )

    ref = reference_turtle(
        spaces,
        args.clusters,
        outer_steps=args.reference_steps,
        warm_start=args.reference_warm_start,
        device=args.device,
        seed=args.seed,
    )
    reference: dict[str, Any] = {
        "warm_start": args.reference_warm_start,
        "steps_run": args.reference_steps,
        "seconds_run": round(ref["seconds"], 3),
        "seconds_per_step": ref["seconds_per_step"],
        "seconds_full_schedule": ref["seconds_per_step"] * args.steps,
        "extrapolated": args.reference_steps != args.steps,
    }
    if args.reference_steps == args.steps:
        reference.update({k: round(v, 4) for k, v in evaluate(labels, ref["labels"]).items()})
    results["reference"] = reference
    note = (
        f"reference timed for {args.reference_steps} steps and extrapolated to {args.steps}"
        if reference["extrapolated"]
        else "reference run for the full schedule"
    )
    if results["engine_default"]["extrapolated"]:
        note += f"; engine (defaults) timed for {args.engine_steps} steps and extrapolated"
    if results["engine_raw_features"]["extrapolated"]:
        note += f"; engine on raw features timed for {args.raw_steps} steps and extrapolated"
    print(f"reference loop: {reference['seconds_per_step']:.4f} s/step ({note})")

    for key in ("engine_default", "engine_raw_features"):
        results[key]["speedup_vs_reference"] = round(
            reference["seconds_per_step"] / results[key]["seconds_per_step"], 2
        )
        print(f"speed-up {key}: {results[key]['speedup_vs_reference']}×")

    payload = {
        "command": " ".join(sys.argv),
        "source": source,
        "n": n,
        "dims": dims,
        "clusters": args.clusters,
        "steps": args.steps,
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else platform.processor(),
        "threads": args.threads,
        "torch": torch.__version__,
        "note": note,
        "results": results,
    }
    out = write_results(RESULTS / f"turtle_speed{'-' + args.tag if args.tag else ''}.json", payload)
    print(f"wrote {out}")
