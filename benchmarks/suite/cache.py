"""On-disk cache of the suite's runs, keyed by hashes of what produced them (code and features)."""

from __future__ import annotations

import hashlib
import inspect
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from turtle_core.atomic import atomic_write_bytes, atomic_write_json

REPO = Path(__file__).resolve().parents[2]
# What a discovery's result depends on: the discovery package and the engine constants.
ENGINE_SOURCES = ("turtle_core/discovery", "turtle_core/constants.py")
# The propagation's learner, which no discovery imports: a change there re-runs the refines, not the starts.
PROPAGATION_SOURCES = ("turtle_core/discovery/refine.py", "turtle_core/discovery/probe.py")


def digest_files(paths: Iterable[Path]) -> str:
    """sha256 over the files' relative names and bytes (sorted, so the order given does not matter)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(REPO) if path.is_relative_to(REPO) else path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def engine_digest(roots: Iterable[str] = ENGINE_SOURCES, leave_out: Iterable[str] = ()) -> str:
    """Hash of the engine's discovery sources: any change there re-runs the product's methods."""
    skipped = {REPO / name for name in leave_out}
    files: list[Path] = []
    for root in roots:
        path = REPO / root
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return digest_files(path for path in files if path not in skipped and path.exists())


def discovery_digest() -> str:
    """Hash of what a discovery's start depends on: the engine's sources less the propagation's learner."""
    return engine_digest(leave_out=PROPAGATION_SOURCES)


def source_digest(*functions: Callable[..., Any] | type) -> str:
    """Hash of some functions' or classes' source (an adapter or anchor changed → its runs re-run)."""
    return hashlib.sha256("".join(inspect.getsource(f) for f in functions).encode()).hexdigest()


def key_of(**parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class RunCache:
    """A folder of `<key>.npz` (labels, confidence, seconds) and `<key>.json` (curator results)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get_start(self, key: str) -> tuple[np.ndarray, np.ndarray, float] | None:
        path = self.folder / f"{key}.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return data["labels"], data["confidence"], float(data["seconds"])

    def put_start(self, key: str, labels: np.ndarray, confidence: np.ndarray, seconds: float) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, labels=labels, confidence=confidence, seconds=np.float64(seconds))
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.folder / f"{key}.npz", buffer.getvalue())

    def get_json(self, key: str) -> dict[str, Any] | None:
        path = self.folder / f"{key}.json"
        return json.loads(path.read_text("utf-8")) if path.exists() else None

    def put_json(self, key: str, value: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.folder / f"{key}.json", value)
