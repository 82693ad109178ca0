"""A new user's first hour on the demo: demo-to-result and the first map, old settings against new, side by side.

    .venv/bin/python -m benchmarks first_hour                          # every part
    .venv/bin/python -m benchmarks first_hour --parts embed,umap --features-dir DIR

Parts (results merge into `results/first_hour.json`, with the load average, since the machine is shared):
- `embed`: Lite0 images/s on the demo's PNGs, the old model layout (NCHW) against channels-last, in
  alternating rounds over the same images (no cache), so both see the same load.
- `discover`: the demo's 2,000 images, TURTLE with the quick and the standard effort: accuracy and seconds.
- `umap`: the first UMAP layout of the demo in a fresh process (import + numba compilation + fit), the
  old settings against the new, each run twice alternately.
- `end_to_end`: the real engine from an empty `$TURTLE_HOME`: write the demo folder, open, scan, embed,
  discover with the effort the demo's first run uses; seconds per stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import FEATURES, REPO, RESULTS, load_average, write_results

OUT = RESULTS / "first_hour.json"
OLD_UMAP = {"random_state": 42, "pca_dims": 50}
# The candidate: UMAP's own epoch count above 10k points.
NEW_UMAP = {"random_state": 42, "pca_dims": 50, "n_epochs": 200}


def part_embed(rounds: int, per_round: int) -> dict[str, object]:
    import torch

    from turtle_core.embedding.backbones import load_backbone
    from turtle_core.embedding.embed import embed_images
    from turtle_core.ingest.demo import write_demo_folder
    from turtle_core.ingest.scan import scan_folder

    folder = write_demo_folder(per_class=200)
    records = scan_folder(folder).images
    new = load_backbone("effnet-lite0", device="cpu")
    old_model = load_backbone("effnet-lite0", device="cpu").model.to(memory_format=torch.contiguous_format)
    old = dataclasses.replace(new, model=old_model, channels_last=False)
    rates: dict[str, list[float]] = {"old (NCHW)": [], "new (channels-last)": []}
    same = None
    for r in range(rounds):
        chunk = records[r * per_round : (r + 1) * per_round]
        for name, backbone in (("old (NCHW)", old), ("new (channels-last)", new)):
            started = time.perf_counter()
            result = embed_images(folder, chunk, backbone, cache=None)
            rates[name].append(round(result.computed / (time.perf_counter() - started), 2))
            if name.startswith("old"):
                reference = result.vectors
            else:
                same = float(np.abs(result.vectors - reference).max())
        print("embed round", r, {k: v[-1] for k, v in rates.items()}, flush=True)
    mean = {k: round(float(np.mean(v)), 2) for k, v in rates.items()}
    return {
        "images_per_round": per_round,
        "images_per_s": rates,
        "images_per_s_mean": mean,
        "speed_up": round(mean["new (channels-last)"] / mean["old (NCHW)"], 2),
        "max_abs_feature_difference": same,
        "torch_threads": torch.get_num_threads(),
        "load_average_after": load_average(),
    }


def part_discover(features_dir: Path, seeds: list[int], efforts: list[str]) -> dict[str, object]:
    from turtle_core.discovery.effort import EFFORTS
    from turtle_core.discovery.metrics import evaluate
    from turtle_core.discovery.selection import select_model

    X = np.load(features_dir / "animal_mnist_effnet-lite0.npy")
    y = np.load(features_dir / "animal_mnist_labels.npy")
    out: dict[str, object] = {"n_images": int(len(y))}
    for effort in efforts:
        runs = []
        for seed in seeds:
            started = time.perf_counter()
            best = select_model([X], 10, random_state=seed, **EFFORTS[effort].select_kwargs()).best
            seconds = time.perf_counter() - started
            metrics = evaluate(y, np.asarray(best.labels_))
            runs.append(
                {"seed": seed, "seconds": round(seconds, 1), **{k: round(v, 4) for k, v in metrics.items()}}
            )
            print("discover", effort, runs[-1], flush=True)
        out[effort] = {
            "runs": runs,
            "accuracy_mean": round(float(np.mean([r["accuracy"] for r in runs])), 4),
            "seconds_mean": round(float(np.mean([r["seconds"] for r in runs])), 1),
            "load_average_after": load_average(),
        }
    return out


_UMAP_CHILD = """
import json, sys, time, warnings
started = time.perf_counter()
import numpy as np
from turtle_core.maps.layouts import concat_spaces, umap_layout
X = concat_spaces([np.load(sys.argv[1])])
params = json.loads(sys.argv[2])
layout = umap_layout(X, **params)
seconds = time.perf_counter() - started
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
y = np.load(sys.argv[3])
knn = cross_val_score(KNeighborsClassifier(10), layout, y, cv=5).mean()
print(json.dumps({"seconds": round(seconds, 1), "knn10_accuracy_2d": round(float(knn), 3)}))
"""


def part_umap(features_dir: Path, repeats: int) -> dict[str, object]:
    configs = {"old": OLD_UMAP, "new": NEW_UMAP}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, params in configs.items():
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _UMAP_CHILD,
                    str(features_dir / "animal_mnist_effnet-lite0.npy"),
                    json.dumps(params),
                    str(features_dir / "animal_mnist_labels.npy"),
                ],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name].append({**json.loads(done.stdout.strip().splitlines()[-1]), "load": load_average()[0]})
            print("umap", name, runs[name][-1], flush=True)
    mean = {name: round(float(np.mean([r["seconds"] for r in rs])), 1) for name, rs in runs.items()}
    return {
        "settings": configs,
        "runs": runs,
        "seconds_mean": mean,
        "ratio_old_over_new": round(mean["old"] / mean["new"], 2),
    }


def part_end_to_end(effort: str | None) -> dict[str, object]:
    from turtle_core.discovery.effort import DEMO_EFFORT
    from turtle_core.ingest.demo import write_demo_folder
    from turtle_core.operations.project import Project
    from turtle_core.progress import Progress

    effort = effort or DEMO_EFFORT
    home = tempfile.mkdtemp(prefix="first-hour-")
    os.environ["TURTLE_HOME"] = home  # an empty engine home: nothing cached, as for a new user
    stages: dict[str, float] = {}
    started = time.perf_counter()

    def progress(report: Progress) -> None:
        stages.setdefault(report.stage, time.perf_counter() - started)

    folder = write_demo_folder(per_class=200)
    stages["demo folder written"] = time.perf_counter() - started
    project = Project.open(folder)
    result = project.run_discovery(10, progress=progress, effort=effort)
    total = time.perf_counter() - started
    return {
        "effort": effort,
        "seconds_total": round(total, 1),
        "stage_started_at_s": {k: round(v, 1) for k, v in stages.items()},
        "accuracy": round(float((result.metrics or {}).get("accuracy", float("nan"))), 4),
        "load_average_after": load_average(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="embed,discover,umap,end_to_end")
    parser.add_argument("--features-dir", type=Path, default=FEATURES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=96)
    parser.add_argument("--seeds", default="0,100,200")
    parser.add_argument("--efforts", default="quick,standard")
    parser.add_argument("--umap-repeats", type=int, default=2)
    parser.add_argument("--effort", default=None, help="end_to_end: effort (default: the demo's)")
    args = parser.parse_args(argv)
    report: dict[str, dict[str, object]] = {}
    for part in args.parts.split(","):
        started = time.perf_counter()
        if part == "embed":
            report[part] = part_embed(args.rounds, args.per_round)
        elif part == "discover":
            seeds = [int(s) for s in args.seeds.split(",")]
            report[part] = part_discover(args.features_dir, seeds, args.efforts.split(","))
        elif part == "umap":
            report[part] = part_umap(args.features_dir, args.umap_repeats)
        elif part == "end_to_end":
            report[part] = part_end_to_end(args.effort)
        else:
            raise SystemExit(f"unknown part {part!r}")
        report[part]["wall_s"] = round(time.perf_counter() - started, 1)
        report[part]["load_average_before_next"] = load_average()
        # Re-read before writing: parts may run in separate processes at once.
        merged = json.loads(OUT.read_text()) if OUT.exists() else {}
        merged[part] = report[part]
        write_results(OUT, merged)
        print(part, json.dumps(report[part]), flush=True)
