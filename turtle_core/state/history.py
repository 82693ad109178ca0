"""Undo history of a `Curation`: each edit as a compact diff, and how a stack of them is stored."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Step:
    """One edit as a diff: rows whose values changed, and cluster names that changed (None = no entry)."""

    description: str
    indices: np.ndarray  # int32 rows
    old_assign: np.ndarray  # int32
    new_assign: np.ndarray
    old_checked: np.ndarray  # bool
    new_checked: np.ndarray
    old_before: np.ndarray  # int32: cluster to restore an excluded image to
    new_before: np.ndarray
    old_conf: np.ndarray  # float32 review confidence (NaN: the discovery's)
    new_conf: np.ndarray
    old_names: dict[int, str | None] = field(default_factory=dict)
    new_names: dict[int, str | None] = field(default_factory=dict)
    # Who made the edit ("" unknown; the app uses "tab:<id>", the command line "cli"), when, and an id that
    # lets an undo say exactly which step it means.
    origin: str = ""
    made: float = field(default_factory=time.time)
    step_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    ARRAYS = (
        "indices",
        "old_assign",
        "new_assign",
        "old_checked",
        "new_checked",
        "old_before",
        "new_before",
        "old_conf",
        "new_conf",
    )

    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.ARRAYS)


def steps_to_arrays(prefix: str, steps: list[Step]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """A stack of steps as JSON-able descriptions plus one concatenated array per diff column."""
    metas = [
        {
            "description": step.description,
            "n": int(step.indices.size),
            "old_names": {str(k): v for k, v in step.old_names.items()},
            "new_names": {str(k): v for k, v in step.new_names.items()},
            "origin": step.origin,
            "made": step.made,
            "id": step.step_id,
        }
        for step in steps
    ]
    arrays: dict[str, np.ndarray] = {}
    for name in Step.ARRAYS:
        parts = [getattr(step, name) for step in steps]
        dtype = _dtype(name)
        arrays[f"{prefix}_{name}"] = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
    return metas, arrays


def steps_from_arrays(
    metas: list[dict], arrays: dict[str, np.ndarray], prefix: str, n_images: int
) -> list[Step]:
    """Inverse of `steps_to_arrays`; raises ValueError when the columns do not fit the descriptions."""
    total = sum(int(m["n"]) for m in metas)
    # Files written before review confidences existed lack their columns: the discovery's (NaN).
    columns = {
        name: arrays.get(f"{prefix}_{name}", np.full(total, np.nan, np.float32) if "conf" in name else None)
        for name in Step.ARRAYS
    }
    if any(col is None for col in columns.values()):
        raise ValueError(f"{prefix} history arrays are missing")
    if any(col.shape != (total,) for col in columns.values()):
        raise ValueError(f"{prefix} history arrays do not match their descriptions")
    if total and (columns["indices"].min() < 0 or columns["indices"].max() >= n_images):
        raise ValueError(f"{prefix} history refers to images that do not exist")
    steps, start = [], 0
    for m in metas:
        end = start + int(m["n"])
        parts = [columns[name][start:end].copy() for name in Step.ARRAYS]
        steps.append(
            Step(
                str(m["description"]),
                *parts,
                {int(k): v for k, v in m["old_names"].items()},
                {int(k): v for k, v in m["new_names"].items()},
                str(m.get("origin", "")),
                float(m.get("made", 0.0)),
                str(m.get("id") or f"{prefix}-{len(steps)}"),
            )
        )
        start = end
    return steps


def _dtype(name: str) -> type:
    if "checked" in name:
        return bool
    return np.float32 if "conf" in name else np.int32
