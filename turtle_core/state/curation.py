"""The curator's edits to discovered clusters: names, merges, splits, moves, exclusions, with undo/redo.

Each edit is one undoable step stored as a compact diff (`history.Step`: changed rows + old/new values
+ name changes), so tens of thousands of images and hundreds of edits stay small in memory and on disk.
The file format lives in `curation_file`; a project saves its curation through `store.ProjectStore`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from turtle_core.atomic import atomic_write_bytes
from turtle_core.constants import EXCLUDED
from turtle_core.state.curation_file import (
    FORMAT_VERSION,
    CurationError,
    CurationMismatch,
    curation_from_bytes,
    curation_to_bytes,
    image_list_key,
)
from turtle_core.state.curation_view import CurationView, clean_name, image_count, quoted
from turtle_core.state.history import Step

__all__ = [
    "FORMAT_VERSION",
    "MAX_HISTORY",
    "MAX_HISTORY_BYTES",
    "Curation",
    "CurationError",
    "CurationMismatch",
    "image_list_key",
]

SPLIT_STEP = "Split "  # how a split's step description starts (`split_parts` finds splits by it)
MAX_HISTORY = 1000  # oldest undo steps are dropped beyond this, bounding memory and file size
# ...and beyond this many bytes of diffs: a propagation over a million images is ~30 MB a step, and every
# edit rewrites the whole history into the curation file (the newest step is always kept).
MAX_HISTORY_BYTES = 64 * 2**20


class StepMoved(ValueError):
    """Undo or redo was asked for one step, and the history's end is another (someone edited meanwhile)."""


class Curation(CurationView):
    """Per-image cluster ids, cluster names and "checked by a curator" flags, with undo/redo.

    Row i is image i of the project's usable-image list. Every edit raises `ValueError` with a
    readable message on bad input (unknown cluster, empty selection, empty or duplicate name).

    `checked` is set for images the curator acted on individually (move, new cluster, confirm, exclude, restore);
    cluster-level edits (rename, merge, split) leave it alone. `version` increases on every change,
    including undo and redo, so callers can key caches on it; `state_id` (lineage and version) names one
    state across processes and restarts. A project applies edits through
    `Project.apply` (one lock, one save, a discovery check); calling these methods directly edits
    only this object.
    """

    # ----------------------------------------------------------------- edits

    def rename(self, cluster_id: int, name: str) -> str:
        """Give a cluster a new display name; returns the cleaned name."""
        cid = self._check_cluster(cluster_id)
        new = clean_name(name)
        old = self.name_of(cid)
        if new == old:
            return new
        self._check_name_free(new, ignore=(cid,))
        self._commit(f"Renamed {quoted(old)} to {quoted(new)}", names={cid: new})
        return new

    def merge(self, cluster_ids: Sequence[int], name: str | None = None) -> int:
        """Merge clusters into the first one given (it keeps its id and, unless `name`, its name)."""
        ids = [self._check_cluster(c) for c in cluster_ids]
        ids = list(dict.fromkeys(ids))
        if len(ids) < 2:
            raise ValueError("choose at least two different clusters to merge")
        target = ids[0]
        new_name = clean_name(name) if name is not None else self.name_of(target)
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
        old_names = ", ".join(quoted(self.name_of(c)) for c in ids)
        self._commit(
            f"Merged {old_names} into {quoted(new_name)}",
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
                f"{quoted(self.name_of(t))} took "
                + ", ".join(quoted(self.name_of(c)) for c, d in into.items() if d == t)
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
            f"Moved {image_count(rows.size)} to {quoted(self.name_of(cid))}",
            rows,
            new_assign=np.full(rows.size, cid, np.int32),
            new_checked=np.ones(rows.size, bool),
            new_conf=np.ones(rows.size, np.float32),
        )
        return int(rows.size)

    def move_to_new_cluster(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> int:
        """Move images into a new cluster (id = largest id used so far + 1); returns its id."""
        rows = self._check_indices(indices)
        cid = self._next_id()
        new_name = clean_name(name) if name is not None else f"Cluster {cid}"
        self._check_name_free(new_name)
        self._commit(
            f"Moved {image_count(rows.size)} to new cluster {quoted(new_name)}",
            rows,
            new_assign=np.full(rows.size, cid, np.int32),
            new_checked=np.ones(rows.size, bool),
            new_conf=np.ones(rows.size, np.float32),
            names={cid: new_name},
        )
        return cid

    def confirm(self, indices: Sequence[int] | np.ndarray) -> int:
        """Mark images as checked by a curator (their label is right as it is); returns how many were new.
        Checked images are what `refine` learns from, and it never changes them."""
        rows = self._check_indices(indices)
        rows = rows[(self._assign[rows] != EXCLUDED) & ~self._checked[rows]]
        if rows.size == 0:
            return 0
        self._commit(
            f"Confirmed {image_count(rows.size)}",
            rows,
            new_checked=np.ones(rows.size, bool),
            new_conf=np.ones(rows.size, np.float32),
        )
        return int(rows.size)

    def relabel(
        self,
        indices: Sequence[int] | np.ndarray,
        cluster_ids: np.ndarray,
        confidence: np.ndarray | None,
        description: str,
    ) -> int:
        """Give unchecked images new clusters (and, unless `confidence` is None, new review confidences) in
        one step; checked and excluded images and clusters that no longer exist are left alone. Returns how
        many moved."""
        given = np.asarray(indices).ravel()
        targets = np.asarray(cluster_ids, np.int32).ravel()
        conf = None if confidence is None else np.asarray(confidence, np.float32).ravel()
        if targets.shape != given.shape or (conf is not None and conf.shape != given.shape):
            raise ValueError("relabel needs one cluster id and one confidence per image")
        rows = self._check_indices(given)
        if rows.size != given.size:
            raise ValueError("relabel names an image twice")
        order = np.argsort(given, kind="stable")
        keep = (
            ~self._checked[rows]
            & (self._assign[rows] != EXCLUDED)
            & np.isin(targets[order], self.cluster_ids())
        )
        rows, targets = rows[keep], targets[order][keep]
        conf = None if conf is None else conf[order][keep]
        moved = int((self._assign[rows] != targets).sum())
        self._commit(description, rows, new_assign=targets, new_conf=conf)
        return moved

    def carry(
        self, indices: np.ndarray, cluster_ids: np.ndarray, names: dict[int, str], description: str
    ) -> int:
        """Take over a previous curation's work as one step: the images at `indices` get `cluster_ids` (new ids
        allowed; `EXCLUDED` excludes) as checked images, and clusters get `names` (a name another cluster
        already uses is skipped). Returns how many images changed cluster."""
        rows = np.asarray(indices, dtype=np.int32).ravel()
        targets = np.asarray(cluster_ids, dtype=np.int32).ravel()
        if rows.shape != targets.shape or np.unique(rows).size != rows.size:
            raise ValueError("carry needs one cluster per image, each image once")
        order = np.argsort(rows)
        rows, targets = rows[order], targets[order]
        present = set(self.cluster_ids()) | {int(c) for c in targets if c != EXCLUDED}
        kept_names = {cid: self.name_of(cid) for cid in present if cid not in names}
        new_names: dict[int, str | None] = {}
        for cid, name in names.items():
            clean = clean_name(name)
            if clean not in kept_names.values() and clean not in new_names.values():
                new_names[int(cid)] = clean
        excluded = targets == EXCLUDED
        moved = int((self._assign[rows] != targets).sum())
        self._commit(
            description,
            rows,
            new_assign=targets,
            new_checked=np.ones(rows.size, bool),
            new_before=np.where(excluded, self._assign[rows], targets).astype(np.int32),
            new_conf=np.ones(rows.size, np.float32),
            names=new_names,
        )
        return moved

    def exclude(self, indices: Sequence[int] | np.ndarray, description: str | None = None) -> int:
        """Exclude images from the dataset; returns how many were newly excluded. `description` names
        the step in the history (default "Excluded N images")."""
        rows = self._check_indices(indices)
        rows = rows[self._assign[rows] != EXCLUDED]
        if rows.size == 0:
            return 0
        self._commit(
            description or f"Excluded {image_count(rows.size)}",
            rows,
            new_assign=np.full(rows.size, EXCLUDED, np.int32),
            new_checked=np.ones(rows.size, bool),
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
            f"Restored {image_count(rows.size)}",
            rows,
            new_assign=self._before[rows].copy(),
            new_checked=np.ones(rows.size, bool),
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
            part_names = [clean_name(n) for n in names]
        else:
            part_names = [self.name_of(cid)] + [f"Cluster {i}" for i in ids[1:]]
        if len({n for n in part_names}) != len(part_names):
            raise ValueError("the parts of a split need different names")
        for part_name in part_names:
            self._check_name_free(part_name, ignore=(cid,))
        new_assign = np.asarray(ids, np.int32)[inverse.ravel()]
        moved = new_assign != cid
        self._commit(
            f"{SPLIT_STEP}{quoted(self.name_of(cid))} into " + ", ".join(quoted(n) for n in part_names),
            rows[moved],
            new_assign=new_assign[moved],
            names=dict(zip(ids, part_names, strict=True)),
        )
        return ids

    def split_parts(self) -> list[frozenset[int]]:
        """The parts of each split in the undo history that still stand as clusters (two or more of them):
        what a merge suggestion should not offer back, since the curator just took them apart."""
        current = set(self.cluster_ids())
        found = []
        for step in self._undo:
            if step.description.startswith(SPLIT_STEP):
                parts = frozenset(step.new_names) & current
                if len(parts) >= 2:
                    found.append(parts)
        return found

    def undo(self, step_id: str | None = None) -> bool:
        """Revert the last edit; False when there is nothing to undo. With `step_id`, only when the last
        edit is that step (`StepMoved` otherwise: another tab or program edited meanwhile)."""
        if not self._undo:
            return False
        if step_id is not None and self._undo[-1].step_id != step_id:
            raise StepMoved(f"the last edit is now {quoted(self._undo[-1].description)}")
        step = self._undo.pop()
        self._apply(step, forward=False)
        self._redo.append(step)
        self.version += 1
        return True

    def redo(self, step_id: str | None = None) -> bool:
        """Re-apply the last undone edit; False when there is nothing to redo. With `step_id`, only when the
        next edit to redo is that step (`StepMoved` otherwise)."""
        if not self._redo:
            return False
        if step_id is not None and self._redo[-1].step_id != step_id:
            raise StepMoved(f"the next edit to redo is now {quoted(self._redo[-1].description)}")
        step = self._redo.pop()
        self._apply(step, forward=True)
        self._undo.append(step)
        self.version += 1
        return True

    # ----------------------------------------------------------------- persistence

    def save(
        self, path: str | os.PathLike[str], image_key: str = "", discovery_id: str | None = None
    ) -> None:
        """Write everything (arrays, names, undo/redo stacks, version) as one atomically replaced `.npz`.

        `image_key` (e.g. `image_list_key(paths)`) and `discovery_id` are checked by `load` so that a
        curation is never applied to a different list of images or another discovery."""
        atomic_write_bytes(path, self.to_bytes(image_key, discovery_id))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        expected_image_key: str | None = None,
        expected_n_images: int | None = None,
        expected_discovery_id: str | None = None,
    ) -> Curation:
        """Read a file written by `save`. Raises `CurationError` for a corrupt file and
        `CurationMismatch` when it was made for a different image list or discovery."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as error:
            raise CurationError(f"curation file {path} is unreadable ({error}); it was not loaded") from error
        return cls.from_bytes(
            data,
            source=f"curation file {path}",
            expected_image_key=expected_image_key,
            expected_n_images=expected_n_images,
            expected_discovery_id=expected_discovery_id,
        )

    def to_bytes(self, image_key: str = "", discovery_id: str | None = None) -> bytes:
        """The curation file's bytes (see `curation_file`)."""
        return curation_to_bytes(self.to_record(), image_key, discovery_id)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        source: str = "curation file",
        expected_image_key: str | None = None,
        expected_n_images: int | None = None,
        expected_discovery_id: str | None = None,
    ) -> Curation:
        """Read bytes written by `to_bytes`. Raises `CurationError` for a corrupt file and
        `CurationMismatch` when it was made for other images or (format 2) another discovery."""
        record = curation_from_bytes(
            data,
            source=source,
            expected_image_key=expected_image_key,
            expected_n_images=expected_n_images,
            expected_discovery_id=expected_discovery_id,
        )
        try:
            return cls.from_record(record)
        except (TypeError, ValueError, IndexError) as error:
            raise CurationError(f"{source} is corrupt or unreadable ({error}); it was not loaded") from error

    def copy(self) -> Curation:
        """An independent copy (arrays and names copied; history steps, never mutated, shared)."""
        twin = Curation(
            self._assign,
            self._checked,
            self._names,
            before_exclusion=self._before,
            confidence=self._confidence,
            version=self.version,
            lineage=self.lineage,
        )
        twin._undo = list(self._undo)
        twin._redo = list(self._redo)
        return twin

    # ----------------------------------------------------------------- internals

    def _commit(
        self,
        description: str,
        rows: np.ndarray | None = None,
        *,
        new_assign: np.ndarray | None = None,
        new_checked: np.ndarray | None = None,
        new_before: np.ndarray | None = None,
        new_conf: np.ndarray | None = None,
        names: dict[int, str | None] | None = None,
    ) -> None:
        rows = np.zeros(0, np.int32) if rows is None else np.asarray(rows, np.int32)
        old_a, old_t, old_b = self._assign[rows], self._checked[rows], self._before[rows]
        old_c = self._confidence[rows]
        new_a = old_a if new_assign is None else np.asarray(new_assign, np.int32)
        new_t = old_t if new_checked is None else np.asarray(new_checked, bool)
        new_b = old_b if new_before is None else np.asarray(new_before, np.int32)
        new_c = old_c if new_conf is None else np.asarray(new_conf, np.float32)
        same_conf = (old_c == new_c) | (np.isnan(old_c) & np.isnan(new_c))
        changed = (old_a != new_a) | (old_t != new_t) | (old_b != new_b) | ~same_conf
        names = names or {}
        step = Step(
            description,
            rows[changed].copy(),
            old_a[changed].copy(),
            new_a[changed].copy(),
            old_t[changed].copy(),
            new_t[changed].copy(),
            old_b[changed].copy(),
            new_b[changed].copy(),
            old_c[changed].copy(),
            new_c[changed].copy(),
            {c: self._names.get(c) for c in names},
            dict(names),
            origin=self.origin,
        )
        self._apply(step, forward=True)
        self._undo.append(step)
        self._redo.clear()
        if len(self._undo) > MAX_HISTORY:
            del self._undo[0]
        held = self.history_nbytes()
        while len(self._undo) > 1 and held > MAX_HISTORY_BYTES:
            held -= self._undo.pop(0).nbytes()
        self.version += 1

    def _apply(self, step: Step, forward: bool) -> None:
        idx = step.indices
        self._assign[idx] = step.new_assign if forward else step.old_assign
        self._checked[idx] = step.new_checked if forward else step.old_checked
        self._before[idx] = step.new_before if forward else step.old_before
        self._confidence[idx] = step.new_conf if forward else step.old_conf
        for cid, name in (step.new_names if forward else step.old_names).items():
            if name is None:
                self._names.pop(cid, None)
            else:
                self._names[cid] = name
