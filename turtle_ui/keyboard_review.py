"""Review one image at a time from the keyboard: Y confirms it, 1–9 move it to a cluster, X excludes it, → skips
and ← goes back, so a curator's hands stay on the keys (Streamlit's button shortcuts; C and R are taken).

After an action the next image of the queue shows: the one that followed it, found again by its identity in the
queue the edit left (a confirmed image leaves the least-sure queue but stays among the new images).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from turtle_core.names import display_name, markdown_text
from turtle_core.state import edits
from turtle_core.state.errors import StaleEdit
from turtle_ui import gallery
from turtle_ui.fmt import fmt_count, fmt_int
from turtle_ui.session import Describe, apply_edit

if TYPE_CHECKING:
    from turtle_core.operations.project import Project
    from turtle_core.state.curation import Curation
    from turtle_core.state.project_state import Snapshot

AT = "review:at"  # the image (its path, as edits name it) the curator is looking at
MOVE_KEYS = 9


def cluster_keys(curation: Curation) -> list[int]:
    """The clusters the keys 1–9 move to: the ones the curator named first, then the others, largest first."""
    sizes = curation.sizes()

    def unnamed(cid: int) -> bool:
        return curation.name_of(cid) == f"Cluster {cid}"

    return sorted(sizes, key=lambda cid: (unnamed(cid), -sizes[cid], cid))[:MOVE_KEYS]


def one_by_one(
    project: Project, snap: Snapshot, queue: np.ndarray, captions: Sequence[str], *, disabled: bool = False
) -> None:
    """The queue's images one at a time, with the keyboard's actions beside the image."""
    if queue.size == 0:
        st.caption("Nothing to review here.")
        return
    found = _position(snap, queue, st.session_state.get(AT))
    position = found if found is not None else min(st.session_state.get(f"{AT}:position", 0), queue.size - 1)
    st.session_state[f"{AT}:position"] = position
    index = int(queue[position])
    following = snap.keys(queue[position + 1 : position + 2])[0] if position + 1 < queue.size else None
    curation = snap.curation
    current = int(curation.assignments[index])
    picture, actions = st.columns([3, 2])
    with picture:
        gallery.preview_image(snap, index, max_side=720)
    with actions:
        st.markdown(f"**{fmt_int(position + 1)} of {fmt_count(queue.size, 'image')}**")
        st.caption(
            f"{markdown_text(display_name(snap.images[index].path))} · {markdown_text(captions[position])}"
        )
        back, skip = st.columns(2)
        back.button(
            "Back",
            icon=":material/arrow_back:",
            shortcut="Left",
            key=f"{AT}:back",
            disabled=position == 0,
            width="stretch",
            on_click=_look_at,
            args=(snap.keys(queue[position - 1 : position])[0] if position else None,),
        )
        skip.button(
            "Skip",
            icon=":material/arrow_forward:",
            shortcut="Right",
            key=f"{AT}:skip",
            disabled=following is None,
            width="stretch",
            on_click=_look_at,
            args=(following,),
        )
        since = {"discovery_id": snap.discovery_id, "images": snap.keys([index])}
        name = markdown_text(display_name(curation.name_of(current)))
        st.button(
            f"Right: keep in {name}",
            icon=":material/check:",
            shortcut="Y",
            key=f"{AT}:confirm",
            type="primary",
            disabled=disabled,
            width="stretch",
            on_click=_act,
            args=(
                project,
                following,
                edits.Confirm(**since),
                f"Confirmed: it stays in '{curation.name_of(current)}'.",
            ),
        )
        st.button(
            "Exclude",
            icon=":material/block:",
            shortcut="X",
            key=f"{AT}:exclude",
            disabled=disabled,
            width="stretch",
            on_click=_act,
            args=(project, following, edits.Exclude(**since), "Excluded it from the dataset."),
        )
        st.caption("Wrong: move it to")
        for number, cid in enumerate(cluster_keys(curation), start=1):
            target = curation.name_of(cid)
            st.button(
                f"{markdown_text(display_name(target))}",
                shortcut=str(number),
                key=f"{AT}:move:{cid}",
                disabled=disabled or cid == current,
                width="stretch",
                on_click=_act,
                args=(project, following, edits.Move(cluster_id=cid, **since), f"Moved it to '{target}'."),
            )


def _position(snap: Snapshot, queue: np.ndarray, key: str | None) -> int | None:
    """Where the image `key` is in `queue` (None when it is not there, or no longer in the project): one
    lookup, not an identity for every image of the queue on every run."""
    if key is None:
        return None
    try:
        row = int(snap.rows([key])[0])
    except StaleEdit:
        return None
    where = np.flatnonzero(queue == row)
    return int(where[0]) if where.size else None


def _look_at(key: str | None) -> None:
    st.session_state[AT] = key


def _act(project: Project, following: str | None, edit: edits.Edit, describe: Describe) -> None:
    """Apply `edit` to the image shown, and show the one that followed it in the queue."""
    _look_at(following)
    apply_edit(project, edit, describe)
