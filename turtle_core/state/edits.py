"""The curator's edits as values: what to change, on which images, made against which discovery.

Every edit goes through `Project.apply(edit)`, which takes the project's lock, refuses an edit made
against another discovery (`StaleEdit`), runs it on the curation, saves atomically and records undo.
Images are named by their path relative to the folder (their identity in a discovery), never by row
number, so an edit chosen before a rescan still acts on the images the curator ticked.

A new kind of edit is a frozen dataclass that subclasses `Edit` and implements `run`; it is then
listed in `EDIT_KINDS` under its class name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from turtle_core.names import display_name
from turtle_core.state.curation import Curation, StepMoved
from turtle_core.state.curation_view import clean_name
from turtle_core.state.errors import StaleEdit

EDIT_KINDS: dict[str, type[Edit]] = {}


@dataclass(frozen=True, kw_only=True)
class Edit:
    """One change to the curation. `discovery_id`: the discovery the curator was looking at."""

    discovery_id: str
    origin: str = (
        ""  # who makes it, kept with its undo step: "tab:<id>" in the app, "cli" on the command line
    )
    kind: ClassVar[str] = "edit"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = cls.__name__
        EDIT_KINDS[cls.__name__] = cls

    def run(self, curation: Curation, rows_of: RowLookup) -> Any:
        """Change `curation` (in place) and return the edit's result."""
        raise NotImplementedError


class RowLookup:
    """Image path → row of the current discovery; refuses paths the discovery does not hold."""

    def __init__(self, paths: Sequence[str]) -> None:
        self._rows: Mapping[str, int] = {path: row for row, path in enumerate(paths)}

    def __call__(self, images: Sequence[str]) -> np.ndarray:
        missing = [path for path in images if path not in self._rows]
        if missing:
            raise StaleEdit(
                f"{len(missing)} of the chosen images are no longer in this project (removed from the folder, "
                f"or changed, and taken out by a rescan; e.g. {display_name(missing[0])!r}); nothing was changed."
            )
        return np.asarray([self._rows[path] for path in images], dtype=np.int64)


@dataclass(frozen=True, kw_only=True)
class Rename(Edit):
    cluster_id: int
    name: str

    def run(self, curation: Curation, rows_of: RowLookup) -> str:
        return curation.rename(self.cluster_id, self.name)


@dataclass(frozen=True, kw_only=True)
class Merge(Edit):
    cluster_ids: tuple[int, ...]
    name: str | None = None

    def run(self, curation: Curation, rows_of: RowLookup) -> int:
        return curation.merge(list(self.cluster_ids), self.name)


@dataclass(frozen=True, kw_only=True)
class Move(Edit):
    images: tuple[str, ...]
    cluster_id: int

    def run(self, curation: Curation, rows_of: RowLookup) -> int:
        return curation.move(rows_of(self.images), self.cluster_id)


@dataclass(frozen=True, kw_only=True)
class MoveToNewCluster(Edit):
    images: tuple[str, ...]
    name: str | None = None

    def run(self, curation: Curation, rows_of: RowLookup) -> int:
        return curation.move_to_new_cluster(rows_of(self.images), self.name)


@dataclass(frozen=True, kw_only=True)
class Exclude(Edit):
    images: tuple[str, ...]

    def run(self, curation: Curation, rows_of: RowLookup) -> int:
        return curation.exclude(rows_of(self.images))


@dataclass(frozen=True, kw_only=True)
class KeepOnePerGroup(Edit):
    """Near-duplicates: keep one image of each of `groups` groups and exclude the rest (`images`), as one step."""

    images: tuple[str, ...]
    groups: int

    def run(self, curation: Curation, rows_of: RowLookup) -> int:
        groups = "a group" if self.groups == 1 else f"{self.groups} groups"
        return curation.exclude(
            rows_of(self.images),
            f"Kept one image of {groups} of near-duplicates, excluded {len(self.images)}",
        )


@dataclass(frozen=True, kw_only=True)
class Restore(Edit):
    images: tuple[str, ...]

    def run(self, curation: Curation, rows_of: RowLookup) -> int:
        return curation.restore(rows_of(self.images))


@dataclass(frozen=True, kw_only=True)
class Split(Edit):
    """Split a cluster by sub-labels computed for `members` (its images when the split started)."""

    cluster_id: int
    members: tuple[str, ...]
    sub_labels: tuple[int, ...]
    names: tuple[str, ...] | None = None

    def run(self, curation: Curation, rows_of: RowLookup) -> list[int]:
        rows = rows_of(self.members)
        current = curation.members(self.cluster_id)
        if not np.array_equal(np.sort(rows), current):
            raise StaleEdit(
                f"'{curation.name_of(self.cluster_id)}' changed while it was being split; "
                "nothing was changed. Split it again."
            )
        order = np.argsort(rows, kind="stable")  # Curation.split wants labels in members() order
        labels = np.asarray(self.sub_labels)[order]
        return curation.split(self.cluster_id, labels, list(self.names) if self.names else None)


@dataclass(frozen=True, kw_only=True)
class Undo(Edit):
    """Revert the last edit; with `step_id`, only if the last edit is still that step."""

    step_id: str | None = None

    def run(self, curation: Curation, rows_of: RowLookup) -> bool:
        try:
            return curation.undo(self.step_id)
        except StepMoved as error:
            raise StaleEdit(f"Someone edited meanwhile: {error}; nothing was undone.") from None


@dataclass(frozen=True, kw_only=True)
class Redo(Edit):
    """Re-apply the last undone edit; with `step_id`, only if it is still that step."""

    step_id: str | None = None

    def run(self, curation: Curation, rows_of: RowLookup) -> bool:
        try:
            return curation.redo(self.step_id)
        except StepMoved as error:
            raise StaleEdit(f"Someone edited meanwhile: {error}; nothing was redone.") from None


@dataclass(frozen=True, kw_only=True)
class Confirm(Edit):
    """The curator checked these images: their labels are right (refine learns from them)."""

    images: tuple[str, ...]

    def run(self, curation: Curation, rows_of: RowLookup) -> int:
        return curation.confirm(rows_of(self.images))


@dataclass(frozen=True)
class Relabelled:
    """What a `Relabel` did: how many images changed cluster, and the curation's state right after it."""

    moved: int
    state_id: str


@dataclass(frozen=True, kw_only=True)
class Relabel(Edit):
    """Part or all of a propagation's proposal: new clusters for unchecked images, as one step (their review
    confidences stay as they are). `curation_state` is the `Curation.state_id` the proposal was computed on (or that its own
    previous part left); after any other change the edit is refused (`StaleEdit`), never replayed."""

    images: tuple[str, ...]
    cluster_ids: tuple[int, ...]
    description: str
    curation_state: str

    def run(self, curation: Curation, rows_of: RowLookup) -> Relabelled:
        if curation.state_id != self.curation_state:
            raise StaleEdit(
                "The clusters changed after this proposal was computed (an edit, an undo, another tab or "
                "program); nothing was changed. Compute the proposal again."
            )
        moved = curation.relabel(rows_of(self.images), np.asarray(self.cluster_ids), None, self.description)
        return Relabelled(moved, curation.state_id)


@dataclass(frozen=True, kw_only=True)
class MergeGroups(Edit):
    """A cut of the merge tree: several groups of clusters merged as one step."""

    groups: tuple[tuple[int, ...], ...]

    def run(self, curation: Curation, rows_of: RowLookup) -> list[int]:
        return curation.merge_groups([list(group) for group in self.groups])


@dataclass(frozen=True, kw_only=True)
class LabelImages(Edit):
    """Labels made elsewhere: each image gets the cluster named `names[i]` (a new cluster when no cluster has
    that name), as a checked image; one step. Refused whole if an image is gone or excluded."""

    images: tuple[str, ...]
    names: tuple[str, ...]
    description: str

    def run(self, curation: Curation, rows_of: RowLookup) -> int:
        if len(self.images) != len(self.names):
            raise ValueError("one name per image is needed")
        rows = rows_of(self.images)
        excluded = [
            path for path, row in zip(self.images, rows, strict=True) if curation.assignments[row] < 0
        ]
        if excluded:
            raise ValueError(
                f"{len(excluded)} of these images are excluded (e.g. {excluded[0]!r}); nothing was changed"
            )
        by_name = {name: cid for cid, name in curation.names.items()}
        created: dict[str, int] = {}
        targets = []
        for name in (clean_name(name) for name in self.names):
            if name not in by_name and name not in created:
                created[name] = curation.next_cluster_id() + len(created)
            targets.append(by_name.get(name, created.get(name)))
        curation.carry(
            rows,
            np.asarray(targets, np.int32),
            {cid: name for name, cid in created.items()},
            self.description,
        )
        return len(rows)
