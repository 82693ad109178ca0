"""The curator's edits to discovered clusters: names, merges, splits, moves, exclusions, with undo/redo.

Each edit is one undoable step stored as a compact diff (changed rows + old/new values + name changes),
so tens of thousands of images and hundreds of edits stay small in memory and on disk. The whole state
(arrays, names, undo/redo stacks) is saved as one `.npz` written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from turtle_core.atomic import atomic_write_bytes
from turtle_core.constants import EXCLUDED

FORMAT_VERSION = 1
MAX_HISTORY = 1000  # oldest undo steps are dropped beyond this, bounding memory and file size


class CurationError(ValueError):
    """A curation file cannot be used: corrupt, unreadable, or made for a different image list."""


class CurationMismatch(CurationError):
    """The curation file belongs to a different list of images."""


def image_list_key(paths: Iterable[str]) -> str:
    """A stable fingerprint of an ordered list of image paths (pass it to `save`/`load`)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.fsencode(path))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class _Step:
    """One edit as a diff: rows whose values changed, and cluster names that changed (None = no entry)."""

    description: str
    indices: np.ndarray  # int32 rows
    old_assign: np.ndarray  # int32
    new_assign: np.ndarray
    old_touched: np.ndarray  # bool
    new_touched: np.ndarray
    old_before: np.ndarray  # int32: cluster to restore an excluded image to
    new_before: np.ndarray
    old_names: dict[int, str | None] = field(default_factory=dict)
    new_names: dict[int, str | None] = field(default_factory=dict)

    _ARRAYS = (
        "indices",
        "old_assign",
        "new_assign",
        "old_touched",
        "new_touched",
        "old_before",
        "new_before",
    )

    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self._ARRAYS)


class Curation:
    """Per-image cluster ids, cluster names and "touched by a curator" flags, with undo/redo.

    Row i is image i of the project's usable-image list. Every edit raises `ValueError` with a
    readable message on bad input (unknown cluster, empty selection, empty or duplicate name).

    `touched` is set for images the curator acted on individually (move, new cluster, exclude, restore);
    cluster-level edits (rename, merge, split) leave it alone. `version` increases on every change,
    including undo and redo, so callers can key caches on it.
    """

    def __init__(
        self,
        assignments: np.ndarray,
        touched: np.ndarray | None = None,
        names: dict[int, str] | None = None,
        *,
        before_exclusion: np.ndarray | None = None,
        version: int = 0,
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
        self._touched = np.zeros(n, bool) if touched is None else np.asarray(touched, bool).copy()
        self._before = (
            self._assign.copy() if before_exclusion is None else np.asarray(before_exclusion, np.int32).copy()
        )
        if self._touched.shape != (n,) or self._before.shape != (n,):
            raise ValueError("assignments, touched and before_exclusion must have the same length")
        self._names: dict[int, str] = {int(k): str(v) for k, v in (names or {}).items()}
        self.version = int(version)
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []

    @classmethod
    def from_discovery(cls, labels: np.ndarray, names: dict[int, str] | None = None) -> Curation:
        """Start curating from discovered cluster labels (optionally with initial names)."""
        curation = cls(np.asarray(labels))
        for cid in curation.cluster_ids():
            curation._names[cid] = f"Cluster {cid}"
        for cid, name in (names or {}).items():
            curation._names[int(cid)] = _clean_name(name)
        return curation

    # ----------------------------------------------------------------- read-only views and queries

    @property
    def n_images(self) -> int:
        return int(self._assign.shape[0])

    @property
    def assignments(self) -> np.ndarray:
        """Cluster id per image (`EXCLUDED` for excluded); a read-only view."""
        return _readonly(self._assign)

    @property
    def touched(self) -> np.ndarray:
        """Whether a curator changed this image's label; a read-only view."""
        return _readonly(self._touched)

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

    def history_nbytes(self) -> int:
        """Memory held by the undo and redo stacks' arrays."""
        return sum(step.nbytes() for step in self._undo + self._redo)

    # ----------------------------------------------------------------- edits

    def rename(self, cluster_id: int, name: str) -> str:
        """Give a cluster a new display name; returns the cleaned name."""
        cid = self._check_cluster(cluster_id)
        new = _clean_name(name)
        old = self.name_of(cid)
        if new == old:
            return new
        self._check_name_free(new, ignore=(cid,))
        self._commit(f"Renamed {_q(old)} to {_q(new)}", names={cid: new})
        return new

    def merge(self, cluster_ids: Sequence[int], name: str | None = None) -> int:
        """Merge clusters into the first one given (it keeps its id and, unless `name`, its name)."""
        ids = [self._check_cluster(c) for c in cluster_ids]
        ids = list(dict.fromkeys(ids))
        if len(ids) < 2:
            raise ValueError("choose at least two different clusters to merge")
        target = ids[0]
        new_name = _clean_name(name) if name is not None else self.name_of(target)
        self._check_name_free(new_name, ignore=ids)
        others = np.asarray(ids[1:], np.int32)
        rows = np.flatnonzero(np.isin(self._assign, others))
        # Excluded images remember the cluster to go back to; point those at the merged cluster too.
        before_rows = np.flatnonzero((self._assign == EXCLUDED) & np.isin(self._before, others))
        all_rows = np.union1d(rows, before_rows)
        new_assign = self._assign[all_rows].copy()
        new_assign[np.isin(new_assign, others)] = target
        new_before = self._before[all_rows].copy()
        new_before[(self._assign[all_rows] == EXCLUDED) & np.isin(new_before, others)] = target
        names: dict[int, str | None] = {int(c): None for c in others}
        names[target] = new_name
        old_names = ", ".join(_q(self.name_of(c)) for c in ids)
        self._commit(
            f"Merged {old_names} into {_q(new_name)}",
            all_rows,
            new_assign=new_assign,
            new_before=new_before,
            names=names,
        )
        return target

    def merge_groups(self, groups: Sequence[Sequence[int]]) -> list[int]:
        """Merge several groups of clusters as one undoable edit (a cut of the merge tree): each group
        goes into its first cluster, which keeps its id and name. Returns the ids kept per merged group."""
        into: dict[int, int] = {}
        targets: list[int] = []
        for group in groups:
            ids = list(dict.fromkeys(self._check_cluster(c) for c in group))
            if len(ids) < 2:
                continue
            if any(c in into or c in targets for c in ids):
                raise ValueError("a cluster can be in only one group of a merge")
            targets.append(ids[0])
            into.update({c: ids[0] for c in ids[1:]})
        if not into:
            raise ValueError("choose at least two different clusters to merge")
        others = np.asarray(list(into), np.int32)
        excluded_rows = (self._assign == EXCLUDED) & np.isin(self._before, others)
        all_rows = np.flatnonzero(np.isin(self._assign, others) | excluded_rows)
        new_assign = self._assign[all_rows].copy()
        new_before = self._before[all_rows].copy()
        for source, target in into.items():
            new_assign[new_assign == source] = target
            new_before[(self._assign[all_rows] == EXCLUDED) & (new_before == source)] = target
        n_before = len(into) + len(targets)
        self._commit(
            f"Merged {n_before} clusters into {len(targets)}: "
            + "; ".join(
                f"{_q(self.name_of(t))} took " + ", ".join(_q(self.name_of(c)) for c, d in into.items() if d == t)
                for t in targets
            ),
            all_rows,
            new_assign=new_assign,
            new_before=new_before,
            names={int(c): None for c in others},
        )
        return targets

    def move(self, indices: Sequence[int] | np.ndarray, cluster_id: int) -> int:
        """Move images into an existing cluster; returns how many changed cluster."""
        rows = self._check_indices(indices)
        cid = self._check_cluster(cluster_id)
        rows = rows[self._assign[rows] != cid]
        if rows.size == 0:
            return 0
        self._commit(
            f"Moved {_count(rows.size)} to {_q(self.name_of(cid))}",
            rows,
            new_assign=np.full(rows.size, cid, np.int32),
            new_touched=np.ones(rows.size, bool),
        )
        return int(rows.size)

    def move_to_new_cluster(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> int:
        """Move images into a new cluster (id = largest id used so far + 1); returns its id."""
        rows = self._check_indices(indices)
        cid = self._next_id()
        new_name = _clean_name(name) if name is not None else f"Cluster {cid}"
        self._check_name_free(new_name)
        self._commit(
            f"Moved {_count(rows.size)} to new cluster {_q(new_name)}",
            rows,
            new_assign=np.full(rows.size, cid, np.int32),
            new_touched=np.ones(rows.size, bool),
            names={cid: new_name},
        )
        return cid

    def exclude(self, indices: Sequence[int] | np.ndarray) -> int:
        """Exclude images from the dataset; returns how many were newly excluded."""
        rows = self._check_indices(indices)
        rows = rows[self._assign[rows] != EXCLUDED]
        if rows.size == 0:
            return 0
        self._commit(
            f"Excluded {_count(rows.size)}",
            rows,
            new_assign=np.full(rows.size, EXCLUDED, np.int32),
            new_touched=np.ones(rows.size, bool),
            new_before=self._assign[rows].copy(),
        )
        return int(rows.size)

    def restore(self, indices: Sequence[int] | np.ndarray) -> int:
        """Bring excluded images back to the cluster they were in when excluded (their discovery
        cluster unless a curator moved them first); returns how many were restored."""
        rows = self._check_indices(indices)
        rows = rows[(self._assign[rows] == EXCLUDED) & (self._before[rows] != EXCLUDED)]
        if rows.size == 0:
            return 0
        self._commit(
            f"Restored {_count(rows.size)}",
            rows,
            new_assign=self._before[rows].copy(),
            new_touched=np.ones(rows.size, bool),
        )
        return int(rows.size)

    def split(
        self, cluster_id: int, sub_labels: np.ndarray | Sequence[int], names: Sequence[str] | None = None
    ) -> list[int]:
        """Split a cluster by `sub_labels` (one per member, in `members()` order). The part with the
        smallest sub-label keeps the id; the others get new ids. Returns the ids, one per part."""
        cid = self._check_cluster(cluster_id)
        rows = self.members(cid)
        sub = np.asarray(sub_labels)
        if sub.shape != rows.shape:
            raise ValueError(
                f"split needs one sub-label per member: got {sub.shape[0]} for {rows.size} images"
            )
        parts, inverse = np.unique(sub, return_inverse=True)
        if parts.size < 2:
            raise ValueError("a split needs at least two different sub-labels")
        start = self._next_id()
        ids = [cid] + list(range(start, start + parts.size - 1))
        if names is not None:
            if len(names) != parts.size:
                raise ValueError(f"split into {parts.size} parts needs {parts.size} names, got {len(names)}")
            part_names = [_clean_name(n) for n in names]
        else:
            part_names = [self.name_of(cid)] + [f"Cluster {i}" for i in ids[1:]]
        if len({n for n in part_names}) != len(part_names):
            raise ValueError("the parts of a split need different names")
        for part_name in part_names:
            self._check_name_free(part_name, ignore=(cid,))
        new_assign = np.asarray(ids, np.int32)[inverse.ravel()]
        moved = new_assign != cid
        self._commit(
            f"Split {_q(self.name_of(cid))} into " + ", ".join(_q(n) for n in part_names),
            rows[moved],
            new_assign=new_assign[moved],
            names=dict(zip(ids, part_names, strict=True)),
        )
        return ids

    def undo(self) -> bool:
        """Revert the last edit; False when there is nothing to undo."""
        if not self._undo:
            return False
        step = self._undo.pop()
        self._apply(step, forward=False)
        self._redo.append(step)
        self.version += 1
        return True

    def redo(self) -> bool:
        """Re-apply the last undone edit; False when there is nothing to redo."""
        if not self._redo:
            return False
        step = self._redo.pop()
        self._apply(step, forward=True)
        self._undo.append(step)
        self.version += 1
        return True

    # ----------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str], image_key: str = "") -> None:
        """Write everything (arrays, names, undo/redo stacks, version) as one atomically replaced `.npz`.

        `image_key` (e.g. `image_list_key(paths)`) is checked by `load` so that a curation is never
        applied to a different list of images."""
        meta = {
            "format": FORMAT_VERSION,
            "n_images": self.n_images,
            "image_key": image_key,
            "version": self.version,
            "names": {str(k): v for k, v in self._names.items()},
            "undo": [_step_meta(s) for s in self._undo],
            "redo": [_step_meta(s) for s in self._redo],
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta, ensure_ascii=True).encode("ascii"), np.uint8),
            "assignments": self._assign,
            "touched": self._touched,
            "before_exclusion": self._before,
        }
        for prefix, steps in (("undo", self._undo), ("redo", self._redo)):
            for name in _Step._ARRAYS:
                parts = [getattr(s, name) for s in steps]
                dtype = bool if "touched" in name else np.int32
                arrays[f"{prefix}_{name}"] = (
                    np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
                )
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **arrays)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        expected_image_key: str | None = None,
        expected_n_images: int | None = None,
    ) -> Curation:
        """Read a file written by `save`. Raises `CurationError` for a corrupt file and
        `CurationMismatch` when it was made for a different image list."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            meta = json.loads(arrays.pop("meta").tobytes().decode("ascii"))
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as error:
            raise CurationError(
                f"curation file {path} is corrupt or unreadable ({error}); it was not loaded"
            ) from error
        try:
            return cls._from_saved(meta, arrays, expected_image_key, expected_n_images)
        except CurationMismatch:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise CurationError(
                f"curation file {path} is corrupt or unreadable ({error}); it was not loaded"
            ) from error

    @classmethod
    def _from_saved(
        cls,
        meta: dict,
        arrays: dict[str, np.ndarray],
        expected_image_key: str | None,
        expected_n_images: int | None,
    ) -> Curation:
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported curation format {meta.get('format')!r}")
        n = int(meta["n_images"])
        if expected_n_images is not None and n != expected_n_images:
            raise CurationMismatch(
                f"this curation is for {n} images, but the project now has {expected_n_images}"
            )
        if expected_image_key is not None and meta["image_key"] != expected_image_key:
            raise CurationMismatch("this curation was made for a different list of images")
        curation = cls(
            arrays["assignments"],
            arrays["touched"],
            {int(k): v for k, v in meta["names"].items()},
            before_exclusion=arrays["before_exclusion"],
            version=int(meta["version"]),
        )
        if curation.n_images != n:
            raise ValueError("array length does not match the recorded number of images")
        curation._undo = _steps_from_saved(meta["undo"], arrays, "undo", n)
        curation._redo = _steps_from_saved(meta["redo"], arrays, "redo", n)
        return curation

    # ----------------------------------------------------------------- internals

    def _commit(
        self,
        description: str,
        rows: np.ndarray | None = None,
        *,
        new_assign: np.ndarray | None = None,
        new_touched: np.ndarray | None = None,
        new_before: np.ndarray | None = None,
        names: dict[int, str | None] | None = None,
    ) -> None:
        rows = np.zeros(0, np.int32) if rows is None else np.asarray(rows, np.int32)
        old_a, old_t, old_b = self._assign[rows], self._touched[rows], self._before[rows]
        new_a = old_a if new_assign is None else np.asarray(new_assign, np.int32)
        new_t = old_t if new_touched is None else np.asarray(new_touched, bool)
        new_b = old_b if new_before is None else np.asarray(new_before, np.int32)
        changed = (old_a != new_a) | (old_t != new_t) | (old_b != new_b)
        names = names or {}
        step = _Step(
            description,
            rows[changed].copy(),
            old_a[changed].copy(),
            new_a[changed].copy(),
            old_t[changed].copy(),
            new_t[changed].copy(),
            old_b[changed].copy(),
            new_b[changed].copy(),
            {c: self._names.get(c) for c in names},
            dict(names),
        )
        self._apply(step, forward=True)
        self._undo.append(step)
        if len(self._undo) > MAX_HISTORY:
            del self._undo[0]
        self._redo.clear()
        self.version += 1

    def _apply(self, step: _Step, forward: bool) -> None:
        idx = step.indices
        self._assign[idx] = step.new_assign if forward else step.old_assign
        self._touched[idx] = step.new_touched if forward else step.old_touched
        self._before[idx] = step.new_before if forward else step.old_before
        for cid, name in (step.new_names if forward else step.old_names).items():
            if name is None:
                self._names.pop(cid, None)
            else:
                self._names[cid] = name

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
                raise ValueError(f"another cluster is already named {_q(name)}; merge them instead")

    def _next_id(self) -> int:
        used = [int(self._assign.max(initial=EXCLUDED)), int(self._before.max(initial=EXCLUDED))]
        used.extend(self._names)
        for step in self._undo + self._redo:
            used.extend(step.new_names)
            used.extend(step.old_names)
        return max(used) + 1


def _clean_name(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"a cluster name must be text, got {type(name).__name__}")
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError("a cluster name cannot be empty")
    return cleaned


def _q(name: str) -> str:
    return f"'{name}'"


def _count(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _step_meta(step: _Step) -> dict:
    return {
        "description": step.description,
        "n": int(step.indices.size),
        "old_names": {str(k): v for k, v in step.old_names.items()},
        "new_names": {str(k): v for k, v in step.new_names.items()},
    }


def _steps_from_saved(
    metas: list[dict], arrays: dict[str, np.ndarray], prefix: str, n_images: int
) -> list[_Step]:
    columns = {name: arrays[f"{prefix}_{name}"] for name in _Step._ARRAYS}
    total = sum(int(m["n"]) for m in metas)
    if any(col.shape != (total,) for col in columns.values()):
        raise ValueError(f"{prefix} history arrays do not match their descriptions")
    if total and (columns["indices"].min() < 0 or columns["indices"].max() >= n_images):
        raise ValueError(f"{prefix} history refers to images that do not exist")
    steps, start = [], 0
    for m in metas:
        end = start + int(m["n"])
        parts = [columns[name][start:end].copy() for name in _Step._ARRAYS]
        steps.append(
            _Step(
                str(m["description"]),
                *parts,
                {int(k): v for k, v in m["old_names"].items()},
                {int(k): v for k, v in m["new_names"].items()},
            )
        )
        start = end
    return steps
