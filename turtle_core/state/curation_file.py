"""The curation file: a `Curation`'s arrays, names and undo/redo stacks as one `.npz`.

The file records the image list it was made for (`image_key`) and, from format 2 on, the id of the
discovery it was made from, so that it is never paired with another discovery.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from turtle_core.state.history import Step, steps_from_arrays, steps_to_arrays

FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)  # format 1 had no discovery id; before 3 `checked` was called `touched`


class CurationError(ValueError):
    """A curation file cannot be used: corrupt, unreadable, or made for a different image list."""


class CurationMismatch(CurationError):
    """The curation file belongs to a different list of images (or another discovery)."""


def image_list_key(paths: Iterable[str]) -> str:
    """A stable fingerprint of an ordered list of image paths (pass it to `save`/`load`)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.fsencode(path))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class CurationRecord:
    """Everything a curation file holds: the per-image arrays, the names, the version and the undo/redo
    stacks (`Curation.to_record` / `Curation.from_record` convert)."""

    assignments: np.ndarray
    checked: np.ndarray
    before_exclusion: np.ndarray
    confidence: np.ndarray | None
    names: dict[int, str]
    version: int
    undo: list[Step]
    redo: list[Step]
    lineage: str = ""

    @property
    def n_images(self) -> int:
        return int(self.assignments.shape[0])


@dataclass(frozen=True)
class CurationHeader:
    """What a curation file says it belongs to."""

    format: int
    n_images: int
    image_key: str
    discovery_id: str | None


def curation_to_bytes(record: CurationRecord, image_key: str = "", discovery_id: str | None = None) -> bytes:
    undo_meta, undo_arrays = steps_to_arrays("undo", record.undo)
    redo_meta, redo_arrays = steps_to_arrays("redo", record.redo)
    meta = {
        "format": FORMAT_VERSION,
        "n_images": record.n_images,
        "image_key": image_key,
        "discovery_id": discovery_id,
        "version": record.version,
        "lineage": record.lineage,
        "names": {str(k): v for k, v in record.names.items()},
        "undo": undo_meta,
        "redo": redo_meta,
    }
    arrays: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps(meta, ensure_ascii=True).encode("ascii"), np.uint8),
        "assignments": record.assignments,
        "checked": record.checked,
        "before_exclusion": record.before_exclusion,
        "confidence": record.confidence,
        **undo_arrays,
        **redo_arrays,
    }
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def curation_from_bytes(
    data: bytes,
    *,
    source: str = "curation file",
    expected_image_key: str | None = None,
    expected_n_images: int | None = None,
    expected_discovery_id: str | None = None,
) -> CurationRecord:
    """Read bytes written by `curation_to_bytes`. Raises `CurationError` for a corrupt file and
    `CurationMismatch` when it was made for other images or (format 2) another discovery."""
    header, record = read_curation_file(data, source=source)
    n = header.n_images
    if expected_n_images is not None and n != expected_n_images:
        raise CurationMismatch(
            f"this curation is for {n} images, but the project now has {expected_n_images}"
        )
    if expected_image_key is not None and header.image_key != expected_image_key:
        raise CurationMismatch("this curation was made for a different list of images")
    if (
        expected_discovery_id is not None
        and header.discovery_id is not None
        and header.discovery_id != expected_discovery_id
    ):
        raise CurationMismatch("this curation was made from another discovery")
    return record


def read_curation_file(
    data: bytes, *, source: str = "curation file"
) -> tuple[CurationHeader, CurationRecord]:
    """What a curation file says it belongs to, and what it holds (no check against a discovery).
    Raises `CurationError` for a corrupt file."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
            arrays = {name.replace("touched", "checked"): loaded[name] for name in loaded.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode("ascii"))
        header = _header(meta)
        n = header.n_images
        record = CurationRecord(
            arrays["assignments"],
            arrays["checked"],
            arrays["before_exclusion"],
            arrays.get("confidence"),  # absent before refine existed: the discovery's
            {int(k): v for k, v in meta["names"].items()},
            int(meta["version"]),
            steps_from_arrays(meta["undo"], arrays, "undo", n),
            steps_from_arrays(meta["redo"], arrays, "redo", n),
            # Files written before the lineage existed: one derived from their bytes, the same in every process.
            str(meta.get("lineage") or "file-" + hashlib.sha256(data).hexdigest()[:24]),
        )
    except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError, zipfile.BadZipFile) as error:
        raise CurationError(f"{source} is corrupt or unreadable ({error}); it was not loaded") from error
    return header, record


def _header(meta: dict) -> CurationHeader:
    if meta.get("format") not in READABLE_FORMATS:
        raise ValueError(f"unsupported curation format {meta.get('format')!r}")
    discovery_id = meta.get("discovery_id")
    return CurationHeader(
        int(meta["format"]),
        int(meta["n_images"]),
        str(meta["image_key"]),
        str(discovery_id) if discovery_id is not None else None,
    )
