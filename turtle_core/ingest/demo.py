"""The bundled Animal-MNIST subset, written out as an image folder with one sub-folder per class."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from turtle_core.atomic import atomic_write_json
from turtle_core.paths import turtle_home
from turtle_core.progress import ProgressCallback, ProgressMeter

ANIMAL_CLASSES: tuple[str, ...] = (
    "bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra",
)  # fmt: skip
DATA_FILE = Path(__file__).resolve().parents[2] / "assets" / "animal_mnist" / "animal_mnist.npz"
MARKER = ".turtle-demo.json"  # written last; hidden, so scans ignore it
_STALE_PARTIAL_S = 3600.0


def load_animal_mnist() -> tuple[np.ndarray, np.ndarray]:
    """All bundled images (uint8 N×28×28) and labels (uint8 N, indices into `ANIMAL_CLASSES`)."""
    with np.load(DATA_FILE, allow_pickle=False) as data:
        return np.asarray(data["images"], dtype=np.uint8), np.asarray(data["labels"], dtype=np.uint8)


def default_demo_dir(per_class: int = 200) -> Path:
    """Where the demo folder with `per_class` images per class lives by default."""
    return turtle_home() / "demo" / f"animal-mnist-{per_class * len(ANIMAL_CLASSES)}"


def _marker(per_class: int, seed: int) -> dict[str, object]:
    return {"dataset": "animal-mnist", "per_class": per_class, "seed": seed, "classes": list(ANIMAL_CLASSES)}


def is_complete_demo(dest: Path, per_class: int, seed: int = 0) -> bool:
    """True when `dest` is a finished demo folder written with these settings."""
    try:
        return json.loads((dest / MARKER).read_text("utf-8")) == _marker(per_class, seed)
    except (OSError, ValueError):
        return False


def demo_indices(labels: np.ndarray, per_class: int, seed: int = 0) -> dict[int, np.ndarray]:
    """Which bundled images the demo of `per_class` images per class holds: class -> sorted indices."""
    rng = np.random.default_rng(seed)
    return {
        c: np.sort(rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False))
        for c in range(len(ANIMAL_CLASSES))
    }


def write_demo_folder(
    dest: Path | None = None,
    per_class: int = 200,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write a balanced random subset, `dest/<class>/<class>_<index>.png` (`index` = position in the
    bundled set), and return `dest` (default `default_demo_dir(per_class)`). Deterministic for a
    seed; does nothing when already complete. Built in a temporary sibling folder renamed into
    place, so an interrupted write never looks complete."""
    dest = Path(dest) if dest is not None else default_demo_dir(per_class)
    if is_complete_demo(dest, per_class, seed):
        return dest
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not a complete demo folder; choose another location.")

    images, labels = load_animal_mnist()
    available = np.bincount(labels, minlength=len(ANIMAL_CLASSES)).min()
    if not 1 <= per_class <= available:
        raise ValueError(f"per_class must be between 1 and {available}, got {per_class}")
    chosen = demo_indices(labels, per_class, seed)

    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(dest)
    partial = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    meter = ProgressMeter("demo", per_class * len(ANIMAL_CLASSES), progress)
    try:
        for c, indices in chosen.items():
            name = ANIMAL_CLASSES[c]
            (partial / name).mkdir(parents=True)
            for index in indices:
                Image.fromarray(images[index]).save(partial / name / f"{name}_{index:05d}.png")
                meter.advance(1)
        atomic_write_json(partial / MARKER, _marker(per_class, seed))
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        os.replace(partial, dest)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, OSError) and is_complete_demo(dest, per_class, seed):
            return dest  # another writer finished first
        raise
    return dest


def _remove_stale_partials(dest: Path) -> None:
    now = time.time()
    for leftover in dest.parent.glob(f".{dest.name}.partial-*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_PARTIAL_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass
