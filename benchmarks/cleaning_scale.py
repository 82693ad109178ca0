"""Near-duplicates at scale, and the approximate index chosen for it.

    nice -n 10 .venv/bin/python -m benchmarks cleaning_scale --parts index,million

Features are a Gaussian mixture (100 centres, 1,280 dimensions) with planted near-copies: 1,000 rows
are copies of other rows plus noise, at a tenth of the folder's typical nearest-neighbour distance.
  index    100,000 rows projected to 128 axes (as the product does above 50,000 images): exact
           neighbours against pynndescent and faiss (the product's IVF settings), side by side, timed,
           with recall of the exact 16 neighbours and of the planted pairs
  million  1,000,000 × 1,280 rows through the product's path (`build_neighbour_graph`, then the groups
           at the default threshold): seconds, peak memory, planted pairs found, untouched rows grouped
  million_signatures  the same with a 16 × 16 pixel signature per row (smooth random pictures of 2 × 2
           colours, which look alike; each copy its source's signature plus noise), as a scanned folder has
Each part runs in its own process (its peak memory is its own); `--rows` runs the million parts on fewer
rows (their results are then kept under `<part>@<rows>`). Writes benchmarks/results/cleaning_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import REPO as ROOT

RESULTS = ROOT / "benchmarks" / "results" / "cleaning_scale.json"
PLANTED = 1_000


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_seconds() -> float:
    """CPU time of this process (both cores count): on a shared machine, what the wall time would be
    on one idle core."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mixture(n: int, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n rows (the last PLANTED of them near-copies of earlier rows); returns features, sources, copies."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(100, dims)).astype(np.float32)
    features = np.empty((n, dims), np.float32)
    for start in range(0, n, 50_000):
        stop = min(n, start + 50_000)
        features[start:stop] = centres[rng.integers(0, 100, stop - start)]
        features[start:stop] += rng.normal(scale=1.0, size=(stop - start, dims)).astype(np.float32)
    copies = np.arange(n - PLANTED, n)
    sources = rng.choice(n - PLANTED, PLANTED, replace=False)
    # Typical nearest-neighbour distance here is about 1 - cos ≈ 0.5: copies at ~0.05.
    noise = rng.normal(scale=0.32, size=(PLANTED, dims)).astype(np.float32)
    features[copies] = features[sources] + noise
    return features, sources, copies


def part_index(n: int = 100_000, k: int = 16) -> dict:
    import torch

    from turtle_core.cleaning.duplicates import ANN_DIMS, ANN_PROBES

    features, sources, copies = mixture(n, 1280)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    mean = unit[:20_000].mean(0)
    _, _, vt = np.linalg.svd(unit[:20_000] - mean, full_matrices=False)
    projected = np.ascontiguousarray((unit - mean) @ vt[:ANN_DIMS].T, dtype=np.float32)
    del features, unit
    out: dict = {"rows": n, "dims": ANN_DIMS, "k": k}

    started = time.perf_counter()
    data = torch.from_numpy(projected)
    squared = (data * data).sum(1)
    truth = np.empty((n, k), np.int64)
    for start in range(0, n, 4096):
        block = data[start : start + 4096]
        dist = squared[start : start + 4096, None] - 2 * block @ data.T + squared[None]
        dist[torch.arange(len(block)), torch.arange(start, start + len(block))] = torch.inf
        truth[start : start + len(block)] = dist.topk(k, largest=False).indices.numpy()
    out["exact_s"] = round(time.perf_counter() - started, 1)

    def score(found: np.ndarray) -> dict:
        hits = [len(set(a) & set(b)) for a, b in zip(found[:, :k].tolist(), truth.tolist(), strict=True)]
        pairs = np.mean(
            [
                c in set(found[s].tolist()) or s in set(found[c].tolist())
                for s, c in zip(sources, copies, strict=True)
            ]
        )
        return {
            "recall_at_k": round(float(np.mean(hits)) / k, 4),
            "planted_pairs_found": round(float(pairs), 4),
        }

    import pynndescent

    started = time.perf_counter()
    index = pynndescent.NNDescent(projected, n_neighbors=k + 1, random_state=0, n_jobs=2, low_memory=True)
    found, _ = index.neighbor_graph
    out["pynndescent"] = {"seconds": round(time.perf_counter() - started, 1), **score(found[:, 1:])}

    import faiss

    started = time.perf_counter()
    n_lists = int(min(4096, max(16, 4 * np.sqrt(n)), n // 39))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(ANN_DIMS), ANN_DIMS, n_lists)
    ivf.cp.niter = 10
    ivf.train(projected)
    ivf.add(projected)
    ivf.nprobe = ANN_PROBES
    _, found = ivf.search(projected, k + 1)
    found = np.asarray([[j for j in row if j != i][:k] for i, row in enumerate(found.tolist())])
    out["faiss_ivf"] = {
        "seconds": round(time.perf_counter() - started, 1),
        "lists": n_lists,
        "probes": ANN_PROBES,
        **score(found),
    }
    return out


def signatures(n: int, sources: np.ndarray, copies: np.ndarray, seed: int = 1) -> list[str]:
    """Base64 16 × 16 RGB signatures of smooth pictures (2 × 2 random colours, blocks of 8 × 8 plus noise of
    σ 16, 8 once averaged to 8 × 8 as the former 8 × 8 signatures had); each copy's is its source's with a
    little more noise."""
    import base64

    rng = np.random.default_rng(seed)
    pixels = np.empty((n, 16, 16, 3), np.uint8)  # made in chunks: a million in float64 is 6 GiB
    for start in range(0, n, 100_000):
        count = min(n, start + 100_000) - start
        colours = rng.integers(0, 255, (count, 2, 2, 3)).astype(np.float32)
        pictures = np.repeat(np.repeat(colours, 8, 1), 8, 2) + rng.normal(scale=16, size=(count, 16, 16, 3))
        pixels[start : start + count] = np.clip(pictures, 0, 255)
    noise = rng.normal(scale=6, size=(len(copies), 16, 16, 3))
    pixels[copies] = np.clip(pixels[sources] + noise, 0, 255)
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in pixels]


def part_million(n: int = 1_000_000, with_signatures: bool = False) -> dict:
    from turtle_core.cleaning.duplicates import build_neighbour_graph, duplicate_groups

    started = time.perf_counter()
    features, sources, copies = mixture(n, 1280)
    pixels = signatures(n, sources, copies) if with_signatures else None
    made = time.perf_counter() - started
    started, cpu = time.perf_counter(), cpu_seconds()
    graph = build_neighbour_graph([features], [f"{i:040x}" for i in range(n)], signatures=pixels)
    built = time.perf_counter() - started
    started = time.perf_counter()
    threshold = graph.default_threshold()
    groups = duplicate_groups(graph, threshold, np.zeros(n))
    grouped = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    together = {frozenset(g.rows) for g in groups if len(g.rows) == 2}
    found = np.mean([frozenset((int(s), int(c))) in together for s, c in zip(sources, copies, strict=True)])
    planted = set(sources.tolist()) | set(copies.tolist())
    untouched = {row for g in groups for row in g.rows} - planted
    return {
        "rows": n,
        "dims": 1280,
        "generate_s": round(made, 1),
        "graph_s": round(built, 1),
        "groups_s": round(grouped, 2),
        "total_s": round(built + grouped, 1),
        "total_cpu_s": round(cpu, 1),
        "exact": graph.exact,
        "median_nn_distance": round(graph.median_distance(), 4),
        "threshold": round(threshold, 4),
        "planted_pairs_found": round(float(found), 4),
        "untouched_rows_grouped": len(untouched),
        "untouched_share_grouped": round(len(untouched) / (n - 2 * PLANTED), 6),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


PARTS = {
    "index": lambda rows: part_index(),
    "million": lambda rows: part_million(rows),
    "million_signatures": lambda rows: part_million(rows, with_signatures=True),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="index,million")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the million parts")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(PARTS[args.child](args.rows)))
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for part in args.parts.split(","):
        load = os.getloadavg()
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks", "cleaning_scale", "--child", part, "--rows", str(args.rows)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["load_before"] = [round(x, 2) for x in load]
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        results[part if args.rows == 1_000_000 or part == "index" else f"{part}@{args.rows}"] = result
        print(part, json.dumps(result, indent=1))
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
