"""A curation carried onto another list of images: after a rescan (images added, removed or changed) or a
new discovery of the same folder.

Images are matched by path and content: an image whose file changed counts as removed and new. Every per-row
value of an image that stays is kept (its cluster, checked flag, review confidence); the undo history is
renumbered and forgets the images that left, so undo never touches a row that now means another image.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from turtle_core.constants import EXCLUDED
from turtle_core.ingest.scan import ImageRecord
from turtle_core.state.curation import Curation
from turtle_core.state.curation_file import CurationRecord
from turtle_core.state.curation_view import image_count, quoted
from turtle_core.state.discovery_result import DiscoveryResult
from turtle_core.state.history import Step

NEW_IMAGES_NAME = "New images"
# A new cluster takes an old cluster's name only when they share at least this share of their images
# (Jaccard index of their members among the images both lists hold).
MIN_NAME_OVERLAP = 0.2


@dataclass(frozen=True)
class RowMap:
    """How the rows of an old image list land in a new one."""

    old_to_new: np.ndarray  # per old row: its row in the new list, or -1 (removed, or its file changed)
    added: np.ndarray  # new rows with no old row (new files, and files whose content changed)
    removed: tuple[str, ...] = field(default=())  # paths no longer in the folder
    changed: tuple[str, ...] = field(default=())  # paths whose content changed (removed + added)

    @property
    def n_new_list(self) -> int:
        kept = int((self.old_to_new >= 0).sum())
        return kept + int(self.added.size)

    @property
    def unchanged(self) -> bool:
        return (
            not self.added.size
            and not (self.old_to_new < 0).any()
            and bool(np.array_equal(self.old_to_new, np.arange(self.old_to_new.size)))
        )


def map_rows(old: Sequence[ImageRecord], new: Sequence[ImageRecord]) -> RowMap:
    """Match the images of `old` and `new` by path and content hash."""
    position = {record.path: row for row, record in enumerate(new)}
    old_to_new = np.full(len(old), -1, dtype=np.int64)
    removed: list[str] = []
    changed: list[str] = []
    for row, record in enumerate(old):
        target = position.get(record.path)
        if target is None:
            removed.append(record.path)
        elif new[target].content_hash != record.content_hash:
            changed.append(record.path)
        else:
            old_to_new[row] = target
    seen = np.zeros(len(new), dtype=bool)
    seen[old_to_new[old_to_new >= 0]] = True
    return RowMap(old_to_new, np.flatnonzero(~seen), tuple(removed), tuple(changed))


@dataclass(frozen=True)
class ImageListUpdate:
    """A rescan's result, computed outside the project's lock: the discovery's next revision (its image
    list as the folder is now) and, per added image (by path), the curator's cluster it was given (-1: it
    fits none, and stays in the added images' own cluster) with its review confidence."""

    discovery: DiscoveryResult
    base_rows_key: str  # the `rows_key` of the discovery the update was computed from
    added_paths: tuple[str, ...]
    added_labels: np.ndarray
    added_confidence: np.ndarray
    n_categories: int

    def describe(self, n_fit: int, n_unfit: int, holding: str) -> str:
        text = f"Labelled {n_fit} new {'image' if n_fit == 1 else 'images'} with your {self.n_categories} categories"
        if n_unfit:
            verb = "fits" if n_unfit == 1 else "fit"
            text += f" ({image_count(n_unfit)} {verb} none: left in {quoted(holding)})"
        return text


def rebase_record(
    record: CurationRecord, rows: RowMap, initial: np.ndarray, names: dict[int, str] | None = None
) -> CurationRecord:
    """`record` carried onto the new list: kept rows keep every value, the rows in `rows.added` start in the
    clusters `initial` (one id per added row, unchecked), `names` are added to the names; the history is
    renumbered and steps left with nothing to undo are dropped."""
    initial = np.asarray(initial, dtype=np.int32)
    if initial.shape != rows.added.shape:
        raise ValueError("one initial cluster per added image is needed")
    n = rows.n_new_list
    kept = np.flatnonzero(rows.old_to_new >= 0)
    targets = rows.old_to_new[kept]

    def carried(values: np.ndarray, fill: np.ndarray | float | bool) -> np.ndarray:
        out = np.empty(n, dtype=values.dtype)
        out[targets] = values[kept]
        out[rows.added] = fill
        return out

    return CurationRecord(
        assignments=carried(np.asarray(record.assignments, np.int32), initial),
        checked=carried(np.asarray(record.checked, bool), False),
        before_exclusion=carried(np.asarray(record.before_exclusion, np.int32), initial),
        confidence=carried(
            np.asarray(record.confidence, np.float32)
            if record.confidence is not None
            else np.full(len(record.assignments), np.nan, np.float32),
            np.nan,
        ),
        names={**record.names, **(names or {})},
        version=record.version + 1,
        undo=_renumbered(record.undo, rows.old_to_new),
        redo=_renumbered(record.redo, rows.old_to_new),
        # Another list of images is another curation state: a proposal computed before never applies after.
        lineage=uuid.uuid4().hex,
    )


def _renumbered(steps: list[Step], old_to_new: np.ndarray) -> list[Step]:
    out = []
    for step in steps:
        new_rows = old_to_new[step.indices]
        keep = new_rows >= 0
        if not keep.any() and not step.old_names and not step.new_names:
            continue
        arrays = {name: getattr(step, name)[keep] for name in Step.ARRAYS if name != "indices"}
        out.append(replace(step, indices=new_rows[keep].astype(np.int32), **arrays))
    return out


@dataclass(frozen=True)
class CarriedWork:
    """What a new discovery takes over from the curation it replaces."""

    names: dict[int, str]  # new cluster id -> the old cluster's name it inherits
    rows: np.ndarray  # new rows of checked images, and the clusters they keep
    cluster_ids: np.ndarray
    created: dict[
        int, str
    ]  # new ids for old clusters no new cluster matched, whose checked images need a home
    dropped_names: tuple[str, ...]  # named old clusters that neither matched nor held a checked image

    def describe(self) -> str:
        parts = []
        if self.names:
            parts.append(f"{len(self.names)} cluster name(s)")
        if self.rows.size:
            parts.append(f"{self.rows.size} checked image(s)")
        text = "Carried over " + " and ".join(parts) + " from the previous curation"
        if self.created:
            text += f" ({len(self.created)} cluster(s) kept for checked images no new cluster matched)"
        return text


def carried_work(
    old_assign: np.ndarray,
    old_checked: np.ndarray,
    old_names: dict[int, str],
    rows: RowMap,
    new_labels: np.ndarray,
    next_id: int,
) -> CarriedWork:
    """Match the old curation's clusters to a new discovery's by their shared images (one to one, most shared
    first) and say what carries over: the curator's names (a name only where the clusters share at least
    `MIN_NAME_OVERLAP` of their images), and every checked image's label (excluded ones stay excluded)."""
    old_assign = np.asarray(old_assign)
    new_labels = np.asarray(new_labels)
    kept = np.flatnonzero(rows.old_to_new >= 0)
    old_of_kept, new_of_kept = old_assign[kept], new_labels[rows.old_to_new[kept]]
    active = old_of_kept != EXCLUDED
    old_ids = np.unique(old_of_kept[active])
    new_ids = np.unique(new_labels)
    match: dict[int, int] = {}
    if old_ids.size and new_ids.size:
        overlap = np.zeros((old_ids.size, new_ids.size))
        np.add.at(
            overlap,
            (np.searchsorted(old_ids, old_of_kept[active]), np.searchsorted(new_ids, new_of_kept[active])),
            1.0,
        )
        old_sizes = overlap.sum(1, keepdims=True)
        new_sizes = np.bincount(np.searchsorted(new_ids, new_labels), minlength=new_ids.size)[None, :]
        jaccard = overlap / np.maximum(old_sizes + new_sizes - overlap, 1.0)
        for i, j in zip(*linear_sum_assignment(-jaccard), strict=True):
            if jaccard[i, j] >= MIN_NAME_OVERLAP:
                match[int(old_ids[i])] = int(new_ids[j])
    curated = {cid: name for cid, name in old_names.items() if name != f"Cluster {cid}"}
    names = {match[cid]: name for cid, name in curated.items() if cid in match}
    checked_rows = kept[np.asarray(old_checked, bool)[kept]]
    created: dict[int, str] = {}
    targets = []
    for old_cluster in old_assign[checked_rows].tolist():
        if old_cluster == EXCLUDED:
            targets.append(EXCLUDED)
        elif old_cluster in match:
            targets.append(match[old_cluster])
        else:
            home = next((cid for cid, name in created.items() if name == _name(old_names, old_cluster)), None)
            if home is None:
                home = next_id + len(created)
                created[home] = _name(old_names, old_cluster)
            targets.append(home)
    dropped = tuple(
        name for cid, name in curated.items() if cid not in match and name not in created.values()
    )
    return CarriedWork(
        names=names,
        rows=rows.old_to_new[checked_rows],
        cluster_ids=np.asarray(targets, dtype=np.int32),
        created=created,
        dropped_names=dropped,
    )


def _name(names: dict[int, str], cluster_id: int) -> str:
    return names.get(int(cluster_id), f"Cluster {int(cluster_id)}")


def free_name(taken: set[str], base: str = NEW_IMAGES_NAME) -> str:
    """`base`, or "`base` 2", "`base` 3", … the first that no cluster uses."""
    if base not in taken:
        return base
    number = 2
    while f"{base} {number}" in taken:
        number += 1
    return f"{base} {number}"


def carry_work(
    curation: Curation, old: Curation, old_images: Sequence[ImageRecord], discovery: DiscoveryResult
) -> CarriedWork:
    """Apply to the new discovery's `curation` what carries over from `old` (one undoable step)."""
    rows = map_rows(old_images, discovery.images)
    work = carried_work(
        old.assignments, old.checked, old.names, rows, discovery.labels, curation.next_cluster_id()
    )
    if work.rows.size or work.names:
        curation.carry(work.rows, work.cluster_ids, {**work.names, **work.created}, work.describe())
    return work
