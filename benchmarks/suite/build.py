"""Build the curator-effort suite's labelled image folders (class sub-folders), idempotently.

    .venv/bin/python -m benchmarks suite.build                 # all sets into benchmarks/data/suite/
    .venv/bin/python -m benchmarks suite.build --sets digits,glyphs --cache /tmp/suite

A set whose folder carries a marker with the same spec is left alone; otherwise it is written to a
temporary sibling and renamed into place, so an interrupted build never looks complete. A set whose
source is missing is reported and skipped; the others are still built.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import DATA
from benchmarks.suite import sources
from benchmarks.suite.sources import Sample, SourceUnavailable, geometric_counts

DEFAULT_CACHE = DATA / "suite"
MARKER = ".suite-set.json"
BUILD_VERSION = 1


@dataclass(frozen=True)
class SetSpec:
    """One suite set: its name, what it is, its licence/origin and the generator of its images."""

    name: str
    description: str
    origin: str
    make: Callable[[Path], Iterator[Sample]]
    seed: int = 0


def _animal_imbalanced(_: Path) -> Iterator[Sample]:
    return sources.animal_mnist(geometric_counts(500, 50, 10), seed=1)


def _emoji(_: Path) -> Iterator[Sample]:
    return sources.emoji(geometric_counts(300, 60, len(sources.EMOJI_CLASSES)), seed=2)


COLOUR_PICTURES = {"histology": "ihc.png", "deep_field": "hubble_deep_field.jpg", "retina": "retina.jpg"}
GREY_TEXTURES = {"brick": "brick.png", "grass": "grass.png", "gravel": "gravel.png"}


# The crop sets' draws: pictures, count per picture, seed, grey, darkest mean kept.
CROP_SETS: dict[str, tuple[dict[str, str], list[int], int, bool, float]] = {
    "colour_crops": (COLOUR_PICTURES, [1200, 500, 250], 3, False, 20.0),
    "grey_textures": (GREY_TEXTURES, [200, 200, 200], 4, True, 0.0),
}


def _colour_crops(cache: Path) -> Iterator[Sample]:
    return sources.crops(*_crop_arguments("colour_crops", cache))


def _grey_textures(cache: Path) -> Iterator[Sample]:
    return sources.crops(*_crop_arguments("grey_textures", cache))


def _crop_arguments(name: str, cache: Path) -> tuple:
    pictures, counts, seed, grey, min_mean = CROP_SETS[name]
    return pictures, counts, sources.skimage_wheel(cache / "_sources"), seed, grey, min_mean


def crop_boxes(name: str, cache: Path = DEFAULT_CACHE) -> dict[str, tuple[str, int, int, int, int, bool]]:
    """Where each image of a crop set came from, by its path in the set (as `build_set` names it):
    (picture, x, y, side, quarter turns, flipped)."""
    counts: Counter[str] = Counter()
    boxes = {}
    for label, _, box in sources.crop_draws(*_crop_arguments(name, cache)):
        boxes[f"{label}/{label}_{counts[label]:05d}.png"] = (label, *box)
        counts[label] += 1
    return boxes


SETS: dict[str, SetSpec] = {
    spec.name: spec
    for spec in (
        SetSpec(
            "animal_mnist",
            "all 10,000 bundled Animal-MNIST silhouettes, 10 balanced classes, grey 28×28",
            "assets/animal_mnist (see its LICENSE)",
            lambda _: sources.animal_mnist(None, seed=0),
        ),
        SetSpec(
            "animal_imbalanced",
            "Animal-MNIST resampled 500→50 per class (geometric), 10 classes, grey",
            "assets/animal_mnist (see its LICENSE)",
            _animal_imbalanced,
        ),
        SetSpec(
            "digits",
            "scikit-learn's 1,797 handwritten digits, 10 classes, 8×8 grey upsampled to 32×32",
            "scikit-learn load_digits (UCI optical digits, CC BY 4.0)",
            lambda _: sources.sklearn_digits(),
        ),
        SetSpec(
            "glyphs",
            "26 capital letters × 30, random DejaVu/Liberation font, size, rotation, offset, stroke; grey 64×64",
            "Debian fonts-dejavu-core (Bitstream Vera licence) and fonts-liberation (SIL OFL 1.1)",
            lambda _: sources.glyphs(30, seed=5),
        ),
        SetSpec(
            "emoji",
            "colour emoji in 10 categories of 10 emoji each, 300→60 per class, scaled, rotated, random backgrounds, 96×96",
            "Debian fonts-noto-color-emoji (SIL OFL 1.1)",
            _emoji,
        ),
        SetSpec(
            "colour_crops",
            "crops of three colour photographs (histology, Hubble deep field, retina), 1200/500/250, 96×96",
            "scikit-image 0.26.0 wheel's skimage/data: ihc.png (CMMI, no known copyright restrictions), "
            "hubble_deep_field.jpg (NASA, public domain), retina.jpg (Wikimedia, CC0 1.0)",
            _colour_crops,
        ),
        SetSpec(
            "grey_textures",
            "crops of the brick, grass and gravel textures, 200 each, grey 96×96",
            "scikit-image 0.26.0 wheel's skimage/data: brick.png, gravel.png (CC0Textures, CC0), grass.png (CC0)",
            _grey_textures,
        ),
    )
}


def _marker(spec: SetSpec) -> dict[str, object]:
    return {"set": spec.name, "version": BUILD_VERSION, "seed": spec.seed, "description": spec.description}


def is_complete(folder: Path, spec: SetSpec) -> bool:
    try:
        stored = json.loads((folder / MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return {k: stored.get(k) for k in ("set", "version", "seed", "description")} == _marker(spec)


def build_set(spec: SetSpec, cache: Path) -> dict[str, int]:
    """Write one set to `cache/<name>/<class>/<class>_<i>.png` unless already complete; class counts."""
    dest = cache / spec.name
    if is_complete(dest, spec):
        return json.loads((dest / MARKER).read_text("utf-8"))["counts"]
    partial = cache / f".{spec.name}.partial-{uuid.uuid4().hex[:8]}"
    counts: Counter[str] = Counter()
    try:
        for label, image in spec.make(cache):
            (partial / label).mkdir(parents=True, exist_ok=True)
            image.save(partial / label / f"{label}_{counts[label]:05d}.png")
            counts[label] += 1
        marker = {**_marker(spec), "origin": spec.origin, "counts": dict(sorted(counts.items()))}
        (partial / MARKER).write_text(json.dumps(marker, indent=1), "utf-8")
        if dest.exists():
            shutil.rmtree(dest)  # an incomplete or outdated build of this set
        os.replace(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return dict(sorted(counts.items()))


def build_all(names: list[str], cache: Path) -> dict[str, dict[str, int]]:
    """Build every named set; a set whose source is unavailable is reported and skipped."""
    cache.mkdir(parents=True, exist_ok=True)
    built: dict[str, dict[str, int]] = {}
    for name in names:
        try:
            counts = build_set(SETS[name], cache)
        except SourceUnavailable as error:
            print(f"{name}: skipped ({error})", flush=True)
            continue
        built[name] = counts
        sizes = list(counts.values())
        print(
            f"{name}: {sum(sizes)} images, {len(sizes)} classes, largest/smallest {max(sizes) / min(sizes):.1f}",
            flush=True,
        )
    return built


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names (default: all)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    names = [n for n in args.sets.split(",") if n]
    unknown = [n for n in names if n not in SETS]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}")
    build_all(names, args.cache)
