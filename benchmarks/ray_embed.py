"""Embedding throughput: the local path against Ray Data on a one-node and a two-node local cluster.

    .venv/bin/python -m benchmarks ray_embed --images 400 --cpus-per-node 1

The same folder in every mode, nothing cached in any run. Each mode embeds every image of the folder with the offline EfficientNet-Lite0 into a fresh cache.
`images_per_s` is the whole call (for Ray: connecting, starting the actors and loading the model in
each); `steady_images_per_s` counts only the images after the first batch arrived, over the time
after it (the rate a long run approaches). Both clusters run on this machine, `--cpus-per-node` CPUs
per node (one CPU actor per CPU), so two nodes share the same cores as the local path: on one
machine Ray can only add overhead; the numbers say how much. No GPU here: the GPU actor against the
local GPU path is not measured. Writes benchmarks/results/ray_embed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import RESULTS, timed, write_results
from tests.ray_cluster import LocalCluster
from turtle_core.embedding.embed import embed_folder_images
from turtle_core.embedding.ray_embed import embed_folder_images_ray
from turtle_core.ingest.scan import ImageRecord, scan_folder
from turtle_core.progress import Progress

OUT = RESULTS / "ray_embed.json"
BACKBONE = "effnet-lite0"


def make_folder(dest: Path, count: int) -> Path:
    """`count` distinct 256×192 JPEG photos-like images (smooth noise), decode cost included."""
    rng = np.random.default_rng(0)
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize((256, 192), Image.BICUBIC).save(dest / f"{i:05d}.jpg", quality=90)
    return dest


def rates(run, records: list[ImageRecord]) -> tuple[dict[str, float], np.ndarray]:
    """Run `run(progress)`; its wall time, images/s, and the rate after the first batch arrived."""
    first: list[tuple[float, int]] = []

    def progress(report: Progress) -> None:
        if report.done > 0 and not first:
            first.append((time.perf_counter(), report.done))

    timing = timed(lambda: run(progress))
    result, start, end = timing.result, timing.started, timing.ended
    assert result.computed == len(records), (result.computed, result.failed[:3])
    row = {"seconds": round(end - start, 2), "images_per_s": round(len(records) / (end - start), 2)}
    if first and first[0][1] < len(records):
        at, done = first[0]
        row["first_batch_after_s"] = round(at - start, 2)
        row["steady_images_per_s"] = round((len(records) - done) / (end - at), 2)
    return row, result.vectors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    os.environ.setdefault("TURTLE_OFFLINE", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # set before Ray is imported: it reads them once
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    os.environ["TURTLE_HOME"] = str(work / "home")
    folder = make_folder(work / "images", args.images)
    records = scan_folder(folder).images
    rows: dict[str, dict[str, float]] = {}

    def local(progress):
        return embed_folder_images(
            folder, records, BACKBONE, cache_root=work / "cache-local", progress=progress
        )

    rows["local"], reference = rates(local, records)
    print("local", rows["local"], flush=True)
    for nodes in (1, 2):
        cluster = LocalCluster(nodes=nodes, cpus=args.cpus_per_node)
        try:
            startup = timed(cluster.start).seconds

            def on_ray(progress, nodes=nodes, address=cluster.address):
                return embed_folder_images_ray(
                    folder,
                    records,
                    BACKBONE,
                    address=address,
                    cache_root=work / f"cache-ray{nodes}",
                    batch_size=args.batch_size,
                    progress=progress,
                )

            row, vectors = rates(on_ray, records)
        finally:
            cluster.stop()
        row["cluster_start_s"] = round(startup, 2)
        row["max_abs_diff_vs_local"] = float(np.abs(vectors - reference).max())
        rows[f"ray_{nodes}_node"] = row
        print(f"ray {nodes} node(s)", row, flush=True)

    payload = {
        "images": args.images,
        "image_size": "256x192 JPEG",
        "backbone": BACKBONE,
        "cpus_per_node": args.cpus_per_node,
        "batch_size": args.batch_size,
        "results": rows,
        "ratios": {
            name: round(row["images_per_s"] / rows["local"]["images_per_s"], 3)
            for name, row in rows.items()
            if name != "local"
        },
        "gpu": "not measured: no CUDA GPU on this machine",
    }
    write_results(OUT, payload)
    print(json.dumps(payload, indent=2))
