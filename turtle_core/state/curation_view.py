"""The read side of a curation: per-image cluster ids, names, checked flags, queries and checks.

`Curation` (in `curation.py`) adds the edits, undo/redo and persistence on top of this.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

from turtle_core.constants import EXCLUDED
from turtle_core.state.curation_file import CurationRecord
from turtle_core.state.history import Step

ViewT = TypeVar("ViewT", bound="CurationView")


class CurationView:
    """The state of a curation and every read-only query on it (see `Curation` for the edits)."""

    def __init__(
        self,
        assignments: np.ndarray,
        checked: np.ndarray | None = None,
        names: dict[int, str] | None = None,
        *,
        before_exclusion: np.ndarray | None = None,
        confidence: np.ndarray | None = None,
        version: int = 0,
        lineage: str | None = None,
    ) -> None:
        assign = np.asarray(assignments)
        if assign.ndim != 1:
            raise ValueError(f"cluster labels must be one-dimensional, got shape {assign.shape}")
        if assign.size and not np.issubdtype(assign.dtype, np.integer):
            raise ValueError(f"cluster labels must be integers, got {assign.dtype}")
        if assign.size and assign.min() < EXCLUDED:
            raise ValueError(f"cluster ids must be >= 0 (or {EXCLUDED} for excluded)")
        self._assign = assign.astype(np.int32, copy=True)
        n = self._assign.shape[0]
        self._checked = np.zeros(n, bool) if checked is None else np.asarray(checked, bool).copy()
        self._before = (
            self._assign.copy() if before_exclusion is None else np.asarray(before_exclusion, np.int32).copy()
        )
        # Review confidence per image once a refine re-estimated it; NaN: the discovery's still holds.
        self._confidence = (
            np.full(n, np.nan, np.float32)
            if confidence is None
            else np.asarray(confidence, np.float32).copy()
        )
        if self._checked.shape != (n,) or self._before.shape != (n,) or self._confidence.shape != (n,):
            raise ValueError(
                "assignments, checked, before_exclusion and confidence must have the same length"
            )
        self._names: dict[int, str] = {int(k): str(v) for k, v in (names or {}).items()}
        self.version = int(version)
        # Which curation this is (a new one for every curation started from a discovery): with `version`,
        # it names one state of it across processes and restarts (`state_id`).
        self.lineage = uuid.uuid4().hex if lineage is None else str(lineage)
        self._undo: list[Step] = []
        self._redo: list[Step] = []
        self.origin = ""  # stamped on the steps of the edits made now (`ProjectState.apply` sets it)

    @classmethod
    def from_discovery(cls: type[ViewT], labels: np.ndarray, names: dict[int, str] | None = None) -> ViewT:
        """Start curating from discovered cluster labels (optionally with initial names)."""
        curation = cls(np.asarray(labels))
        for cid in curation.cluster_ids():
            curation._names[cid] = f"Cluster {cid}"
        for cid, name in (names or {}).items():
            curation._names[int(cid)] = clean_name(name)
        return curation

    def to_record(self) -> CurationRecord:
        """The state a curation file holds (arrays shared, not copied: serialise it at once)."""
        return CurationRecord(
            self._assign,
            self._checked,
            self._before,
            self._confidence,
            dict(self._names),
            self.version,
            list(self._undo),
            list(self._redo),
            self.lineage,
        )

    @classmethod
    def from_record(cls: type[ViewT], record: CurationRecord) -> ViewT:
        """A curation holding `record`'s state (validated as the constructor does)."""
        curation = cls(
            record.assignments,
            record.checked,
            record.names,
            before_exclusion=record.before_exclusion,
            confidence=record.confidence,
            version=record.version,
            lineage=record.lineage or None,
        )
        if curation.n_images != record.n_images:
            raise ValueError("array length does not match the recorded number of images")
        curation._undo = list(record.undo)
        curation._redo = list(record.redo)
        return curation

    # ----------------------------------------------------------------- read-only views and queries

    @property
    def state_id(self) -> str:
        """Names this exact state: it changes with every edit, undo and redo, is saved with the curation, and
        a curation started again (a new discovery, a damaged file replaced) never repeats an earlier one."""
        return f"{self.lineage}/{self.version}"

    @property
    def n_images(self) -> int:
        return int(self._assign.shape[0])

    @property
    def assignments(self) -> np.ndarray:
        """Cluster id per image (`EXCLUDED` for excluded); a read-only view."""
        return _readonly(self._assign)

    @property
    def checked(self) -> np.ndarray:
        """Whether a curator checked this image (moved, confirmed, excluded or restored it by hand); a read-only view."""
        return _readonly(self._checked)

    def origins(self) -> np.ndarray:
        """Per image: the cluster it was in when the curator checked it, as the undo history tells (a checked
        image whose origin differs from its cluster was moved by the curator: that label was wrong); its
        current cluster for unchecked images and for images checked in edits older than the history keeps."""
        origin = self._assign.copy()
        for step in self._undo:  # oldest first; the step that checks an image says where it was
            became = (
                ~step.old_checked
                & step.new_checked
                & (step.old_assign != EXCLUDED)
                & (step.new_assign != EXCLUDED)
            )
            origin[step.indices[became]] = step.old_assign[became]
        checked = self._checked & (self._assign != EXCLUDED)
        return np.where(checked, origin, self._assign)

    def review_confidence(self, discovery_confidence: np.ndarray) -> np.ndarray:
        """Per image: the last refine's confidence where it re-estimated one, else the discovery's."""
        return np.where(
            np.isnan(self._confidence), np.asarray(discovery_confidence, np.float32), self._confidence
        )

    @property
    def names(self) -> dict[int, str]:
        """Display name of every non-empty cluster."""
        return {cid: self.name_of(cid) for cid in self.cluster_ids()}

    def cluster_ids(self) -> list[int]:
        """Ids of the non-empty clusters, sorted."""
        ids = np.unique(self._assign)
        return [int(c) for c in ids if c != EXCLUDED]

    def members(self, cluster_id: int) -> np.ndarray:
        """Row indices of the images in `cluster_id` (or excluded images for `EXCLUDED`), ascending."""
        return np.flatnonzero(self._assign == int(cluster_id))

    def sizes(self) -> dict[int, int]:
        """Number of images per non-empty cluster."""
        ids, counts = np.unique(self._assign, return_counts=True)
        return {int(c): int(n) for c, n in zip(ids, counts, strict=True) if c != EXCLUDED}

    def excluded(self) -> np.ndarray:
        """Row indices of excluded images."""
        return self.members(EXCLUDED)

    def name_of(self, cluster_id: int) -> str:
        cid = int(cluster_id)
        if cid == EXCLUDED:
            return "Excluded"
        return self._names.get(cid, f"Cluster {cid}")

    def labels_as_names(self) -> list[str | None]:
        """The display name of each image's cluster; None for excluded images."""
        lookup = {cid: self.name_of(cid) for cid in self.cluster_ids()}
        return [None if c == EXCLUDED else lookup[int(c)] for c in self._assign.tolist()]

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def history(self) -> list[str]:
        """Descriptions of the edits that undo would revert, oldest first."""
        return [step.description for step in self._undo]

    def redo_history(self) -> list[str]:
        """Descriptions of the edits that redo would re-apply, next one first."""
        return [step.description for step in reversed(self._redo)]

    def last_step(self) -> Step | None:
        """The edit undo would revert (its description, origin, time and id)."""
        return self._undo[-1] if self._undo else None

    def next_redo(self) -> Step | None:
        """The edit redo would re-apply."""
        return self._redo[-1] if self._redo else None

    def history_nbytes(self) -> int:
        """Memory held by the undo and redo stacks' arrays."""
        return sum(step.nbytes() for step in self._undo + self._redo)

    def _check_cluster(self, cluster_id: int) -> int:
        try:
            cid = int(cluster_id)
        except (TypeError, ValueError):
            raise ValueError(f"cluster id must be an integer, got {cluster_id!r}") from None
        if cid == EXCLUDED or not np.any(self._assign == cid):
            raise ValueError(f"unknown cluster {cid}: it does not exist or has no images")
        return cid

    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(indices)
        if rows.size == 0:
            raise ValueError("no images selected")
        if rows.dtype == bool:
            raise ValueError("pass row indices, not a boolean mask")
        if not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"image indices must be integers, got {rows.dtype}")
        rows = np.unique(rows.ravel())
        if rows[0] < 0 or rows[-1] >= self.n_images:
            raise ValueError(f"image index out of range 0..{self.n_images - 1}")
        return rows.astype(np.int32)

    def _check_name_free(self, name: str, ignore: Iterable[int] = ()) -> None:
        skip = set(ignore)
        for cid in self.cluster_ids():
            if cid not in skip and self.name_of(cid) == name:
                raise ValueError(f"another cluster is already named {quoted(name)}; merge them instead")

    def next_cluster_id(self) -> int:
        """The id a new cluster gets: above every id used so far, in the history too."""
        return self._next_id()

    def _next_id(self) -> int:
        used = [int(self._assign.max(initial=EXCLUDED)), int(self._before.max(initial=EXCLUDED))]
        used.extend(self._names)
        for step in self._undo + self._redo:
            used.extend(step.new_names)
            used.extend(step.old_names)
        return max(used) + 1


def clean_name(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"a cluster name must be text, got {type(name).__name__}")
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError("a cluster name cannot be empty")
    return cleaned


def quoted(name: str) -> str:
    return f"'{name}'"


def image_count(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view
