"""Image-quality flags on suite folders of colour pictures with planted problem images, agreement with
cleanvision on the same folder, and what measuring quality adds to a scan.

    nice -n 10 .venv/bin/python -m benchmarks cleaning_quality --parts flags,cost

flags  colour_crops and emoji (untouched; --sets: others, e.g. the grey grey_textures,digits) plus 100
       planted images of each kind made from other pictures of the sets (grey pictures stay grey files):
       dark (brightness × 0.2), blurry (Gaussian blur, radius 2), odd aspect (a 4:1 strip of the
       picture) and grayscale. Recall: planted images that get their flag; untouched flagged: the share
       of the untouched images that get any flag (and any but grayscale, for sets of grey pictures).
       Agreement: per flag, the share of images on which our flag and cleanvision's (0.3.7, defaults)
       agree. Results under "flags", or "flags:SETS" for other sets.
cost   the scan of a folder with and without the quality scores and pixel signatures, alternated (--rounds,
       9 each, after one warm-up round; medians): 250 of the suite's 96 px PNGs (colour_crops/retina), 300
       JPEG photos of 1,024 × 768 and 40 of 4,000 × 3,000.
Writes benchmarks/results/cleaning_quality.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from benchmarks.common import REPO as ROOT

SUITE = ROOT / "benchmarks" / "data" / "suite"
WORK = Path(tempfile.gettempdir()) / "turtle-quality-benchmark"
RESULTS = ROOT / "benchmarks" / "results" / "cleaning_quality.json"
PLANTED = {"dark": "dark", "blurry": "blurry", "strip": "odd_aspect_ratio", "grey": "grayscale"}
PER_KIND = 100
DEFAULT_SETS = "colour_crops,emoji"


def plant(image: Image.Image, kind: str) -> Image.Image:
    if kind == "dark":
        return ImageEnhance.Brightness(image).enhance(0.2)
    if kind == "blurry":
        return image.filter(ImageFilter.GaussianBlur(2))
    if kind == "strip":
        width, height = image.size
        return image.crop((0, height * 3 // 8, width, height * 3 // 8 + max(1, width // 4)))
    if kind == "grey":
        return image.convert("L")
    raise ValueError(kind)


def build(sets: list[str], seed: int = 0) -> tuple[Path, dict[str, str]]:
    """Untouched images (linked) and planted ones; relative path → kind ("untouched" or a PLANTED key)."""
    folder = WORK / "flags"
    if folder.exists():
        shutil.rmtree(folder)
    rng = np.random.default_rng(seed)
    kinds: dict[str, str] = {}
    sources: list[Path] = []
    for name in sets:
        for path in sorted((SUITE / name).rglob("*.png")):
            target = folder / name / path.relative_to(SUITE / name)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, target)
            kinds[str(target.relative_to(folder))] = "untouched"
            sources.append(path)
    chosen = rng.choice(len(sources), PER_KIND * len(PLANTED), replace=False)
    (folder / "planted").mkdir()
    for number, index in enumerate(chosen):
        kind = list(PLANTED)[number % len(PLANTED)]
        source = Image.open(sources[index])
        image = plant(source if source.mode == "L" else source.convert("RGB"), kind)
        rel = f"planted/{kind}_{number:04d}.png"
        image.save(folder / rel)
        kinds[rel] = kind
    return folder, kinds


def part_flags(sets: list[str]) -> dict:
    from cleanvision import Imagelab

    from turtle_core.cleaning.quality import QUALITY_FLAGS, quality_flags
    from turtle_core.ingest.scan import scan_folder

    folder, kinds = build(sets)
    scan = scan_folder(folder)
    flags = quality_flags(scan.images)
    kind = [kinds[record.path] for record in scan.images]
    recall = {}
    for planted, flag in PLANTED.items():
        rows = [i for i, k in enumerate(kind) if k == planted]
        recall[f"{planted} → {flag}"] = round(float(flags.column(flag)[rows].mean()), 4)
    untouched = np.asarray([k == "untouched" for k in kind])
    any_flag = flags.table[untouched].any(1)
    not_grey = [i for i, f in enumerate(QUALITY_FLAGS) if f != "grayscale"]
    any_but_grey = flags.table[untouched][:, not_grey].any(1)
    untouched_by_flag = {f: int(flags.column(f)[untouched].sum()) for f in QUALITY_FLAGS}
    started = time.perf_counter()
    lab = Imagelab(data_path=str(folder))
    lab.find_issues({flag: {} for flag in QUALITY_FLAGS}, verbose=False)
    cleanvision_s = time.perf_counter() - started
    issues = lab.issues
    issues.index = [str(Path(p).relative_to(folder)) for p in issues.index]
    agreement, theirs_recall = {}, {}
    for flag in QUALITY_FLAGS:
        theirs = np.asarray([bool(issues.loc[r.path, f"is_{flag}_issue"]) for r in scan.images])
        agreement[flag] = round(float((theirs == flags.column(flag)).mean()), 4)
        for planted, wanted in PLANTED.items():
            if wanted == flag:
                rows = [i for i, k in enumerate(kind) if k == planted]
                theirs_recall[f"{planted} → {flag}"] = round(float(theirs[rows].mean()), 4)
    return {
        "sets": sets,
        "images": len(scan.images),
        "untouched": int(untouched.sum()),
        "planted_per_kind": PER_KIND,
        "recall": recall,
        "cleanvision_recall": theirs_recall,
        "untouched_share_flagged": round(float(any_flag.mean()), 4),
        "untouched_share_flagged_but_grayscale": round(float(any_but_grey.mean()), 4),
        "untouched_flagged_by_flag": untouched_by_flag,
        "agreement_with_cleanvision": agreement,
        "cleanvision_s": round(cleanvision_s, 1),
    }


def _photos(folder: Path, count: int = 300, size: tuple[int, int] = (1024, 768)) -> None:
    wheel = next((SUITE / "_sources").glob("*.whl"))
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        pictures = [
            Image.open(io.BytesIO(archive.read(f"skimage/data/{name}"))).convert("RGB")
            for name in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png")
        ]
    for i in range(count):
        picture = pictures[i % len(pictures)]
        width, height = picture.size
        box = (int(rng.integers(0, width // 4)), int(rng.integers(0, height // 4)))
        crop = picture.crop((*box, box[0] + width * 3 // 4, box[1] + height * 3 // 4))
        crop.resize(size, Image.Resampling.BICUBIC).save(folder / f"photo_{i:04d}.jpg", quality=90)


def part_cost(sets: list[str], rounds: int) -> dict:
    from turtle_core.ingest.scan import scan_folder

    photos, camera = WORK / "photos", WORK / "camera"
    if not photos.exists():
        _photos(photos)
    if not camera.exists():
        _photos(camera, count=40, size=(4000, 3000))
    folders = {
        "suite_png_96px": SUITE / sets[0] / "retina",
        "jpeg_1024x768": photos,
        "jpeg_4000x3000": camera,
    }
    out = {}
    for label, folder in folders.items():
        scan_folder(folder, quality=True)  # warm the file cache
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for quality in (False, True):
                started = time.perf_counter()
                result = scan_folder(folder, quality=quality)
                times[quality].append(time.perf_counter() - started)
        plain, measured = float(np.median(times[False])), float(np.median(times[True]))
        out[label] = {
            "images": len(result.images),
            "scan_s": round(plain, 3),
            "scan_with_quality_s": round(measured, 3),
            "added": round(measured / plain - 1.0, 4),
            "rounds": rounds,
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="flags,cost")
    parser.add_argument("--sets", default=DEFAULT_SETS)
    parser.add_argument("--rounds", type=int, default=9, help="cost: scans of each kind per folder")
    args = parser.parse_args(argv)
    sets = args.sets.split(",")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for part in args.parts.split(","):
        load = os.getloadavg()
        result = part_flags(sets) if part == "flags" else part_cost(sets, args.rounds)
        result["load_before"] = [round(x, 2) for x in load]
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        key = f"flags:{args.sets}" if part == "flags" and args.sets != DEFAULT_SETS else part
        results[key] = result
        print(part, json.dumps(result, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
