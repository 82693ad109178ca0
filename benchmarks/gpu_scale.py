"""The GPU check's scale parts (`gpu_check --parts scale,imagenet,embedding`): issue 18's device targets.

- `scale`: TURTLE's default schedule (T = 6,000) on 50,000 × (768 + 1,024), C = 10, after a warm-up.
- `imagenet`: one default TURTLE run at ImageNet's size, 1,281,167 × (768 + 1,536), C = 1,000 (the
  mixture drawn on the device), with the time of each phase and the peak memory of the GPU and the process.
- `embedding`: JPEG files (500 × 375, ImageNet's typical size) embedded end to end, reading, hashing and
  decoding included, by each pairing's backbones with random weights (speed only); the product's decode
  threads (4) against one per core but one, side by side (on an H200 with 16 cores more threads did not
  help: the preprocessing holds Python's lock); and the reading and preprocessing alone, in threads and
  in processes, to show which would feed the GPU.
Each part returns a JSON-ready dict; `gpu_check` prints and writes it as soon as it is done.
"""

from __future__ import annotations

import contextlib
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

JPEG_SIZE = (500, 375)


def sync_device(device: str) -> None:
    """Wait for `device`'s queued work (nothing to wait for on the CPU), so that timings count it."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


@contextlib.contextmanager
def phase_times(device: str) -> Iterator[dict[str, float]]:
    """Seconds spent in each phase of `Turtle.fit` (preprocessing, k-means start, the heads' start,
    training, soft labels), measured by wrapping those functions for the duration of the block."""
    from turtle_core.discovery import engine, features, turtle

    totals: dict[str, float] = {}
    targets: list[tuple[Any, str, str]] = [
        (features.SpacePreprocessor, "fit", "preprocess_fit"),
        (features.SpacePreprocessor, "transform", "preprocess_transform"),
        (turtle.Turtle, "initial_labels", "kmeans_start"),
        (turtle, "cluster_means", "cluster_means"),
        (engine.TurtleEngine, "__init__", "engine_setup"),
        (engine.TurtleEngine, "init_heads_from_centroids", "heads_start"),
        (turtle.Turtle, "_train", "train"),
        (turtle, "head_probabilities", "soft_labels"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]

    def wrap(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            sync_device(device)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync_device(device)
                elapsed = time.perf_counter() - started
                totals[label] = round(totals.get(label, 0.0) + elapsed, 3)
                if elapsed >= 1.0:  # a run stopped by its time limit still shows where the time went
                    print(f"    {label}: {elapsed:.1f} s", flush=True)

        return timed_call

    for (owner, name, label), (_, _, original) in zip(targets, originals, strict=True):
        setattr(owner, name, wrap(original, label))
    try:
        yield totals
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def device_mixture(
    n: int, dims: list[int], n_clusters: int, seed: int, device: str
) -> tuple[list[np.ndarray], np.ndarray]:
    """`gpu_check.mixture`'s separable clusters, drawn on `device` in chunks (a million rows of
    thousands of dimensions take minutes with numpy) and returned as host arrays, as features are."""
    import torch

    generator = torch.Generator(device=device).manual_seed(seed)
    labels = torch.randperm(n, generator=generator, device=device) % n_clusters
    spaces = []
    for d in dims:
        centres = torch.randn(n_clusters, d, generator=generator, device=device) * (4.5 / d**0.5)
        out = np.empty((n, d), dtype=np.float32)
        for start in range(0, n, 200_000):
            rows = labels[start : start + 200_000]
            noise = torch.randn(len(rows), d, generator=generator, device=device) / d**0.5
            out[start : start + len(rows)] = (centres[rows] + noise).cpu().numpy()
        spaces.append(out)
    return spaces, labels.cpu().numpy()


def turtle_run(
    spaces: list[np.ndarray], labels: np.ndarray, n_clusters: int, device: str, **params: Any
) -> dict[str, Any]:
    """One TURTLE fit with the defaults (what `params` does not change): seconds, phases, accuracy, memory."""
    import torch

    from turtle_core.discovery.metrics import evaluate
    from turtle_core.discovery.turtle import Turtle

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with phase_times(device) as phases:
        sync_device(device)
        started = time.perf_counter()
        model = Turtle(n_clusters=n_clusters, device=device, random_state=0, **params).fit(spaces)
        sync_device(device)
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "phases": dict(phases),
        "outer_steps": int(model.n_iter_),
        "accuracy": round(evaluate(labels, model.labels_)["accuracy"], 4),
        "gpu_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if device.startswith("cuda")
        else None,
        "process_peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def scale_part(
    device: str, n: int, dims: list[int], n_clusters: int, outer_steps: int | None = None
) -> dict[str, Any]:
    from benchmarks.gpu_check import mixture

    spaces, labels = mixture(n, dims, n_clusters, seed=2)
    turtle_run(spaces, labels, n_clusters, device, outer_steps=60)  # warm-up
    run = turtle_run(spaces, labels, n_clusters, device, **_steps(outer_steps))
    return {"n": n, "dims": dims, "clusters": n_clusters, **run}


def _steps(outer_steps: int | None) -> dict[str, int]:
    """The schedule's T when a small check sets it, else nothing (the default)."""
    return {} if outer_steps is None else {"outer_steps": outer_steps}


def imagenet_part(
    device: str, n: int, dims: list[int], n_clusters: int, outer_steps: int | None = None
) -> dict[str, Any]:
    started = time.perf_counter()
    spaces, labels = device_mixture(n, dims, n_clusters, seed=3, device=device)
    drawn = time.perf_counter() - started
    run = turtle_run(spaces, labels, n_clusters, device, **_steps(outer_steps))
    return {"n": n, "dims": dims, "clusters": n_clusters, "features_drawn_s": round(drawn, 2), **run}


def _write_photo(args: tuple[str, int]) -> None:
    """A JPEG that costs what a photo costs to decode: smooth shapes, texture and noise."""
    from PIL import Image

    path, seed = args
    rng = np.random.default_rng(seed)
    width, height = JPEG_SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.005, 0.05, 2).tolist() + [rng.uniform(0, 6.28)]
        channels.append(127 + 80 * np.sin(fx * x + fy * y + phase) + rng.normal(0, 18, (height, width)))
    pixels = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def jpeg_folder(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(str(root / f"photo_{i:05d}.jpg"), i) for i in range(n)]
    with ProcessPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1)) as pool:
        list(pool.map(_write_photo, jobs, chunksize=16))
    return root


def _load_random(name: str, device: str) -> Any:
    """The real architecture with random weights, initialised on the device when it can be (a billion
    parameters initialise in minutes on the CPU)."""
    import torch

    from turtle_core.embedding.backbones import load_backbone

    try:
        with torch.device(device):
            return load_backbone(name, device=device, random_init=True)
    except Exception:  # an architecture whose init needs the CPU
        return load_backbone(name, device=device, random_init=True)


def _prepare_file(args: tuple[str, Any]) -> tuple[int, ...]:
    """Read, decode and preprocess one file in a worker process (what `prepare_record` does, less the
    hash check); the tensor's shape goes back, as a model's input would, but without its bytes."""
    from turtle_core.ingest.scan import decode_image

    path, preprocess = args
    with open(path, "rb") as handle:
        return tuple(preprocess(decode_image(handle.read(), min_size=224)).shape)


def preparation_rates(folder: Path, records: list[Any]) -> dict[str, float]:
    """Images/s of the embedding's reading and preprocessing without a model: in 2, 4, 8 and one per core
    but one decode threads (the product's `_prefetched`), and in as many processes, to see whether more
    threads or processes would feed a GPU faster (Python's lock or the cores)."""
    import multiprocessing

    from turtle_core.embedding.embed import _prefetched, prepare_record
    from turtle_core.embedding.loading import make_preprocess
    from turtle_core.embedding.registry import IMAGENET_MEAN, IMAGENET_STD

    cores = max(1, (os.cpu_count() or 2) - 1)
    preprocess = make_preprocess(224, IMAGENET_MEAN, IMAGENET_STD)

    prep = SimpleNamespace(spec=SimpleNamespace(input_size=224), preprocess=preprocess)  # what it reads

    rates: dict[str, float] = {}
    for workers in sorted({2, 4, 8, cores}):
        started = time.perf_counter()
        for _ in _prefetched(records, 32, lambda r: prepare_record(str(folder), [r], prep), workers):  # type: ignore[arg-type]
            pass
        rates[f"threads_{workers}"] = round(len(records) / (time.perf_counter() - started), 1)
    jobs = [(str(folder / record.path), preprocess) for record in records]
    with ProcessPoolExecutor(max_workers=cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_prepare_file, jobs[:cores], chunksize=1))  # the workers' start and imports
        started = time.perf_counter()
        list(pool.map(_prepare_file, jobs, chunksize=16))
        rates[f"processes_{cores}"] = round(len(records) / (time.perf_counter() - started), 1)
    return rates


def embedding_part(device: str, n_images: int, pairings: list[str]) -> dict[str, Any]:
    import torch

    from turtle_core.embedding.embed import default_num_workers, embed_images
    from turtle_core.embedding.registry import PRESETS
    from turtle_core.ingest.scan import scan_folder

    report: dict[str, Any] = {"images": n_images, "jpeg_size": list(JPEG_SIZE)}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        folder = jpeg_folder(Path(tmp) / "photos", n_images)
        report["files_written_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        records = scan_folder(folder).images
        report["scan_s"] = round(time.perf_counter() - started, 2)
        threads = {"product": default_num_workers(), "all_cores": max(1, (os.cpu_count() or 2) - 1)}
        report["decode_threads"] = threads
        report["preparation_only"] = preparation_rates(folder, records)
        print(f"  reading and preprocessing alone, images/s: {report['preparation_only']}", flush=True)
        for pairing in pairings:
            rows: dict[str, Any] = {}
            for name in PRESETS[pairing]:
                started = time.perf_counter()
                backbone = _load_random(name, device)
                row: dict[str, Any] = {"load_s": round(time.perf_counter() - started, 2)}
                embed_images(folder, records[:64], backbone, cache=None)  # warm-up: kernels, allocator
                for label, workers in threads.items():
                    sync_device(device)
                    started = time.perf_counter()
                    result = embed_images(folder, records, backbone, cache=None, num_workers=workers)
                    sync_device(device)
                    seconds = time.perf_counter() - started
                    row[label] = {
                        "seconds": round(seconds, 3),
                        "images_per_s": round(len(records) / seconds, 1),
                        "embedded": int(result.ok.sum()),
                        "all_finite": bool(np.isfinite(result.vectors[result.ok]).all()),
                    }
                rows[name] = row
                del backbone
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
            pairing_rates = {
                label: round(len(records) / sum(rows[name][label]["seconds"] for name in rows), 1)
                for label in threads
            }
            report[pairing] = {"backbones": rows, "pairing_images_per_s": pairing_rates}
            print(f"  {pairing}: {pairing_rates} images/s ({', '.join(rows)})", flush=True)
    return report
