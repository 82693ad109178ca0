"""Embed the bundled Animal-MNIST through the engine and save its features for the quality benchmarks.

Demo folder → scan → embed (cached) → `OUT/animal_mnist_<backbone>.npy` + `animal_mnist_labels.npy`.

    .venv/bin/python -m benchmarks embed_dataset --per-class 1000 --out benchmarks/features
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import FEATURES, RESULTS, write_results
from turtle_core.embedding.backbones import PRESETS, load_backbone
from turtle_core.embedding.cache import EmbeddingCache
from turtle_core.embedding.embed import embed_images
from turtle_core.ingest.demo import ANIMAL_CLASSES, write_demo_folder
from turtle_core.ingest.scan import scan_folder
from turtle_core.paths import embedding_cache_dir, turtle_home


def embed_animal_mnist(
    per_class: int, backbones: list[str], out: Path, device: str | None = None, batch_size: int = 64
) -> dict[str, object]:
    folder = write_demo_folder(
        turtle_home() / "bench" / f"animal-mnist-{per_class * 10}", per_class=per_class
    )
    scan = scan_folder(folder)
    labels = np.array([ANIMAL_CLASSES.index(record.label) for record in scan.images], dtype=np.int64)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "animal_mnist_labels.npy", labels)
    report: dict[str, object] = {"n_images": len(scan.images), "per_class": per_class, "backbones": {}}
    for name in backbones:
        backbone = load_backbone(name, device=device)
        cache = EmbeddingCache(embedding_cache_dir() / backbone.identity)
        started = time.perf_counter()
        result = embed_images(folder, scan.images, backbone, cache=cache, batch_size=batch_size)
        seconds = time.perf_counter() - started
        assert result.ok.all(), result.failed
        np.save(out / f"animal_mnist_{name}.npy", result.vectors.astype(np.float32))
        report["backbones"][name] = {  # type: ignore[index]
            "device": str(backbone.device),
            "seconds": round(seconds, 2),
            "computed": result.computed,
            "from_cache": result.from_cache,
            "images_per_s": round(result.computed / seconds, 1) if result.computed else None,
        }
        print(name, report["backbones"][name], flush=True)  # type: ignore[index]
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--backbones", default=",".join(PRESETS["offline"]))
    parser.add_argument("--out", type=Path, default=FEATURES)
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    report = embed_animal_mnist(
        args.per_class, args.backbones.split(","), args.out, args.device, args.batch_size
    )
    out = RESULTS / "embed_dataset.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    # One backbone per run is common (they take long on a CPU): keep the others' numbers.
    report["backbones"] = {**previous.get("backbones", {}), **report["backbones"]}  # type: ignore[dict-item]
    write_results(out, report)
