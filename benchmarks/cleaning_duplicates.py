"""Near-duplicates on suite folders of colour pictures with planted transformed copies: the product's
finder (cached Lite0 embeddings, adaptive threshold, groups around a kept image) against cleanvision's
(perceptual hash, identical hashes grouped), side by side on the same folder.

    nice -n 10 .venv/bin/python -m benchmarks cleaning_duplicates --sets colour_crops,emoji

For each set, 150 images get one copy each, 30 per transformation: smaller (half size), JPEG quality 35,
92 % crop, brighter (×1.3) and rotated 3°. Recall: planted pairs whose two images share a group.
Untouched grouped: the share of the other images (neither a source nor a copy) that are in a group.
Both are reported at the default threshold and over a range of fractions of the median
nearest-neighbour distance (how the default was chosen). Writes benchmarks/results/cleaning_duplicates.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from benchmarks.common import REPO as ROOT

SUITE = ROOT / "benchmarks" / "data" / "suite"
WORK = Path(tempfile.gettempdir()) / "turtle-cleaning-benchmark"  # planted folders (links + copies)
CACHE = ROOT / "benchmarks" / "data" / "embedding-cache"
RESULTS = ROOT / "benchmarks" / "results" / "cleaning_duplicates.json"
PER_KIND = 30
FRACTIONS = (0.3, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0)


def transform(image: Image.Image, kind: str) -> Image.Image:
    width, height = image.size
    if kind == "smaller":
        return image.resize((max(8, width // 2), max(8, height // 2)), Image.Resampling.LANCZOS)
    if kind == "jpeg35":
        return image  # saved with quality 35 below
    if kind == "crop92":
        dx, dy = round(width * 0.04), round(height * 0.04)
        return image.crop((dx, dy, width - dx, height - dy))
    if kind == "brighter":
        return ImageEnhance.Brightness(image).enhance(1.3)
    if kind == "rotate3":
        return image.rotate(3, resample=Image.Resampling.BICUBIC, fillcolor=image.getpixel((0, 0)))
    raise ValueError(kind)


KINDS = ("smaller", "jpeg35", "crop92", "brighter", "rotate3")


def build(name: str, seed: int = 0) -> tuple[Path, list[tuple[str, str, str]]]:
    """The set's images (linked) plus planted copies under `copies/`; (source, copy, kind) per pair."""
    folder = WORK / name
    if folder.exists():
        shutil.rmtree(folder)
    sources = sorted(p for p in (SUITE / name).rglob("*.png"))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(sources), PER_KIND * len(KINDS), replace=False)
    for path in sources:
        target = folder / path.relative_to(SUITE / name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path, target)
    pairs = []
    (folder / "copies").mkdir()
    for number, index in enumerate(chosen):
        kind = KINDS[number % len(KINDS)]
        source = sources[index]
        image = transform(Image.open(source).convert("RGB"), kind)
        copy = folder / "copies" / f"{source.stem}-{kind}.jpg"
        image.save(copy, quality=35 if kind == "jpeg35" else 90)
        pairs.append((str(source.relative_to(SUITE / name)), str(copy.relative_to(folder)), kind))
    return folder, pairs


def score(groups: list[set[str]], pairs: list[tuple[str, str, str]], paths: list[str]) -> dict:
    group_of = {path: i for i, group in enumerate(groups) for path in group}
    found = [group_of.get(a, -1) == group_of.get(b, -2) for a, b, _ in pairs]
    by_kind = {
        kind: float(np.mean([f for f, (_, _, k) in zip(found, pairs, strict=True) if k == kind]))
        for kind in KINDS
    }
    planted = {a for a, _, _ in pairs} | {b for _, b, _ in pairs}
    untouched = [p for p in paths if p not in planted]
    grouped = sum(1 for p in untouched if p in group_of)
    return {
        "recall": round(float(np.mean(found)), 4),
        "recall_by_kind": {k: round(v, 4) for k, v in by_kind.items()},
        "untouched_grouped": grouped,
        "untouched_share_grouped": round(grouped / len(untouched), 4),
        "groups": len(groups),
    }


def ours(folder: Path, pairs: list[tuple[str, str, str]]) -> dict:
    from turtle_core.cleaning.duplicates import (
        DEFAULT_FRACTION,
        SIGNATURE_MATCH,
        build_neighbour_graph,
        duplicate_groups,
    )
    from turtle_core.embedding.embed import embed_folder_images
    from turtle_core.ingest.scan import scan_folder
    from turtle_core.operations.cleaning import image_priority

    scan = scan_folder(folder)
    started = time.perf_counter()
    embedded = embed_folder_images(folder, scan.images, "effnet-lite0", cache_root=CACHE)
    embed_s = time.perf_counter() - started
    images = [r for r, ok in zip(scan.images, embedded.ok, strict=True) if ok]
    started = time.perf_counter()
    signatures = [r.signature for r in images]
    graph = build_neighbour_graph([embedded.vectors], [r.content_hash for r in images], signatures=signatures)
    graph_s = time.perf_counter() - started
    alone_graph = build_neighbour_graph([embedded.vectors], [r.content_hash for r in images])
    paths = [r.path for r in images]
    sweep, embeddings_only = {}, {}
    for fraction in FRACTIONS:
        started = time.perf_counter()
        groups = duplicate_groups(graph, graph.default_threshold(fraction), image_priority(images))
        seconds = time.perf_counter() - started
        sweep[str(fraction)] = {
            **score([{paths[row] for row in g.rows} for g in groups], pairs, paths),
            "groups_s": round(seconds, 3),
        }
        alone = duplicate_groups(alone_graph, alone_graph.default_threshold(fraction), image_priority(images))
        found = score([{paths[row] for row in g.rows} for g in alone], pairs, paths)
        embeddings_only[str(fraction)] = {k: found[k] for k in ("recall", "untouched_share_grouped")}
    by_match = {}
    for fraction in (3.0, 4.0, 5.0):
        for match in (0.9, 0.95, 0.97):
            groups = duplicate_groups(graph, graph.default_threshold(fraction), image_priority(images), match)
            found = score([{paths[row] for row in g.rows} for g in groups], pairs, paths)
            by_match[f"{fraction}/{match}"] = {k: found[k] for k in ("recall", "untouched_share_grouped")}
    return {
        "images": len(paths),
        "embed_s": round(embed_s, 1),
        "embedded_now": embedded.computed,
        "graph_s": round(graph_s, 2),
        "median_nn_distance": round(graph.median_distance(), 4),
        "default_fraction": DEFAULT_FRACTION,
        "signature_match": SIGNATURE_MATCH,
        "at_default": sweep[str(DEFAULT_FRACTION)],
        "by_fraction": sweep,
        "embeddings_alone_by_fraction": embeddings_only,
        "by_fraction_and_signature_match": by_match,
    }


def cleanvision(folder: Path, pairs: list[tuple[str, str, str]]) -> dict:
    from cleanvision import Imagelab

    started = time.perf_counter()
    lab = Imagelab(data_path=str(folder))
    lab.find_issues({"near_duplicates": {}, "exact_duplicates": {}}, verbose=False)
    seconds = time.perf_counter() - started
    sets = lab.info["near_duplicates"]["sets"] + lab.info["exact_duplicates"]["sets"]
    groups = [{str(Path(p).relative_to(folder)) for p in group} for group in sets]
    paths = [str(Path(p).relative_to(folder)) for p in lab.issues.index]
    return {"seconds": round(seconds, 1), **score(groups, pairs, paths)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="colour_crops,emoji")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in args.sets.split(","):
        load = os.getloadavg()
        folder, pairs = build(name)
        result = {"planted_pairs": len(pairs), "per_kind": PER_KIND}
        result["turtle_labels"] = ours(folder, pairs)
        result["cleanvision_phash"] = cleanvision(folder, pairs)
        result["load_before"] = [round(x, 2) for x in load]
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        results[name] = result
        print(name, json.dumps(result, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
