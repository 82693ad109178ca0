"""Checks of what a user asks a project for, and small helpers of the discovery pipeline."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from turtle_core.ingest.scan import ImageRecord
from turtle_core.state.errors import ProjectError


def check_folder(path: Path) -> None:
    """Raise `ProjectError` unless `path` is a readable folder."""
    if not path.exists():
        raise ProjectError(f"The folder {path} does not exist.")
    if not path.is_dir():
        raise ProjectError(f"{path} is a file, not a folder of images.")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ProjectError(f"The folder {path} cannot be read (permission denied).")


def cluster_request_problem(request: int | tuple[int, int], n_images: int) -> str | None:
    """Why discovery cannot find `request` categories (a number or a range) among `n_images` usable images,
    as a sentence saying what to change; None when it can. TURTLE needs one image per category at least
    (`discovery/turtle.py`), so a fixed number must not exceed the images and a range must start at or
    below them (its top is clipped); every count is at least 2."""
    low = min(int(value) for value in request) if isinstance(request, tuple | list) else int(request)
    if low < 2:
        return "The number of categories must be at least 2."
    images = f"{n_images} usable image" if n_images == 1 else f"{n_images} usable images"
    if n_images < 2:
        return (
            f"Only {images}: discovery needs at least 2 (one per category). Add images to the folder and "
            "rescan it on the Project page."
        )
    if low <= n_images:
        return None
    if isinstance(request, tuple | list):
        return (
            f"Only {images}: too few for a range starting at {low} categories. Start the range at "
            f"{n_images} or fewer, or add images to the folder."
        )
    return (
        f"Only {images}: too few for {low} categories. Choose at most {n_images} categories, or add "
        "images to the folder."
    )


def checked_cluster_request(request: int | tuple[int, int], n_images: int) -> int | tuple[int, int]:
    """A number of clusters or a range, checked against the number of images (ranges are clipped);
    raises `ProjectError` with `cluster_request_problem`'s sentence."""
    problem = cluster_request_problem(request, n_images)
    if problem is not None:
        raise ProjectError(problem)
    if isinstance(request, tuple | list):
        low, high = sorted(int(value) for value in request)
        high = min(high, n_images)
        return (low, high) if low < high else low
    return int(request)


def rows_for(vectors: np.ndarray, mask: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Rows of `vectors` (one per True in `mask`) for the records where `keep` is True."""
    position = np.cumsum(mask) - 1
    return np.asarray(vectors[position[keep]], dtype=np.float32)


def folder_labels(images: Sequence[ImageRecord]) -> list[str] | None:
    """Class sub-folder names when every image has one and there are at least two (for scoring only)."""
    labels = [record.label for record in images]
    if not labels or any(label is None for label in labels) or len(set(labels)) < 2:
        return None
    return [str(label) for label in labels]


def jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(params), default=str))
