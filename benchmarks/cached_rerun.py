"""What a repeated discovery costs in the embedding stage when every image is already cached.

    .venv/bin/python -m benchmarks cached_rerun                          # dinov2-vit-l14, ~1 min, 1.2 GB temp
    .venv/bin/python -m benchmarks cached_rerun --backbone dinov2-vit-s14        # 0.08 GB checkpoint

The backbone's weights are random (no download: its real architecture is built and saved as a local
checkpoint), the images are 20 demo images. Side by side in one run: loading the weights, which every
repeated discovery paid before, against `embed_folder_images` serving everything from the cache
without loading them. JSON: benchmarks/results/cached_rerun.json. The EfficientNet-Lite backbones cannot
run it: a checkpoint saved from a loaded Lite backbone (classifier removed) does not load back into one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, write_results
from turtle_core.embedding.backbones import load_backbone
from turtle_core.embedding.embed import embed_folder_images
from turtle_core.ingest.demo import write_demo_folder
from turtle_core.ingest.scan import scan_folder

OUT = RESULTS / "cached_rerun.json"


def measure(name: str, repeats: int, workdir: Path) -> dict[str, object]:
    folder = write_demo_folder(workdir / "demo", per_class=2)
    images = scan_folder(folder).images
    checkpoint = workdir / "weights.pth"
    torch.save(load_backbone(name, device="cpu", random_init=True).model.state_dict(), checkpoint)
    cache_root = workdir / "cache"
    started = time.perf_counter()
    first = embed_folder_images(folder, images, name, str(checkpoint), device="cpu", cache_root=cache_root)
    first_seconds = time.perf_counter() - started
    load_seconds, cached_seconds = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        load_backbone(name, str(checkpoint), device="cpu")
        load_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        again = embed_folder_images(
            folder, images, name, str(checkpoint), device="cpu", cache_root=cache_root
        )
        cached_seconds.append(time.perf_counter() - started)
        assert again.computed == 0 and again.identity == first.identity
    row = {
        "backbone": name,
        "checkpoint_gib": round(checkpoint.stat().st_size / 2**30, 3),
        "images": len(images),
        "first_run_seconds": round(first_seconds, 2),
        "weights_load_seconds": [round(v, 3) for v in load_seconds],
        "cached_rerun_seconds": [round(v, 4) for v in cached_seconds],
        "ratio_min": round(min(load_seconds) / max(cached_seconds), 1),
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="dinov2-vit-l14")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="cached_rerun-"))
    try:
        row = measure(args.backbone, args.repeats, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    previous[args.backbone] = {**row, "command": " ".join(sys.argv)}
    write_results(args.out, previous)
    print(f"wrote {args.out}")
