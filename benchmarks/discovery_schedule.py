"""The discovery schedule before and after, side by side: accuracy, NMI, the curator's actions with
feedback (default+refine) and seconds, per suite set, effort and seed.

    nice -n 10 .venv/bin/python -m benchmarks discovery_schedule                                  # everything
    .venv/bin/python -m benchmarks discovery_schedule --sets digits,grey_textures@12 --efforts standard --seeds 0

"Before" is the engine at `--baseline` (default `main`), extracted with `git archive` and run in its own
process (benchmarks/suite/baseline.py); "after" is this checkout's `discover`. For the `--timed-seeds`
both run in full, one after the other in alternating order, and their discovery seconds are compared;
for the other seeds the baseline takes the shortcut that gives the same labels without its own
standard selection when k-means' partition is kept (its seconds are then not reported), and
`--before-seeds` limits the baseline to some seeds (`--before-seeds ""`: after only) and `--no-feedback`
skips the simulated curator. Set names may be `<set>@<n>`: a class-stratified
subset of `n` images (the small folders). Each "after" run also prints the page's estimate beside its
seconds (the reference estimate times the speed learned from the runs before it in this process, as the
app learns it; of the two figures the page gives for a standard discovery, the one for the runs it made: without
the final runs when k-means' partition was kept). Labels, seconds and the curator's result are cached under `benchmarks/data/suite-runs/`
by code and features. Prints the tables and writes `benchmarks/results/discovery_schedule.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, RESULTS, write_results
from benchmarks.suite import curator, methods
from benchmarks.suite.baseline import warm_up
from benchmarks.suite.cache import RunCache, digest_files, engine_digest, key_of, source_digest
from benchmarks.suite.features import FEATURES_DIR, load_set
from turtle_core.discovery.metrics import evaluate

RUN_CACHE = REPO / "benchmarks" / "data" / "suite-runs"
DEFAULT_OUT = RESULTS / "discovery_schedule.json"
# Tuning half: the sets looked at while the schedule was chosen (convergence of labels with steps and rows
# per step, and the time budget). Held out: the rest, reported here for the first time.
TUNING = ("animal_mnist", "digits", "emoji", "digits@300", "emoji@300")
HELD_OUT = (
    "animal_imbalanced",
    "colour_crops",
    "glyphs",
    "grey_textures",
    "glyphs@300",
    "grey_textures@12",
    "colour_crops@12",
)


def new_discovery(
    features: np.ndarray, n_clusters: int, effort: str, seed: int
) -> tuple[np.ndarray, str, float]:
    from turtle_core.discovery.discover import discover
    from turtle_core.discovery.effort import resolve_effort

    started = time.perf_counter()
    found = discover([features], n_clusters, resolve_effort(effort), random_state=seed)
    return found.labels, found.choice.method, time.perf_counter() - started


def baseline_discovery(
    root: Path, features: np.ndarray, n_clusters: int, effort: str, seed: int, shortcut: bool
) -> tuple[np.ndarray, str, float]:
    with tempfile.TemporaryDirectory() as folder:
        given, out = Path(folder) / "features.npz", Path(folder) / "out.npz"
        np.savez(given, features=features, n_clusters=np.int64(n_clusters))
        command = [sys.executable, str(REPO / "benchmarks/suite/baseline.py"), str(root), str(given), str(out),
                   "--effort", effort, "--seed", str(seed)] + (["--shortcut"] if shortcut else [])  # fmt: skip
        subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(root)})
        with np.load(out) as data:
            return data["labels"], str(data["method"]), float(data["seconds"])


def extract_baseline(commit: str, folder: Path) -> Path:
    """The repository at `commit`, extracted (no git metadata) into `folder`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


class Runs:
    """Cached discoveries and curator results of one set, before and after."""

    def __init__(self, name: str, cache: RunCache, baseline: tuple[str, Path], feedback: bool = True) -> None:
        data = load_set(FEATURES_DIR, name)
        self.name, self.cache, self.baseline, self.with_feedback = name, cache, baseline, feedback
        self.features = np.asarray(data["features"], dtype=np.float32)
        self.truth = np.asarray(data["labels"], dtype=np.int64)
        self.n_clusters = int(data["classes"].size)
        self.digest = _digest(self.features)

    def discovery(self, which: str, effort: str, seed: int, full: bool) -> dict[str, Any]:
        code = label_digest() if which == "after" else self.baseline[0]
        key = key_of(kind="schedule", which=which, code=code, effort=effort, seed=seed, full=full,
                     features=self.digest, adapter=source_digest(new_discovery, baseline_discovery))  # fmt: skip
        run = self.cache.get_json(key)
        if run is None:
            run = self.run_discovery(which, effort, seed, full)
            self.cache.put_json(key, run)
        if which == "after":
            run["reference_s"] = self.reference_seconds(effort, seed, run["method"])
        labels = np.asarray(run["labels"], dtype=np.int64)
        run["feedback"] = self.feedback(labels, seed) if self.with_feedback else None
        return run

    def run_discovery(self, which: str, effort: str, seed: int, full: bool) -> dict[str, Any]:
        if which == "after":
            labels, method, seconds = new_discovery(self.features, self.n_clusters, effort, seed)
        else:
            labels, method, seconds = baseline_discovery(
                self.baseline[1], self.features, self.n_clusters, effort, seed, shortcut=not full
            )
        run = {"method": method, "seconds": None if np.isnan(seconds) else seconds, "labels": labels.tolist(),
               "load": os.getloadavg()[0], **evaluate(self.truth, labels)}  # fmt: skip
        return run

    def reference_seconds(self, effort: str, seed: int, method: str) -> float:
        """The estimate's reference seconds for `discover` at `effort` here (idle 2-core CPU), for the runs it
        made: without the final runs when the stability choice, made before them, kept k-means' partition
        (the page shows both figures before Run)."""
        from dataclasses import replace

        from turtle_core.discovery.effort import choice_before_finals, discovery_plan, resolve_effort
        from turtle_core.discovery.estimate import plan_seconds

        n_rows, dims = self.features.shape
        plan = discovery_plan(resolve_effort(effort), "auto", seed, n_rows)
        if method == "kmeans" and choice_before_finals(plan, self.n_clusters):
            plan = replace(plan, finals=None)
        return plan_seconds(plan, self.n_clusters, n_rows, [dims]).total_s

    def feedback(self, labels: np.ndarray, seed: int) -> dict[str, Any] | None:
        """The simulated curator with feedback from these labels: the product's confidence and refine.
        Cached by the labels, so before and after share it when they found the same partition."""
        from turtle_core.discovery.confidence import label_confidence

        code = source_digest(Runs.feedback, methods.product_refine, curator.simulate_with_feedback)
        key = key_of(kind="schedule-feedback", engine=label_digest(), code=code, seed=seed,
                     features=self.digest, labels=_digest(np.asarray(labels, np.int64)))  # fmt: skip
        cached = self.cache.get_json(key)
        if cached is not None:
            return cached.get("feedback")
        confidence = np.asarray(label_confidence([self.features], labels), dtype=np.float64)
        refine = methods.product_refine(self.features, confidence, seed)
        found = None
        if refine is not None:
            found = curator.simulate_with_feedback(self.truth, labels, confidence, refine).to_dict()
        self.cache.put_json(key, {"feedback": found})
        return found


def label_digest() -> str:
    """The sources a discovery's labels depend on: the engine's, less the estimate and the progress clock."""
    skipped = ("estimate.py", "clock.py")
    files = [p for p in sorted((REPO / "turtle_core/discovery").rglob("*.py")) if p.name not in skipped]
    return digest_files([*files, REPO / "turtle_core/constants.py", REPO / "turtle_core/pca.py"])


class Speed:
    """This machine's discovery speed as the app learns it (`estimate.record_discovery_speed`): half the
    last ratio of actual to reference seconds, half the one before."""

    def __init__(self) -> None:
        self.value: float | None = None

    def estimate(self, reference_s: float) -> float:
        return reference_s * (self.value or 1.0)

    def learn(self, reference_s: float, seconds: float | None) -> None:
        if seconds and reference_s >= 5.0:
            ratio = seconds / reference_s
            self.value = ratio if self.value is None else (ratio + self.value) / 2


def _digest(features: np.ndarray) -> str:
    return hashlib.sha256(features.tobytes()).hexdigest()[:24]


def compare(runs: Runs, effort: str, seed: int, timed: bool, before: bool, speed: Speed) -> dict[str, Any]:
    """After, and before when asked, for one seed; when `timed`, both in full, in alternating order. The
    after run's estimate uses the speed learned from the runs before it, as the app's page would."""
    order = ("before", "after") if seed % 2 == 0 else ("after", "before")
    results: dict[str, Any] = {"before": None}
    for which in [w for w in order if before or w == "after"]:
        started = time.perf_counter()
        result = runs.discovery(which, effort, seed, full=timed or which == "after")
        if which == "after":
            result["estimate_s"] = speed.estimate(result["reference_s"])
            speed.learn(result["reference_s"], result["seconds"])
        results[which] = {k: v for k, v in result.items() if k != "labels"}
        print(f"  {runs.name} {effort} seed {seed} {which}: accuracy {result['accuracy']:.3f} "
              f"({result['method']}, {time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    return results


def summary(rows: list[dict[str, Any]], which: str) -> dict[str, Any] | None:
    def mean(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return float(np.mean(kept)) if kept else None

    runs = [row[which] for row in rows if row[which] is not None]
    if not runs:
        return None
    return {
        "accuracy": mean([r["accuracy"] for r in runs]),
        "accuracy_min": min(r["accuracy"] for r in runs),
        "nmi": mean([r["nmi"] for r in runs]),
        "actions_per_100": mean([r["feedback"]["actions_per_100"] if r["feedback"] else None for r in runs]),
        "seconds": mean([r["seconds"] for r in runs]),
        "kmeans_kept": sum(r["method"] == "kmeans" for r in runs),
    }


def print_table(results: dict[str, Any]) -> None:
    print("\n| set | half | effort | accuracy before → after (min) | NMI before → after | actions/100 with feedback "
          "before → after | seconds before / after (timed seeds) | ratio | k-means kept before / after |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    missing = {"accuracy": float("nan"), "accuracy_min": float("nan"), "nmi": float("nan"),
               "actions_per_100": None, "kmeans_kept": "—"}  # fmt: skip
    for name, entry in results.items():
        for effort, item in entry["efforts"].items():
            b, a = item["before"] or missing, item["after"]
            timed = [r for r in item["runs"] if r["before"] and r["before"]["seconds"] is not None]
            tb = np.mean([r["before"]["seconds"] for r in timed]) if timed else float("nan")
            ta = np.mean([r["after"]["seconds"] for r in timed]) if timed else float("nan")
            actions = f"{_num(b['actions_per_100'])} → {_num(a['actions_per_100'])}"
            print(f"| {name} | {entry['half']} | {effort} | {b['accuracy']:.3f} ({b['accuracy_min']:.3f}) → "
                  f"{a['accuracy']:.3f} ({a['accuracy_min']:.3f}) | {b['nmi']:.3f} → {a['nmi']:.3f} | {actions} | "
                  f"{tb:.1f} / {ta:.1f} | {tb / ta:.2f}× | {b['kmeans_kept']} / {a['kmeans_kept']} |")  # fmt: skip
    print(
        "\n| set | effort | seed | estimate for the runs made (learned speed) | reference (idle) | actual | error | load |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, entry in results.items():
        for effort, item in entry["efforts"].items():
            for run in item["runs"]:
                after = run["after"]
                error = after["estimate_s"] / after["seconds"] - 1
                print(f"| {name} | {effort} | {run['seed']} | {after['estimate_s']:.1f} | {after['reference_s']:.1f} | "
                      f"{after['seconds']:.1f} | {error:+.0%} | {after['load']:.1f} |")  # fmt: skip


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default=",".join(TUNING + HELD_OUT))
    parser.add_argument("--efforts", default="quick,standard")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--timed-seeds", default="0", help="seeds whose baseline runs in full and is timed")
    parser.add_argument(
        "--before-seeds", default=None, help="seeds the baseline runs for (default: every seed)"
    )
    parser.add_argument("--baseline", default="main", help="the commit the schedule is compared with")
    parser.add_argument(
        "--no-feedback",
        action="store_true",
        help="skip the simulated curator (big sets: accuracy and seconds)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    names = [n for n in args.sets.split(",") if n]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    timed_seeds = {int(s) for s in args.timed_seeds.split(",") if s}
    before_seeds = (
        set(seeds) if args.before_seeds is None else {int(s) for s in args.before_seeds.split(",") if s}
    )
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", args.baseline], check=True,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    cache = RunCache(RUN_CACHE)
    speed = Speed()
    warm_up()  # as the baseline's process does before its timed discovery
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        root = extract_baseline(commit, Path(folder))
        for name in names:
            runs = Runs(name, cache, (commit, root), feedback=not args.no_feedback)
            entry = {"half": "tuning" if name in TUNING else "held out", "n_images": int(runs.truth.size),
                     "n_classes": runs.n_clusters, "efforts": {}}  # fmt: skip
            for effort in [e for e in args.efforts.split(",") if e]:
                rows = [
                    compare(runs, effort, seed, seed in timed_seeds, seed in before_seeds, speed)
                    for seed in seeds
                ]
                entry["efforts"][effort] = {"before": summary(rows, "before"), "after": summary(rows, "after"),
                                            "runs": [{"seed": s, **r} for s, r in zip(seeds, rows, strict=True)]}  # fmt: skip
            results[name] = entry
    print_table(results)
    wall = time.perf_counter() - started
    print(f"wall time {wall:.0f} s, load average now {os.getloadavg()[0]:.1f}", flush=True)
    previous = json.loads(args.out.read_text("utf-8")) if args.out.exists() else {}
    write_results(args.out, {"command": " ".join(sys.argv), "baseline": commit, "engine_digest": engine_digest(),
                                 "wall_s": wall, "sets": {**previous.get("sets", {}), **results}})  # fmt: skip


if __name__ == "__main__":
    main()
