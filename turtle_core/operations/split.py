"""Splitting one cluster: TURTLE on that cluster's rows only, on a small budget, applied as one edit.

The training runs without touching the curation, so the curator can keep editing other clusters
meanwhile; the parts are then assigned to the cluster's members at the moment the split is applied
(images moved into or out of it during the split are handled too). A cluster larger than discovery's
sample (`discovery.sampled.SAMPLE_ROWS`) is split as discovery works on a big folder: TURTLE is fitted on
a fixed random sample of its members, and every member is then labelled chunk by chunk."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

import numpy as np

from turtle_core.discovery.sampled import discovery_sample, predict_rows_chunked
from turtle_core.progress import Progress, ProgressCallback, check_cancel
from turtle_core.state.curation import Curation
from turtle_core.state.edits import Split
from turtle_core.state.errors import ProjectError, StaleEdit
from turtle_core.state.project_state import ProjectState, Snapshot

# A split spends the quick effort (a few screened starts, one short full run per number of parts) on the
# cluster's rows only: a fraction of a standard discovery (benchmarks/results/split_budget.json).
SPLIT_EFFORT = "quick"
MAX_AUTO_PARTS = 4


class SplitError(ProjectError):
    """A split that cannot be done or applied, with a message for the curator."""


PART_NAME = "{name} · part {number}"  # never "<name> 2", which reads as a number in the name


def part_names(curation: Curation, cluster_id: int, n_parts: int) -> list[str]:
    """ "<name> · part 1", "<name> · part 2", …: no part keeps the old name alone, since none is sure to be
    mostly it. Numbers another cluster already uses are skipped."""
    base = curation.name_of(cluster_id)
    taken = {name for cid, name in curation.names.items() if cid != cluster_id}
    names: list[str] = []
    number = 1
    while len(names) < n_parts:
        candidate = PART_NAME.format(name=base, number=number)
        if candidate not in taken:
            names.append(candidate)
        number += 1
    return names


def split_request(n_members: int, n_parts: int | None) -> int | tuple[int, int]:
    """The number of parts to find: `n_parts`, or a range 2..4 (at most half the images) to choose from."""
    if n_members < 4:
        raise SplitError(f"this cluster has {n_members} images: too few to split.")
    if n_parts:
        if not 2 <= int(n_parts) <= n_members // 2:
            raise SplitError(f"cannot split {n_members} images into {n_parts} parts.")
        return int(n_parts)
    high = min(MAX_AUTO_PARTS, n_members // 2)
    return 2 if high == 2 else (2, high)


def split_cluster(
    state: ProjectState,
    snap: Snapshot,
    spaces: Sequence[np.ndarray],
    cluster_id: int,
    n_parts: int | None = None,
    *,
    effort: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    sample_rows: int | None = None,
) -> list[int]:
    """Find the parts of `cluster_id` with TURTLE and apply them as one undoable `Split` edit; returns the
    parts' ids. Computed on `snap` (whose discovery's features are `spaces`); if the cluster changes
    meanwhile, it is placed with the trained model as it is then (a new discovery or a merged-away cluster
    changes nothing and says so). Above `sample_rows` members (default `SAMPLE_ROWS`) TURTLE is fitted
    on a random sample of them and every member labelled by the fitted model."""
    from turtle_core.discovery.effort import resolve_effort
    from turtle_core.discovery.selection import select_model

    name = snap.curation.name_of(cluster_id)
    members = snap.curation.members(cluster_id)
    try:
        request = split_request(len(members), n_parts)
    except SplitError as error:
        raise SplitError(f"'{name}': {error}") from None
    chosen = resolve_effort(effort or SPLIT_EFFORT)
    sample = discovery_sample(len(members), sample_rows)
    fitted = members if sample is None else members[sample]
    selection = select_model(
        [space[fitted] for space in spaces],
        request,
        random_state=0,
        progress=_as_split(progress),
        cancel=cancel,
        **chosen.select_kwargs(len(members)),
    )
    check_cancel(cancel)
    now = state.snapshot()
    if now is None or now.discovery_id != snap.discovery_id:
        raise StaleEdit("discovery was run again during the split; the split was not applied.")
    if cluster_id not in now.curation.cluster_ids():
        raise SplitError(f"'{name}' no longer exists (merged or emptied meanwhile); nothing was split.")
    current = now.curation.members(cluster_id)
    if sample is None and np.array_equal(current, members):
        sub_labels = np.asarray(selection.best.labels_)
    else:  # sampled, or the cluster changed during the split: the trained model places every member
        sub_labels = predict_rows_chunked(selection.best, spaces, current)
    n_found = int(np.unique(sub_labels).size)
    if n_found < 2:
        raise SplitError(f"TURTLE found no split in '{name}': its images all look alike to it.")
    edit = Split(
        discovery_id=now.discovery_id,
        cluster_id=int(cluster_id),
        members=now.keys(current),
        sub_labels=tuple(int(label) for label in sub_labels),
        names=tuple(part_names(now.curation, cluster_id, n_found)),
    )
    return state.apply(edit)  # StaleEdit (nothing changed) if the cluster changed at the last moment


def apply_parts(curation: Curation, cluster_id: int, sub_labels: np.ndarray | Sequence[int]) -> list[int]:
    """Split `cluster_id` by `sub_labels` (one per member) into parts named "<name> · part 1", "<name> · part 2", …"""
    n_parts = int(np.unique(np.asarray(sub_labels)).size)
    if n_parts < 2:
        raise SplitError(
            f"TURTLE found no split in '{curation.name_of(cluster_id)}': its images all look alike to it."
        )
    return curation.split(cluster_id, sub_labels, names=part_names(curation, cluster_id, n_parts))


def _as_split(progress: ProgressCallback | None) -> ProgressCallback | None:
    if progress is None:
        return None

    def forward(report: Progress) -> None:
        progress(dataclasses.replace(report, stage="split"))

    return forward
