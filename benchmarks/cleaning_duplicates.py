"""Near-duplicates on suite folders of colour pictures with planted transformed copies: the product's
finder (cached Lite0 embeddings, adaptive threshold, groups around a kept image) against cleanvision's
(perceptual hash, identical hashes grouped), side by side on the same folder.

    nice -n 10 .venv/bin/python -m benchmarks cleaning_duplicates --sets colour_crops,emoji

For each set, 150 images get one copy each, 30 per transformation: smaller (half size), JPEG quality 35,
92 % crop, brighter (×1.3) and rotated 3°. Recall: planted pairs whose two images share a group.
Untouched grouped: the share of the other images (neither a source nor a copy) that are in a group.
On the crop sets (colour_crops, grey_textures) some untouched images are themselves crops of one region
of one picture, turned alike, overlapping as much as a 92 % crop does its source (IoU ≥ 0.8, found by
replaying the suite's draws): `untouched_share_grouped_unrelated` leaves out those grouped with such a
twin. Both are reported at the defaults, over a range of fractions of the median nearest-neighbour distance
and of signature ratios (how the defaults were chosen, on colour_crops and emoji; other sets, e.g.
`--sets grey_textures`, were not tuned on), and over shifted-signature ratios at the default fraction (0:
the shifted signatures unused; chosen on glyphs, grey_textures and digits not tuned on). Writes
benchmarks/results/cleaning_duplicates.json.
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
from benchmarks.suite.build import CROP_SETS, crop_boxes

SUITE = ROOT / "benchmarks" / "data" / "suite"
WORK = Path(tempfile.gettempdir()) / "turtle-cleaning-benchmark"  # planted folders (links + copies)
CACHE = ROOT / "benchmarks" / "data" / "embedding-cache"
RESULTS = ROOT / "benchmarks" / "results" / "cleaning_duplicates.json"
PER_KIND = 30
FRACTIONS = (0.3, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0)
RATIOS = (0.15, 0.2, 0.25, 0.3, 0.4)
SHIFTED_RATIOS = (0.0, 0.05, 0.1, 0.15, 0.2)


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


def build(name: str, seed: int = 0, work: Path = WORK) -> tuple[Path, list[tuple[str, str, str]]]:
    """The set's images (linked) plus planted copies under `copies/`; (source, copy, kind) per pair."""
    folder = work / name
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


TWIN_IOU = 0.8  # a 92 % crop overlaps its source by 0.846


def twins(boxes: dict[str, tuple], paths: list[str]) -> dict[str, set[str]]:
    """For each image of a crop set, the others cut from the same region, turned alike (IoU ≥ TWIN_IOU)."""
    found: dict[str, set[str]] = {p: set() for p in paths if p in boxes}
    by_view: dict[tuple, list[str]] = {}
    for path in found:
        label, _, _, _, turns, flipped = boxes[path]
        by_view.setdefault((label, turns, flipped), []).append(path)
    for members in by_view.values():
        box = np.asarray([boxes[p][1:4] for p in members], np.float64)  # x, y, side
        left, top, side = box[:, 0], box[:, 1], box[:, 2]
        across = np.clip(
            np.minimum(left + side, left[:, None] + side[:, None]) - np.maximum(left, left[:, None]), 0, None
        )
        down = np.clip(
            np.minimum(top + side, top[:, None] + side[:, None]) - np.maximum(top, top[:, None]), 0, None
        )
        inter = across * down
        iou = inter / (side**2 + side[:, None] ** 2 - inter)
        np.fill_diagonal(iou, 0.0)
        for i, j in zip(*np.nonzero(iou >= TWIN_IOU), strict=True):
            found[members[i]].add(members[j])
    return found


def score(
    groups: list[set[str]],
    pairs: list[tuple[str, str, str]],
    paths: list[str],
    twin: dict[str, set[str]] | None = None,
) -> dict:
    group_of = {path: i for i, group in enumerate(groups) for path in group}
    found = [group_of.get(a, -1) == group_of.get(b, -2) for a, b, _ in pairs]
    by_kind = {
        kind: float(np.mean([f for f, (_, _, k) in zip(found, pairs, strict=True) if k == kind]))
        for kind in KINDS
    }
    planted = {a for a, _, _ in pairs} | {b for _, b, _ in pairs}
    untouched = [p for p in paths if p not in planted]
    grouped = sum(1 for p in untouched if p in group_of)
    result = {
        "recall": round(float(np.mean(found)), 4),
        "recall_by_kind": {k: round(v, 4) for k, v in by_kind.items()},
        "untouched_grouped": grouped,
        "untouched_share_grouped": round(grouped / len(untouched), 4),
        "groups": len(groups),
    }
    if twin is not None:
        unrelated = [
            p
            for p in untouched
            if p in group_of and not any(group_of.get(t) == group_of[p] for t in twin.get(p, ()))
        ]
        result["untouched_with_a_twin"] = sum(1 for p in untouched if twin.get(p))
        result["untouched_share_grouped_unrelated"] = round(len(unrelated) / len(untouched), 4)
    return result


def ours(folder: Path, pairs: list[tuple[str, str, str]], twin: dict[str, set[str]] | None) -> dict:
    from turtle_core.cleaning.duplicates import (
        DEFAULT_FRACTION,
        SHIFTED_RATIO,
        SIGNATURE_RATIO,
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
            **score([{paths[row] for row in g.rows} for g in groups], pairs, paths, twin),
            "groups_s": round(seconds, 3),
        }
        alone = duplicate_groups(alone_graph, alone_graph.default_threshold(fraction), image_priority(images))
        found = score([{paths[row] for row in g.rows} for g in alone], pairs, paths)
        embeddings_only[str(fraction)] = {k: found[k] for k in ("recall", "untouched_share_grouped")}
    by_ratio = {}
    for fraction in (3.0, 4.0, 5.0):
        for ratio in RATIOS:
            groups = duplicate_groups(graph, graph.default_threshold(fraction), image_priority(images), ratio)
            found = score([{paths[row] for row in g.rows} for g in groups], pairs, paths, twin)
            keys = ("recall", "untouched_share_grouped", "untouched_share_grouped_unrelated")
            by_ratio[f"{fraction}/{ratio}"] = {k: found[k] for k in keys if k in found}
    by_shifted = {}
    for shifted in SHIFTED_RATIOS:
        threshold = graph.default_threshold()
        groups = duplicate_groups(graph, threshold, image_priority(images), shifted_ratio=shifted)
        found = score([{paths[row] for row in g.rows} for g in groups], pairs, paths, twin)
        keys = ("recall", "recall_by_kind", "untouched_share_grouped", "untouched_share_grouped_unrelated")
        by_shifted[str(shifted)] = {k: found[k] for k in keys if k in found}
    return {
        "images": len(paths),
        "embed_s": round(embed_s, 1),
        "embedded_now": embedded.computed,
        "graph_s": round(graph_s, 2),
        "median_nn_distance": round(graph.median_distance(), 4),
        "default_fraction": DEFAULT_FRACTION,
        "signature_ratio": SIGNATURE_RATIO,
        "shifted_ratio": SHIFTED_RATIO,
        "at_default": sweep[str(DEFAULT_FRACTION)],
        "by_fraction": sweep,
        "embeddings_alone_by_fraction": embeddings_only,
        "by_fraction_and_signature_ratio": by_ratio,
        "by_shifted_ratio": by_shifted,
    }


def cleanvision(folder: Path, pairs: list[tuple[str, str, str]], twin: dict[str, set[str]] | None) -> dict:
    from cleanvision import Imagelab

    started = time.perf_counter()
    lab = Imagelab(data_path=str(folder))
    lab.find_issues({"near_duplicates": {}, "exact_duplicates": {}}, verbose=False)
    seconds = time.perf_counter() - started
    sets = lab.info["near_duplicates"]["sets"] + lab.info["exact_duplicates"]["sets"]
    groups = [{str(Path(p).relative_to(folder)) for p in group} for group in sets]
    paths = [str(Path(p).relative_to(folder)) for p in lab.issues.index]
    return {"seconds": round(seconds, 1), **score(groups, pairs, paths, twin)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="colour_crops,emoji")
    parser.add_argument("--no-cleanvision", action="store_true", help="keep the sets' cleanvision figures")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in args.sets.split(","):
        load = os.getloadavg()
        with tempfile.TemporaryDirectory(prefix="turtle-cleaning-") as work:  # no run clears another's
            folder, pairs = build(name, work=Path(work))
            result = {"planted_pairs": len(pairs), "per_kind": PER_KIND}
            twin = None
            if name in CROP_SETS:
                twin = twins(
                    crop_boxes(name, SUITE),
                    [str(p.relative_to(SUITE / name)) for p in (SUITE / name).rglob("*.png")],
                )
            result["turtle_labels"] = ours(folder, pairs, twin)
            if args.no_cleanvision and "cleanvision_phash" in results.get(name, {}):
                result["cleanvision_phash"] = results[name]["cleanvision_phash"]
            else:
                result["cleanvision_phash"] = cleanvision(folder, pairs, twin)
        result["load_before"] = [round(x, 2) for x in load]
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        results[name] = result
        print(name, json.dumps(result, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
