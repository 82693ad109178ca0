"""The curator-effort suite: discovery quality, confidence AUROC and simulated curator effort per set.

    nice -n 10 .venv/bin/python -m benchmarks curator_suite                          # everything
    .venv/bin/python -m benchmarks curator_suite --sets digits --methods kmeans,kmeans+probe --seeds 0,1,2

Reads `benchmarks/features/suite/<set>.npz` (`python -m benchmarks suite.features`). For each set, method and
seed: labels and confidence from the method's start, Hungarian accuracy / NMI / ARI, seconds, the
AUROC of (1 − confidence) for "wrong after naming", the simulated curator without feedback and (for
methods with a refine) with feedback. Each start and each curator result is cached under
`benchmarks/data/suite-runs/`, keyed by hashes of the features and of the code that made it (the
engine's discovery sources for the product's methods), so a rerun after an unrelated change costs
nothing. Prints a markdown table and writes `benchmarks/results/curator_suite.json` (sets merged in).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DATA, RESULTS, write_results
from benchmarks.suite import curator, methods
from benchmarks.suite.cache import (
    RunCache,
    digest_files,
    discovery_digest,
    engine_digest,
    key_of,
    source_digest,
)
from benchmarks.suite.features import FEATURES_DIR, load_features
from benchmarks.suite.report import aggregate, print_table
from turtle_core.discovery.metrics import evaluate

RUN_CACHE = DATA / "suite-runs"
DEFAULT_OUT = RESULTS / "curator_suite.json"
METHODS = ("kmeans", "kmeans+probe", "default", "default+refine")
EXTRA_METHODS = ("default+probe",)  # the product's start with the anchor's refine: which part helps
NOT_AVAILABLE = "not available (turtle_core.discovery.refine.refine_labels missing)"


def product_discovery(
    features: np.ndarray, n_clusters: int, effort: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly what `Project.run_discovery` does for one space: `discover` with the effort (TURTLE's
    selection, then the stability choice against k-means), and the confidence of the kept labels."""
    from turtle_core.discovery.confidence import label_confidence
    from turtle_core.discovery.discover import discover
    from turtle_core.discovery.effort import resolve_effort

    found = discover([features], n_clusters, resolve_effort(effort), random_state=seed)
    return found.labels, np.asarray(label_confidence([features], found.labels), dtype=np.float64)


class NotCached(LookupError):
    """With --cached-only, a start that was never computed for the current code and features."""


class Suite:
    """Runs (cached) starts and curator simulations for one set's features."""

    def __init__(
        self,
        name: str,
        data: dict[str, np.ndarray],
        features_digest: str,
        cache: RunCache,
        cached_only: bool = False,
    ) -> None:
        self.name = name
        self.features = np.asarray(data["features"], dtype=np.float32)
        self.truth = np.asarray(data["labels"], dtype=np.int64)
        self.n_classes = int(data["classes"].size)
        self.features_digest = features_digest
        self.cache = cache
        self.engine = engine_digest()
        self.discovery = discovery_digest()
        self.cached_only = cached_only

    def start(self, kind: str, effort: str, seed: int) -> tuple[np.ndarray, np.ndarray, float, str]:
        """(labels, confidence, seconds, cache key) of the k-means or the product's discovery."""
        if kind == "kmeans":
            import sklearn

            code = {
                "anchor": source_digest(methods.kmeans_start, methods.l2_normalise),
                "sklearn": sklearn.__version__,
            }
        else:
            code = {"engine": self.discovery, "adapter": source_digest(product_discovery)}
        key = key_of(kind=kind, effort=effort, seed=seed, features=self.features_digest, **code)
        cached = self.cache.get_start(key)
        if cached is not None:
            return (*cached, key)
        if self.cached_only:
            raise NotCached(f"{self.name} {kind} {effort} seed {seed}")
        started = time.perf_counter()
        if kind == "kmeans":
            labels, confidence = methods.kmeans_start(self.features, self.n_classes, seed)
        else:
            labels, confidence = product_discovery(self.features, self.n_classes, effort, seed)
        seconds = time.perf_counter() - started
        self.cache.put_start(key, labels, confidence, seconds)
        return labels, confidence, seconds, key

    def feedback(
        self, refine_kind: str, start_key: str, labels: np.ndarray, confidence: np.ndarray, seed: int
    ) -> dict[str, Any] | None:
        """The curator with feedback (cached), or None when the refine does not exist yet."""
        if refine_kind == "probe":
            code = source_digest(methods.ProbeRefine)
            refine = methods.ProbeRefine(self.features, confidence, seed)
        else:
            code = {"engine": self.engine, "adapter": source_digest(methods.product_refine)}
            refine = methods.product_refine(self.features, confidence, seed)
            if refine is None:
                return None
        key = key_of(
            start=start_key, refine=refine_kind, code=code, sim=source_digest(curator.simulate_with_feedback)
        )
        cached = self.cache.get_json(key)
        if cached is not None:
            return cached
        if self.cached_only:
            raise NotCached(f"{self.name} feedback with {refine_kind} refine, start {start_key}")
        timed = _Timed(refine)
        effort = curator.simulate_with_feedback(self.truth, labels, confidence, timed)
        result = {"effort": effort.to_dict(), "refine_seconds": timed.seconds / max(1, timed.calls)}
        self.cache.put_json(key, result)
        return result

    def run(self, method: str, effort: str, seed: int) -> dict[str, Any]:
        kind = "kmeans" if method.startswith("kmeans") else "default"
        labels, confidence, seconds, key = self.start(kind, effort, seed)
        run: dict[str, Any] = {
            "seed": seed,
            **evaluate(self.truth, labels),
            "seconds": seconds,
            "auroc": _finite_or_none(curator.confidence_auroc(self.truth, labels, confidence)),
            "no_feedback": curator.simulate_without_feedback(self.truth, labels, confidence).to_dict(),
            "feedback": None,
        }
        if "+" in method:
            refine_kind = "probe" if method.endswith("+probe") else "product"
            result = self.feedback(refine_kind, key, labels, confidence, seed)
            if result is None:
                run["feedback_note"] = NOT_AVAILABLE
            else:
                run["feedback"], run["refine_seconds"] = result["effort"], result["refine_seconds"]
        return run


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an undefined AUROC (no image or every image wrong) is stored as null."""
    return None if np.isnan(value) else value


class _Timed:
    """Wraps a refine to measure its mean seconds per call."""

    def __init__(self, refine: curator.RefineFn) -> None:
        self.refine, self.seconds, self.calls = refine, 0.0, 0

    def __call__(
        self, labels: np.ndarray, checked: np.ndarray, origin: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        started = time.perf_counter()
        try:
            return self.refine(labels, checked, origin)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


def method_runs(method: str, efforts: list[str]) -> list[tuple[str, str]]:
    """(row name, effort) pairs: the product's methods once per effort, the anchors once."""
    if method.startswith("default"):
        return [(f"{method}[{effort}]", effort) for effort in efforts]
    return [(method, "-")]


def run_set(
    name: str,
    features_dir: Path,
    method_names: list[str],
    efforts: list[str],
    seeds: list[int],
    cache: RunCache,
    cached_only: bool = False,
) -> dict[str, Any]:
    path = features_dir / f"{name}.npz"
    suite = Suite(name, load_features(path), digest_files([path]), cache, cached_only)
    counts = np.bincount(suite.truth, minlength=suite.n_classes)
    entry: dict[str, Any] = {
        "n_images": int(suite.truth.size),
        "n_classes": suite.n_classes,
        "largest_smallest": float(counts.max() / max(1, counts.min())),
        "methods": {},
    }
    for method in method_names:
        for row, effort in method_runs(method, efforts):
            runs = []
            for seed in seeds:
                started = time.perf_counter()
                try:
                    runs.append(suite.run(method, effort, seed))
                except NotCached as missing:
                    print(f"  not cached, skipped: {missing}", flush=True)
                    continue
                print(f"  {name} {row} seed {seed}: accuracy {runs[-1]['accuracy']:.3f} "
                      f"({time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip
            if runs:
                entry["methods"][row] = {"summary": aggregate(runs), "runs": runs}
    return entry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="", help="comma-separated (default: every set with features)")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"of {', '.join(METHODS + EXTRA_METHODS)}"
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--effort", default="standard,quick", help="efforts for the product's methods")
    parser.add_argument("--features", type=Path, default=FEATURES_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="compute no discovery: report the starts already cached for the current code (others skipped)",
    )
    args = parser.parse_args(argv)
    method_names = [m for m in args.methods.split(",") if m]
    unknown = [m for m in method_names if m not in METHODS + EXTRA_METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}")
    available = sorted(p.stem for p in args.features.glob("*.npz"))
    names = [n for n in args.sets.split(",") if n] or available
    missing = [n for n in names if n not in available]
    if missing:
        print(
            f"no features for {', '.join(missing)} (run python -m benchmarks suite.features); skipped",
            flush=True,
        )
    names = [n for n in names if n in available]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    efforts = [e for e in args.effort.split(",") if e]

    started = time.perf_counter()
    cache = RunCache(RUN_CACHE)
    results: dict[str, Any] = {}
    for name in names:
        print(f"{name}:", flush=True)
        results[name] = run_set(
            name, args.features, method_names, efforts, seeds, cache, cached_only=args.cached_only
        )
    wall = time.perf_counter() - started
    print_table(
        {
            name: {"methods": {m: v["summary"] for m, v in entry["methods"].items()}}
            for name, entry in results.items()
        }
    )
    print(f"wall time {wall:.0f} s", flush=True)

    previous = json.loads(args.out.read_text("utf-8")) if args.out.exists() else {}
    merged_sets = previous.get("sets", {})
    for name, entry in results.items():
        kept = merged_sets.get(name, {}).get("methods", {})
        merged_sets[name] = {**entry, "methods": {**kept, **entry["methods"]}}
    write_results(args.out, {
        "command": " ".join(sys.argv),
        "wall_s": wall,
        "seeds": seeds,
        "engine_digest": engine_digest(),
        "sets": merged_sets,
    })  # fmt: skip
