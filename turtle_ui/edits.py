"""Buttons that edit the curation: move, exclude, restore, undo and redo (all through `project.apply`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from turtle_core.names import markdown_text
from turtle_core.state import edits
from turtle_ui.fmt import cluster_options, fmt_count
from turtle_ui.session import apply_edit, made_by

if TYPE_CHECKING:
    from turtle_core.operations.project import Project
    from turtle_core.state.project_state import Snapshot

NEW_CLUSTER = -2  # select-box sentinel: "move to a new cluster"


def edit_actions(
    project: Project,
    snap: Snapshot,
    indices: Sequence[int] | np.ndarray,
    *,
    key: str,
    horizontal: bool = True,
    restore: bool = False,
    disabled: bool = False,
) -> None:
    """Move the given images (rows of `snap`) to an existing or new cluster, exclude them, or (for
    excluded ones) restore them. The edit names the images, so it acts on exactly these files."""
    curation = snap.curation
    indices = np.asarray(indices, dtype=np.int64)
    labels = cluster_options(curation)
    options = [NEW_CLUSTER, *labels]
    nonce = st.session_state.edit_nonce
    cols = st.columns([3, 3, 2, 2] if horizontal else [1], vertical_alignment="bottom")
    target_col = cols[0]
    name_col = cols[1] if horizontal else cols[0]
    move_col = cols[2] if horizontal else cols[0]
    exclude_col = cols[3] if horizontal else cols[0]
    target = target_col.selectbox(
        "Move to",
        options,
        index=1 if len(options) > 1 and horizontal else 0,
        format_func=lambda cid: "+ New cluster" if cid == NEW_CLUSTER else labels[cid],
        key=f"{key}:target:{nonce}",
        disabled=disabled,
    )
    new_name = ""
    if target == NEW_CLUSTER:
        new_name = name_col.text_input(
            "New cluster name",
            placeholder="optional, e.g. cats",
            key=f"{key}:name:{nonce}",
            disabled=disabled,
        )
    elif horizontal:
        name_col.empty()
    none = indices.size == 0
    images = snap.keys(indices)
    since = {"discovery_id": snap.discovery_id}
    if move_col.button(
        f"Move {fmt_count(indices.size, 'image')}" if indices.size else "Move",
        type="primary",
        icon=":material/arrow_forward:",
        disabled=disabled or none,
        key=f"{key}:move",
        width="stretch",
    ):
        if target == NEW_CLUSTER:
            name = new_name.strip() or None
            apply_edit(
                project,
                edits.MoveToNewCluster(images=images, name=name, **since),
                lambda cid: (
                    f"Moved {fmt_count(indices.size, 'image')} to the new cluster '{name or f'Cluster {cid}'}'."
                ),
            )
        else:
            target_name = curation.name_of(int(target))
            apply_edit(
                project,
                edits.Move(images=images, cluster_id=int(target), **since),
                lambda moved: f"Moved {fmt_count(moved, 'image')} to '{target_name}'.",
            )
    if restore:
        if exclude_col.button(
            "Restore",
            icon=":material/restore_from_trash:",
            disabled=disabled or none,
            key=f"{key}:restore",
            width="stretch",
        ):
            apply_edit(
                project,
                edits.Restore(images=images, **since),
                lambda restored: f"Restored {fmt_count(restored, 'image')} to their clusters.",
            )
    elif exclude_col.button(
        "Exclude",
        icon=":material/block:",
        disabled=disabled or none,
        key=f"{key}:exclude",
        width="stretch",
    ):
        apply_edit(
            project,
            edits.Exclude(images=images, **since),
            lambda excluded: f"Excluded {fmt_count(excluded, 'image')} from the dataset.",
        )


def undo_bar(project: Project, snap: Snapshot, disabled: bool = False) -> None:
    """Undo / redo buttons, the last edit (and whose it is, when not this tab's), and the full history in a
    popover. Undo and redo name the step they mean: if someone edited meanwhile, nothing is undone."""
    curation = snap.curation
    history = curation.history()
    redo_next = curation.redo_history()
    last, upcoming = curation.last_step(), curation.next_redo()
    undo_col, redo_col, last_col, history_col = st.columns([1, 1, 5, 1.2], vertical_alignment="center")
    _apply_requested_step(project, snap)
    whose = made_by(last.origin) if last is not None and last.origin else None  # None: this tab, or unknown
    whose = None if whose == "this tab" else whose
    # The click names the step shown when the button was drawn (bound at draw time, read on the next run):
    # if someone edited meanwhile, nothing is undone.
    undo_col.button(
        "Undo" if whose is None else "Undo theirs",
        icon=":material/undo:",
        disabled=disabled or last is None,
        help=None if whose is None else f"The last edit was made by {whose}: undo reverts it.",
        width="stretch",
        key="undo",
        on_click=_request_step,
        args=("undo", last.step_id if last else "", last.description if last else ""),
    )
    redo_col.button(
        "Redo",
        icon=":material/redo:",
        disabled=disabled or upcoming is None,
        width="stretch",
        key="redo",
        on_click=_request_step,
        args=("redo", upcoming.step_id if upcoming else "", upcoming.description if upcoming else ""),
    )
    if last is not None and whose is not None:
        last_col.caption(f"Last edit, by {whose}: {markdown_text(last.description)}")
    else:
        last_col.caption(f"Last edit: {markdown_text(history[-1])}" if history else "No edits yet.")
    with history_col.popover(f"History ({len(history)})", width="stretch"):
        if not history:
            st.caption("No edits yet.")
        for number, line in reversed(list(enumerate(history, 1))):
            st.caption(f"{number}. {markdown_text(line)}")
        for line in redo_next:
            st.caption(f"~~{markdown_text(line)}~~ (undone)")


def _request_step(which: str, step_id: str, description: str) -> None:
    st.session_state.history_request = (which, step_id, description)


def _apply_requested_step(project: Project, snap: Snapshot) -> None:
    request = st.session_state.pop("history_request", None)
    if not request:
        return
    which, step_id, description = request
    if which == "undo":
        apply_edit(
            project, edits.Undo(discovery_id=snap.discovery_id, step_id=step_id), f"Undone: {description}"
        )
    else:
        apply_edit(
            project, edits.Redo(discovery_id=snap.discovery_id, step_id=step_id), f"Redone: {description}"
        )
