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


def checked_cluster_request(request: int | tuple[int, int], n_images: int) -> int | tuple[int, int]:
    """A number of clusters or a range, checked against the number of images (ranges are clipped)."""
    if isinstance(request, tuple | list):
        low, high = (int(value) for value in request)
        if low > high:
            low, high = high, low
        if low < 2:
            raise ProjectError("The number of categories must be at least 2.")
        high = min(high, n_images)
        if low > high:
            raise ProjectError(f"Only {n_images} usable images: too few for {low} categories.")
        return (low, high) if low < high else low
    count = int(request)
    if count < 2:
        raise ProjectError("The number of categories must be at least 2.")
    if count > n_images:
        raise ProjectError(f"Only {n_images} usable images: too few for {count} categories.")
    return count


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
