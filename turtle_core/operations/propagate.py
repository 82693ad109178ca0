"""Fixes that propagate, at the project level: what `refine` would change, and the edit that changes it.

The proposal is computed on a snapshot (outside the lock: it takes seconds on a big folder) and applied as
one `Relabel` edit through `Project.apply`, so it is undoable and never touches an image the curator
checked or excluded in the meantime.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from turtle_core.constants import EXCLUDED
from turtle_core.progress import check_cancel
from turtle_core.state.edits import Relabel
from turtle_core.state.errors import ProjectError
from turtle_core.state.project_state import Snapshot


@dataclass(frozen=True)
class RefineProposal:
    """What propagating the curator's fixes would do: `n_changed` of the `n_unchecked` images get another
    cluster, learned from `n_checked` checked images. `edit` applies it."""

    edit: Relabel
    n_changed: int
    n_unchecked: int
    n_checked: int
    curation_version: int


def propose_refine(
    snap: Snapshot, spaces: Sequence[np.ndarray], cancel: threading.Event | None = None
) -> RefineProposal:
    """Learn from the checked images (moved, new-cluster or confirmed) of `snap` and propose a cluster for
    every other one; `spaces` are the feature matrices of `snap`'s discovery."""
    from turtle_core.discovery.refine import FeatureProbe, refine_labels

    curation = snap.curation
    assign = np.asarray(curation.assignments)
    active = np.flatnonzero(assign != EXCLUDED)
    checked = np.asarray(curation.checked)[active]
    if not checked.any():
        raise ProjectError(
            "Nothing to learn from yet: confirm or move some images first (the review queue is a good start)."
        )
    probe = FeatureProbe(spaces, rows=active)  # no copy of the features
    check_cancel(cancel)
    result = refine_labels(probe, assign[active], checked)
    check_cancel(cancel)
    rows = active[~checked]
    targets = result.labels[~checked]
    n_changed = int((targets != assign[rows]).sum())
    description = f"Propagated the fixes of {int(checked.sum())} checked image(s): re-labelled {n_changed} of {rows.size}"
    edit = Relabel(
        discovery_id=snap.discovery_id,
        images=snap.keys(rows),
        cluster_ids=tuple(int(c) for c in targets),
        confidence=tuple(float(c) for c in result.confidence[~checked]),
        description=description,
    )
    return RefineProposal(edit, n_changed, int(rows.size), int(checked.sum()), curation.version)
