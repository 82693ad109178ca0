"""Buttons that edit the curation: move, exclude, restore, undo and redo (all through `project.apply`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from turtle_core.names import markdown_text
from turtle_core.state import edits
from turtle_ui.fmt import cluster_options, fmt_count
from turtle_ui.session import Describe, apply_chosen_edit, apply_edit, made_by

if TYPE_CHECKING:
    from turtle_core.operations.project import Project
    from turtle_core.state.project_state import Snapshot

NEW_CLUSTER = -2  # select-box sentinel: "move to a new cluster"
Pick = Callable[[], Sequence[int] | np.ndarray]  # the rows picked, read again at a click
SECOND_ACTION = {  # beside Move, by `restore`: label, icon, edit, what it did
    False: ("Exclude", ":material/block:", edits.Exclude, "Excluded {} from the dataset."),
    True: ("Restore", ":material/restore_from_trash:", edits.Restore, "Restored {} to their clusters."),
}


def edit_actions(
    project: Project,
    snap: Snapshot,
    rows: Sequence[int] | np.ndarray,
    pick: Pick,
    *,
    key: str,
    horizontal: bool = True,
    restore: bool = False,
    disabled: bool = False,
) -> None:
    """Move the picked images (`rows` of `snap`) to an existing or new cluster, exclude them, or (for excluded
    ones) restore them. A click acts on what is chosen when it is made: the images `pick()` gives then, the
    target and the new name as they are then. The edit names the images, so it acts on exactly these files."""
    curation = snap.curation
    count = len(rows)
    labels = cluster_options(curation)
    options = [NEW_CLUSTER, *labels]
    nonce = st.session_state.edit_nonce
    cols = st.columns([3, 3, 2, 2] if horizontal else [1], vertical_alignment="bottom")
    target_col = cols[0]
    name_col = cols[1] if horizontal else cols[0]
    move_col = cols[2] if horizontal else cols[0]
    exclude_col = cols[3] if horizontal else cols[0]
    target_key, name_key = f"{key}:target:{nonce}", f"{key}:name:{nonce}"
    target = target_col.selectbox(
        "Move to",
        options,
        index=1 if len(options) > 1 and horizontal else 0,
        format_func=lambda cid: "+ New cluster" if cid == NEW_CLUSTER else labels[cid],
        key=target_key,
        disabled=disabled,
    )
    if target == NEW_CLUSTER:
        name_col.text_input(
            "New cluster name", placeholder="optional, e.g. cats", key=name_key, disabled=disabled
        )
    elif horizontal:
        name_col.empty()
    none = count == 0
    move_col.button(
        f"Move {fmt_count(count, 'image')}" if count else "Move",
        type="primary",
        icon=":material/arrow_forward:",
        disabled=disabled or none,
        key=f"{key}:move",
        width="stretch",
        on_click=apply_chosen_edit,
        args=(project, on_picked(snap, pick, partial(_move, snap, target_key, name_key))),
    )
    since = {"discovery_id": snap.discovery_id}
    label, icon, kind, said = SECOND_ACTION[restore]
    exclude_col.button(
        label,
        icon=icon,
        disabled=disabled or none,
        key=f"{key}:{label.lower()}",
        width="stretch",
        on_click=apply_chosen_edit,
        args=(
            project,
            on_picked(
                snap,
                pick,
                lambda images: (kind(images=images, **since), lambda n: said.format(fmt_count(n, "image"))),
            ),
        ),
    )


def on_picked(
    snap: Snapshot, pick: Pick, make: Callable[[tuple[str, ...]], tuple[edits.Edit, Describe]]
) -> Callable[[], tuple[edits.Edit, Describe] | None]:
    """For `apply_chosen_edit`: the edit (and its description) `make` makes of the images `pick()` gives at
    the click (rows of `snap`); nothing when none is picked then (every image un-ticked before the click)."""

    def choose() -> tuple[edits.Edit, Describe] | None:
        rows = np.asarray(pick(), dtype=np.int64)
        return make(snap.keys(rows)) if rows.size else None

    return choose


def _move(
    snap: Snapshot, target_key: str, name_key: str, images: tuple[str, ...]
) -> tuple[edits.Edit, Describe]:
    target = st.session_state.get(target_key)
    since = {"discovery_id": snap.discovery_id, "images": images}
    if target == NEW_CLUSTER:
        name = (st.session_state.get(name_key) or "").strip() or None
        return (
            edits.MoveToNewCluster(name=name, **since),
            lambda cid: (
                f"Moved {fmt_count(len(images), 'image')} to the new cluster '{name or f'Cluster {cid}'}'."
            ),
        )
    target_name = snap.curation.name_of(int(target))
    return (
        edits.Move(cluster_id=int(target), **since),
        lambda moved: f"Moved {fmt_count(moved, 'image')} to '{target_name}'.",
    )


def undo_bar(project: Project, snap: Snapshot, disabled: bool = False) -> None:
    """Undo / redo buttons, the last edit (and whose it is, when not this tab's), and the full history in a
    popover. Undo and redo name the step they mean: if someone edited meanwhile, nothing is undone."""
    curation = snap.curation
    history = curation.history()
    redo_next = curation.redo_history()
    last, upcoming = curation.last_step(), curation.next_redo()
    undo_col, redo_col, last_col, history_col = st.columns([1, 1, 5, 1.2], vertical_alignment="center")
    whose = made_by(last.origin) if last is not None and last.origin else None  # None: this tab, or unknown
    whose = None if whose == "this tab" else whose
    # The click names the step shown when the button was drawn: if someone edited meanwhile, nothing is undone.
    since = snap.discovery_id
    undo_col.button(
        "Undo" if whose is None else "Undo theirs",
        icon=":material/undo:",
        disabled=disabled or last is None,
        help=None if whose is None else f"The last edit was made by {whose}: undo reverts it.",
        width="stretch",
        key="undo",
        on_click=apply_edit,
        args=(
            project,
            edits.Undo(discovery_id=since, step_id=last.step_id if last else ""),
            f"Undone: {last.description if last else ''}",
        ),
    )
    redo_col.button(
        "Redo",
        icon=":material/redo:",
        disabled=disabled or upcoming is None,
        width="stretch",
        key="redo",
        on_click=apply_edit,
        args=(
            project,
            edits.Redo(discovery_id=since, step_id=upcoming.step_id if upcoming else ""),
            f"Redone: {upcoming.description if upcoming else ''}",
        ),
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
