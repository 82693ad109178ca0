"""Embed each built suite set once through the product's real path and save its features.

    nice -n 10 .venv/bin/python -m benchmarks suite.features            # every built set, small ones first

Per set: `scan_folder` → `embed_folder_images` (offline preset's backbone, the content-addressed
embedding cache under `benchmarks/data/embedding-cache/`) → `benchmarks/features/suite/<set>.npz` with
`features` (float32 N×D), `labels` (int64 N, index into `classes`), `classes` and `paths` (relative).
A set whose npz matches its current scan (same paths) is skipped.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, FEATURES
from benchmarks.suite.build import DEFAULT_CACHE, SETS
from turtle_core.atomic import atomic_write_bytes
from turtle_core.embedding.backbones import PRESETS
from turtle_core.embedding.embed import embed_folder_images
from turtle_core.ingest.scan import scan_folder

FEATURES_DIR = FEATURES / "suite"
EMBEDDING_CACHE = DATA / "embedding-cache"
BACKBONE = PRESETS["offline"][0]


def load_features(path: Path) -> dict[str, np.ndarray]:
    """One set's saved arrays: features, labels, classes, paths."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def load_set(features_dir: Path, name: str) -> dict[str, np.ndarray]:
    """A set's arrays by name; `<set>@<n>` is a fixed class-stratified subset of `n` of its images (a
    small folder cut from a suite set: every class keeps its share, at least one image)."""
    base, _, size = name.partition("@")
    data = load_features(features_dir / f"{base}.npz")
    if not size:
        return data
    labels = data["labels"]
    counts = np.bincount(labels)
    wanted = np.maximum(1, np.floor(counts / counts.sum() * int(size)).astype(int))
    for c in np.argsort(-(counts / counts.sum() * int(size) - wanted))[: max(0, int(size) - wanted.sum())]:
        wanted[c] += 1
    rng = np.random.default_rng(0)
    rows = np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(labels == c), k, replace=False) for c, k in enumerate(wanted)]
        )
    )
    present, remapped = np.unique(labels[rows], return_inverse=True)
    return {**{k: v[rows] for k, v in data.items() if k in ("features", "paths")},
            "labels": remapped.astype(np.int64), "classes": data["classes"][present]}  # fmt: skip


def embed_set(folder: Path, out: Path, backbone: str = BACKBONE) -> dict[str, float]:
    """Scan and embed one set folder and save its npz; returns image count and seconds."""
    started = time.perf_counter()
    scan = scan_folder(folder)
    paths = np.array([record.path for record in scan.images])
    if out.exists() and np.array_equal(load_features(out)["paths"], paths):
        return {"images": float(len(paths)), "seconds": 0.0, "computed": 0.0}
    if scan.skipped:
        print(f"  {len(scan.skipped)} unusable file(s) skipped, e.g. {scan.skipped[0]}", flush=True)
    result = embed_folder_images(folder, scan.images, backbone, cache_root=EMBEDDING_CACHE)
    keep = result.ok
    records = [record for record, ok in zip(scan.images, keep, strict=True) if ok]
    classes = np.array(sorted({str(record.label) for record in records}))
    labels = np.searchsorted(classes, [str(record.label) for record in records]).astype(np.int64)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        features=np.asarray(result.vectors, dtype=np.float32),
        labels=labels,
        classes=classes,
        paths=np.array([record.path for record in records]),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buffer.getvalue())
    return {
        "images": float(len(records)),
        "seconds": time.perf_counter() - started,
        "computed": float(result.computed),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sets", default="", help="comma-separated (default: every built set, smallest first)"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where suite.build wrote the sets")
    parser.add_argument("--out", type=Path, default=FEATURES_DIR)
    args = parser.parse_args(argv)
    names = [n for n in args.sets.split(",") if n] or [n for n in SETS if (args.cache / n).is_dir()]
    names.sort(key=lambda n: sum(1 for _ in (args.cache / n).rglob("*.png")))
    for name in names:
        folder = args.cache / name
        if not folder.is_dir():
            print(f"{name}: not built (run python -m benchmarks suite.build)", flush=True)
            continue
        report = embed_set(folder, args.out / f"{name}.npz")
        rate = report["computed"] / report["seconds"] if report["seconds"] else 0.0
        print(f"{name}: {report['images']:.0f} images, {report['computed']:.0f} embedded in "
              f"{report['seconds']:.0f} s ({rate:.1f}/s)", flush=True)  # fmt: skip
