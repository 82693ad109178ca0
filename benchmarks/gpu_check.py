"""GPU check: the CUDA paths that CPU tests cannot reach, in one short run (skips cleanly without CUDA).

    .venv/bin/python -m benchmarks gpu_check                  # JSON: benchmarks/results/gpu_check.json
    .venv/bin/python -m benchmarks gpu_check --out /tmp/x.json --steps 1000 --images 300

1. TURTLE with and without CUDA graphs on the same data and seed: both accuracies, their agreement,
   whether the graph was used or its self-check fell back (the warning is recorded), times.
2. bf16 precision: accuracy and time against fp32.
3. Two fits in two threads at once (each captures a graph while the other runs): both must finish
   with the accuracy of a lone fit; wall time against the two run one after the other.
4. One fit while an embedding runs in another thread (the app's discovery + a second project).
5. Embedding a few hundred generated images with the offline backbone: all vectors finite, time
   computed and time from the cache.
Steps 1-5 are the part `basic`; `scale`, `imagenet` and `embedding` are issue 18's device targets
(`benchmarks/gpu_scale.py`). Each part's result is written as soon as it is done.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import gpu_scale
from benchmarks.common import RESULTS, timed, write_results
from benchmarks.gpu_scale import sync_device

DEFAULT_OUT = RESULTS / "gpu_check.json"
DEVICE = "cuda"  # `--device cpu` runs the same steps on the CPU, to check this script itself


def sync() -> None:
    sync_device(DEVICE)


def mixture(n: int, dims: list[int], n_clusters: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Separable Gaussian clusters seen in every space (known labels)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % n_clusters)
    spaces = []
    for d in dims:
        centres = rng.normal(size=(n_clusters, d)) * (4.5 / np.sqrt(d))
        spaces.append((centres[labels] + rng.normal(size=(n, d)) / np.sqrt(d)).astype(np.float32))
    return spaces, labels


def timed_with_warnings(fn: Callable[[], Any]) -> tuple[Any, float, list[str]]:
    """Result, seconds (device synchronised) and the warnings raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        timing = timed(fn, sync=sync)
    return timing.result, timing.seconds, [str(w.message) for w in caught]


def fit(
    spaces: list[np.ndarray], labels: np.ndarray, args: argparse.Namespace, **kwargs: Any
) -> dict[str, Any]:
    from turtle_core.discovery.metrics import evaluate
    from turtle_core.discovery.turtle import Turtle

    def run() -> Any:
        params = {"n_clusters": args.clusters, "outer_steps": args.steps, "device": DEVICE, "random_state": 0}
        return Turtle(**{**params, **kwargs}).fit(spaces)

    model, seconds, caught = timed_with_warnings(run)
    return {
        "seconds": round(seconds, 3),
        "accuracy": round(evaluate(labels, model.labels_)["accuracy"], 4),
        "warnings": caught,
        "graph_fell_back": any("graph" in message for message in caught),
        "labels": model.labels_,
    }


def in_threads(jobs: list[Callable[[], Any]]) -> tuple[list[Any], float]:
    """Run `jobs` at once, one thread each; results (or the error text) and the wall time."""
    results: list[Any] = [None] * len(jobs)

    def worker(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except Exception:  # noqa: BLE001 - the report says what failed
            results[i] = {"error": traceback.format_exc(limit=4)}

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    sync()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sync()
    return results, time.perf_counter() - started


def image_folder(root: Path, n: int) -> Path:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for i in range(n):
        kind = ("discs", "squares", "bars")[i % 3]
        (root / kind).mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (96, 96), tuple(int(v) for v in rng.integers(0, 255, 3)))
        draw = ImageDraw.Draw(image)
        x, y = (int(v) for v in rng.integers(5, 50, 2))
        shape = (x, y, x + 40, y + (40 if kind != "bars" else 10))
        (draw.ellipse if kind == "discs" else draw.rectangle)(shape, fill=(255, 255, 255))
        image.save(root / kind / f"{i:04d}.png")
    return root


def embed(folder: Path, cache_root: Path) -> dict[str, Any]:
    from turtle_core.embedding.embed import embed_folder_images
    from turtle_core.ingest.scan import scan_folder

    records = scan_folder(folder).images
    first, seconds, caught = timed_with_warnings(
        lambda: embed_folder_images(folder, records, "effnet-lite0", device=DEVICE, cache_root=cache_root)
    )
    again, cached_seconds, _ = timed_with_warnings(
        lambda: embed_folder_images(folder, records, "effnet-lite0", device=DEVICE, cache_root=cache_root)
    )
    return {
        "images": len(records),
        "embedded": int(first.ok.sum()),
        "failed": [f"{item.path}: {item.reason}" for item in first.failed],
        "all_finite": bool(np.isfinite(first.vectors).all()),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(records) / seconds, 1),
        "cached_seconds": round(cached_seconds, 3),
        "same_from_cache": bool(np.allclose(first.vectors, again.vectors)),
        "warnings": caught,
    }


PARTS = ("basic", "scale", "imagenet", "embedding")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {', '.join(PARTS)}")
    parser.add_argument("--n", type=int, default=20_000, help="points per fit")
    parser.add_argument("--dims", default="384,768")
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2000, help="outer steps per fit")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--turtle-steps", type=int, default=None, help="scale, imagenet: T (default 6,000)")
    parser.add_argument("--scale-n", type=int, default=50_000)
    parser.add_argument("--scale-dims", default="768,1024")
    parser.add_argument("--imagenet-n", type=int, default=1_281_167)
    parser.add_argument("--imagenet-dims", default="768,1536")
    parser.add_argument("--imagenet-clusters", type=int, default=1000)
    parser.add_argument("--embed-images", type=int, default=2000, help="JPEG files per pairing")
    parser.add_argument("--pairings", default="best,fast")
    parser.add_argument("--device", default="cuda", help="cpu: check this script's steps without a GPU")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    parts = [part for part in args.parts.split(",") if part]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")

    import torch

    report: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version()}
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        report.update(skipped=True, reason="no CUDA device: nothing to check on this machine")
        write_results(args.out, report)
        print(f"skipped: no CUDA device (wrote {args.out})")
        return 0
    report.update(
        skipped=False,
        device=torch.cuda.get_device_name(0) if DEVICE.startswith("cuda") else "cpu",
        bf16_supported=bool(DEVICE.startswith("cuda") and torch.cuda.is_bf16_supported()),
        parts=parts,
        problems=[],
    )
    print(
        f"{report['device']} (bf16 supported: {report['bf16_supported']}), torch {torch.__version__}",
        flush=True,
    )
    for part in parts:
        started = time.perf_counter()
        try:
            problems = PART_RUNS[part](args, report)
        except Exception:  # noqa: BLE001 - one part's failure is reported; the others still run
            problems = [f"{part}: {traceback.format_exc(limit=6)}"]
        report["problems"] += problems
        report.setdefault("part_seconds", {})[part] = round(time.perf_counter() - started, 1)
        write_results(args.out, report)
        print(
            f"[{part} done in {report['part_seconds'][part]} s] " + ("; ".join(problems) or "no problem"),
            flush=True,
        )
    print("problems: " + ("; ".join(report["problems"]) or "none"))
    print(f"wrote {args.out}")
    return 1 if report["problems"] else 0


def basic_part(args: argparse.Namespace, report: dict[str, Any]) -> list[str]:
    """Graph against eager, bf16, two fits at once, a fit beside an embedding (steps 1-5 above)."""
    report.update(n=args.n, dims=args.dims, clusters=args.clusters, steps=args.steps)
    dims = [int(d) for d in args.dims.split(",")]
    spaces, labels = mixture(args.n, dims, args.clusters, seed=0)
    other_spaces, other_labels = mixture(args.n, dims, args.clusters, seed=1)
    fit(spaces, labels, args, outer_steps=50)  # warm-up: CUDA context, cuBLAS, allocator

    from turtle_core.discovery.metrics import evaluate

    graph = fit(spaces, labels, args, cuda_graph=True)
    eager = fit(spaces, labels, args, cuda_graph=False)
    report["graph_vs_eager"] = {
        "graph": {k: v for k, v in graph.items() if k != "labels"},
        "eager": {k: v for k, v in eager.items() if k != "labels"},
        "label_agreement": round(evaluate(graph["labels"], eager["labels"])["accuracy"], 4),
        "speedup_graph_over_eager": round(eager["seconds"] / graph["seconds"], 2),
    }
    bf16 = fit(spaces, labels, args, precision="bf16")
    report["bf16"] = {
        **{k: v for k, v in bf16.items() if k != "labels"},
        "speedup_over_fp32_graph": round(graph["seconds"] / bf16["seconds"], 2),
    }

    alone = fit(other_spaces, other_labels, args)
    pair, wall = in_threads(
        [lambda: fit(spaces, labels, args), lambda: fit(other_spaces, other_labels, args)]
    )
    report["two_threads"] = {
        "fits": [{k: v for k, v in r.items() if k != "labels"} for r in pair],
        "wall_seconds": round(wall, 3),
        "sequential_seconds": round(graph["seconds"] + alone["seconds"], 3),
        "accuracy_alone": [graph["accuracy"], alone["accuracy"]],
    }

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TURTLE_HOME"] = tmp  # nothing of this check lands in the user's caches
        folder = image_folder(Path(tmp) / "images", args.images)
        report["embedding"] = embed(folder, Path(tmp) / "cache")
        both, wall = in_threads(
            [lambda: fit(spaces, labels, args), lambda: embed(folder, Path(tmp) / "cache-2")]
        )
        report["fit_while_embedding"] = {
            "fit": {k: v for k, v in both[0].items() if k != "labels"},
            "embedding": both[1],
            "wall_seconds": round(wall, 3),
        }

    problems = []
    if report["graph_vs_eager"]["label_agreement"] < 0.99:
        problems.append("graph and eager fits disagree")
    for name, result in [("two_threads", r) for r in report["two_threads"]["fits"]] + [
        ("fit_while_embedding", report["fit_while_embedding"]["fit"]),
        ("fit_while_embedding", report["fit_while_embedding"]["embedding"]),
    ]:
        if "error" in result:
            problems.append(f"{name}: {result['error'].splitlines()[-1]}")
    if not report["embedding"]["all_finite"] or report["embedding"]["failed"]:
        problems.append("embedding gave failures or non-finite vectors")
    print(_summary(report), flush=True)
    return problems


def scale_part(args: argparse.Namespace, report: dict[str, Any]) -> list[str]:
    """TURTLE's default schedule on 50,000 rows (target: ≤ 10 s)."""
    size = (args.scale_n, args.scale_dims, args.clusters)
    return _turtle_at_size("scale", gpu_scale.scale_part, size, 0.95, args, report)


def imagenet_part(args: argparse.Namespace, report: dict[str, Any]) -> list[str]:
    """One default run at ImageNet's size (target: ≤ 60 s, memory reported)."""
    size = (args.imagenet_n, args.imagenet_dims, args.imagenet_clusters)
    return _turtle_at_size("imagenet", gpu_scale.imagenet_part, size, 0.9, args, report)


def _turtle_at_size(
    name: str,
    run: Callable[..., dict[str, Any]],
    size: tuple[int, str, int],
    min_accuracy: float,
    args: argparse.Namespace,
    report: dict[str, Any],
) -> list[str]:
    n, dims, clusters = size
    result = report[name] = run(DEVICE, n, [int(d) for d in dims.split(",")], clusters, args.turtle_steps)
    print(f"  {name}: {result}", flush=True)
    return [] if result["accuracy"] >= min_accuracy else [f"{name}: accuracy {result['accuracy']}"]


def embedding_part(args: argparse.Namespace, report: dict[str, Any]) -> list[str]:
    """Each pairing from JPEG files, end to end (target: ≥ 800 images/s on one H200)."""
    pairings = [p for p in args.pairings.split(",") if p]
    result = report["pairings"] = gpu_scale.embedding_part(DEVICE, args.embed_images, pairings)
    problems = []
    for pairing in pairings:
        for name, row in result[pairing]["backbones"].items():
            for label in result["decode_threads"]:
                if row[label]["embedded"] != args.embed_images or not row[label]["all_finite"]:
                    problems.append(
                        f"embedding: {name} ({label}) embedded {row[label]['embedded']}, finite: {row[label]['all_finite']}"
                    )
    return problems


PART_RUNS: dict[str, Callable[[argparse.Namespace, dict[str, Any]], list[str]]] = {
    "basic": basic_part,
    "scale": scale_part,
    "imagenet": imagenet_part,
    "embedding": embedding_part,
}


def _summary(report: dict[str, Any]) -> str:
    g = report["graph_vs_eager"]
    t = report["two_threads"]
    e = report["embedding"]
    lines = [
        f"{report['device']} (bf16 supported: {report['bf16_supported']})",
        f"graph   {g['graph']['seconds']:.2f} s  acc {g['graph']['accuracy']:.3f}  fell back: {g['graph']['graph_fell_back']}",
        f"eager   {g['eager']['seconds']:.2f} s  acc {g['eager']['accuracy']:.3f}  "
        f"agreement {g['label_agreement']:.3f}  graph speed-up ×{g['speedup_graph_over_eager']}",
        f"bf16    {report['bf16']['seconds']:.2f} s  acc {report['bf16']['accuracy']:.3f}",
        f"2 threads  wall {t['wall_seconds']:.2f} s vs sequential {t['sequential_seconds']:.2f} s; "
        + ", ".join(str(f.get("accuracy", "ERROR")) for f in t["fits"]),
        f"embed   {e['embedded']}/{e['images']} images, {e['images_per_s']} img/s, finite: {e['all_finite']}, "
        f"from cache {e['cached_seconds']:.2f} s",
    ]
    return "\n".join(lines)
