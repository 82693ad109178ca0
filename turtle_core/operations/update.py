"""A rescan after a curation: the images added to the folder join it, labelled with the curator's categories;
the images removed leave it; the images whose file changed count as removed and added.

Only the added images are embedded (the rest come from the embedding cache). Every image a curator checked
keeps its label and every name stays (`state.rebase`); the added images are labelled by the curated
categories' learner (`discovery.newcomers.learn_categories`, a `LinearProbe` like the one "Propagate my
fixes" trains), and one that fits none of them stays in the added images' own cluster instead of being
forced into one. The labelling is one undoable step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from turtle_core.constants import ATYPICAL_Z, EXCLUDED
from turtle_core.ingest.scan import ImageRecord, SkippedFile
from turtle_core.state.discovery_result import DiscoveryResult
from turtle_core.state.project_state import Snapshot
from turtle_core.state.rebase import ImageListUpdate, RowMap


@dataclass(frozen=True)
class UpdateReport:
    """What a rescan found and did."""

    n_images: int  # images in the curation after it
    n_added: int  # new files (and changed ones) that could be embedded
    n_removed: int  # files gone from the folder (and changed ones)
    n_changed: int
    n_labelled: int  # added images given one of the curator's categories
    n_categories: int
    failed: tuple[SkippedFile, ...] = field(default=())  # added files that could not be embedded

    @property
    def n_fit_none(self) -> int:
        return self.n_added - self.n_labelled

    @property
    def changed_anything(self) -> bool:
        return bool(self.n_added or self.n_removed)

    def message(self) -> str:
        """One sentence for the curator."""
        if not self.changed_anything:
            text = "Nothing changed in the folder since the curation."
        else:
            parts = []
            if self.n_added:
                parts.append(
                    f"{self.n_added:,} new {'image was' if self.n_added == 1 else 'images were'} labelled with "
                    f"your {self.n_categories} categories"
                    + (
                        f" ({self.n_fit_none:,} fit none and wait in their own cluster)"
                        if self.n_fit_none
                        else ""
                    )
                    + " — review them: they come first in the review queue"
                )
            if self.n_removed:
                parts.append(
                    f"{self.n_removed:,} {'image' if self.n_removed == 1 else 'images'} left the curation "
                    "(removed from the folder"
                    + (f", or changed: {self.n_changed:,}" if self.n_changed else "")
                    + ")"
                )
            text = "; ".join(parts) + "."
        if self.failed:
            text += f" {len(self.failed):,} new file(s) could not be embedded (see the Project page)."
        return text


def next_revision(
    snap: Snapshot,
    rows: RowMap,
    added: Sequence[ImageRecord],
    added_labels: np.ndarray,
    added_confidence: np.ndarray,
    added_atypicality: np.ndarray,
    failed: Sequence[SkippedFile],
) -> DiscoveryResult:
    """The discovery's next revision: the images that stay (their rows as they were, in their order), then
    the `added` ones with their learned labels, review confidence and "fits no category" score."""
    old = snap.discovery
    kept = np.flatnonzero(rows.old_to_new >= 0)
    kept = kept[np.argsort(rows.old_to_new[kept])]  # their order in the new list
    n_added = len(added)
    width = np.asarray(old.probabilities).shape[1]
    revision = old.revision + 1
    still_there = {record.path for record in added} | {old.images[row].path for row in kept}
    return replace(
        old,
        images=[old.images[row] for row in kept] + list(added),
        labels=np.concatenate([np.asarray(old.labels)[kept], np.asarray(added_labels)]).astype(np.int32),
        # The discovery model's soft labels exist only for its own images: none for the added ones.
        probabilities=np.concatenate(
            [np.asarray(old.probabilities)[kept], np.zeros((n_added, width), np.float32)]
        ).astype(np.float32),
        confidence=np.concatenate([np.asarray(old.confidence)[kept], added_confidence]).astype(np.float32),
        atypicality=np.concatenate([old.atypicality_or_zeros()[kept], added_atypicality]).astype(np.float32),
        added=np.concatenate([old.added_or_zeros()[kept], np.full(n_added, revision)]).astype(np.int32),
        revision=revision,
        failed=[item for item in old.failed if item.path not in still_there] + list(failed),
    )


@dataclass(frozen=True)
class AddedLabels:
    """Per added image: the curated cluster it belongs to (`best`), whether it fits it at all, its review
    confidence (the learner's margin between its two likeliest categories) and its "fits no category" score."""

    best: np.ndarray
    fits: np.ndarray
    confidence: np.ndarray
    atypicality: np.ndarray
    n_categories: int

    @property
    def given(self) -> np.ndarray:
        """The cluster each added image is given: `best`, or -1 where it fits none."""
        return np.where(self.fits, self.best, -1)


def label_added(
    snap: Snapshot, old_spaces: Sequence[np.ndarray], new_spaces: Sequence[np.ndarray]
) -> AddedLabels:
    """Label the added images (rows of `new_spaces`) with the curated categories of `snap` (whose images'
    features are `old_spaces`)."""
    from turtle_core.discovery.newcomers import (
        BEYOND_MEMBERS,
        CategoryShapes,
        learn_categories,
        reference_sample,
    )

    assignments = np.asarray(snap.curation.assignments)
    n_categories = len(snap.curation.cluster_ids())
    n_new = new_spaces[0].shape[0] if new_spaces else 0
    nothing = np.zeros(n_new, np.float32)
    if n_new == 0 or n_categories < 2:  # nothing to tell apart: the added images wait in their own cluster
        return AddedLabels(np.zeros(n_new, np.int64), np.zeros(n_new, bool), nothing, nothing, n_categories)
    probe = learn_categories(old_spaces, assignments, np.asarray(snap.curation.checked))
    probabilities = probe.predict_proba(new_spaces)
    ordered = np.sort(probabilities, axis=1)
    best = probe.classes[probabilities.argmax(1)].astype(np.int64)
    reference = reference_sample(assignments.size)
    reference = reference[assignments[reference] != EXCLUDED]
    shapes = CategoryShapes([np.asarray(X[reference]) for X in old_spaces], assignments[reference])
    beyond = shapes.scores(new_spaces, best)
    margin = (ordered[:, -1] - ordered[:, -2]).astype(np.float32)
    # On the discovery's atypicality scale, so that the review queue's "fits no category" holds exactly these.
    atypicality = (beyond * (ATYPICAL_Z / BEYOND_MEMBERS)).astype(np.float32)
    return AddedLabels(best, beyond <= BEYOND_MEMBERS, margin, atypicality, n_categories)


def prepare_update(
    snap: Snapshot,
    rows: RowMap,
    added: Sequence[ImageRecord],
    old_spaces: Sequence[np.ndarray],
    new_spaces: Sequence[np.ndarray],
    failed: Sequence[SkippedFile],
) -> tuple[ImageListUpdate, UpdateReport]:
    """Everything a rescan computes outside the project's lock: the discovery's next revision and the labels of
    the added images; `ProjectState.install_update` then carries the curation over."""
    labels = label_added(snap, old_spaces, new_spaces)
    revision = next_revision(snap, rows, added, labels.best, labels.confidence, labels.atypicality, failed)
    update = ImageListUpdate(
        revision,
        snap.rows_key,
        tuple(record.path for record in added),
        labels.given,
        labels.confidence,
        labels.n_categories,
    )
    report = UpdateReport(
        n_images=len(revision.images),
        n_added=len(added),
        n_removed=int((rows.old_to_new < 0).sum()),
        n_changed=len(rows.changed),
        n_labelled=int(labels.fits.sum()),
        n_categories=labels.n_categories,
        failed=tuple(failed),
    )
    return update, report
