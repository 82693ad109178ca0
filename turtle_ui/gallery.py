"""Thumbnail galleries with tick boxes, image strips and single-image previews."""

from __future__ import annotations

import hashlib
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from turtle_core.memo import IdentityMemo
from turtle_core.names import display_name, markdown_text
from turtle_ui.fmt import fmt_int, middle_ellipsis

if TYPE_CHECKING:
    from turtle_core.operations.project import Project
    from turtle_core.state.project_state import Snapshot

# Galleries take a `Project` or, for one consistent view per run, its `Snapshot`: both have
# `images`, `thumbnail(row)` and `image_path(row)`.


def thumbnail_paths(project: Project | Snapshot, indices: Sequence[int]) -> list[str | None]:
    from turtle_ui.session import read_roots

    roots = read_roots()  # served to others: never a picture from outside the allowed folders
    paths: list[str | None] = []
    for index in indices:
        try:
            path = project.thumbnail(int(index), within=roots)
        except Exception:  # a broken file must not break the gallery
            path = None
        paths.append(str(path) if path is not None else None)
    return paths


def file_label(project: Project | Snapshot, index: int, max_chars: int = 22) -> None:
    """The image's file name under its tile: shortened in the middle when long, the full path on hover."""
    relative = display_name(project.images[index].path)
    short = middle_ellipsis(Path(relative).name, max_chars)
    st.markdown(
        f'<div class="tile-name" title="{html.escape(relative, quote=True)}">{html.escape(short)}</div>',
        unsafe_allow_html=True,
    )


def image_strip(project: Project | Snapshot, indices: Sequence[int], width: int = 64) -> None:
    """A row of small thumbnails (e.g. a cluster's most typical images)."""
    paths = [p for p in thumbnail_paths(project, indices) if p]
    if paths:
        st.image(paths, width=width)
    else:
        st.caption("No preview available.")


def pick_prefix(scope: str) -> str:
    return f"pick:{scope}:{st.session_state.edit_nonce}:"


def image_token(path: str) -> str:
    """A widget-key-safe identity of an image (its path), stable across rescans and rediscoveries."""
    return hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def picked(scope: str, snap: Snapshot) -> list[int]:
    """Rows of `snap` whose images are ticked in the gallery `scope` (on any of its pages) since the
    last edit. Ticks are kept by image identity, never by row, so a rescan cannot redirect them."""
    rows = _rows_by_token(snap)
    return sorted(rows[token] for token in _boxes_holding(scope, True) if token in rows)


def unticked(scope: str, snap: Snapshot, among: np.ndarray) -> np.ndarray:
    """The rows of `among` whose box in the gallery `scope` was un-ticked since the last edit (for a gallery
    drawn `ticked_by_default`; a box on a page not yet shown counts as ticked)."""
    rows = _rows_by_token(snap)
    off = [rows[token] for token in _boxes_holding(scope, False) if token in rows]
    among = np.asarray(among)
    return among[np.isin(among, off)]


def _boxes_holding(scope: str, value: bool) -> set[str]:
    """Image tokens whose box in the gallery `scope` holds `value`."""
    prefix = pick_prefix(scope)
    return {
        key[len(prefix) :]
        for key, state in st.session_state.to_dict().items()
        if isinstance(key, str) and key.startswith(prefix) and state is value
    }


_token_rows = IdentityMemo(size=4)  # hashing 100,000 paths took 0.15 s a rerun


def _rows_by_token(snap: Snapshot) -> dict[str, int]:
    return _token_rows.get(
        (snap.discovery,),
        snap.rows_key,
        lambda: {image_token(record.path): row for row, record in enumerate(snap.images)},
    )


def set_picked(scope: str, snap: Snapshot, indices: Sequence[int], value: bool) -> None:
    prefix = pick_prefix(scope)
    for index in indices:
        st.session_state[f"{prefix}{image_token(snap.images[int(index)].path)}"] = value


def clear_picked(scope: str) -> None:
    prefix = pick_prefix(scope)
    for key in list(st.session_state.to_dict()):
        if isinstance(key, str) and key.startswith(prefix):
            st.session_state[key] = False


def gallery(
    project: Project | Snapshot,
    indices: np.ndarray,
    *,
    scope: str,
    captions: Sequence[str] | None = None,
    page_size: int = 48,
    columns: int = 8,
    selectable: bool = True,
    ticked_by_default: bool = False,
) -> list[int]:
    """A paginated grid of thumbnails; with `selectable`, each has a checkbox (`ticked_by_default`: a box
    nobody touched is ticked, for a selection the curator narrows). Returns the page's indices."""
    n = len(indices)
    if n == 0:
        st.caption("No images.")
        return []
    n_pages = max(1, math.ceil(n / page_size))
    page_key = f"page:{scope}"
    if st.session_state.get(page_key, 1) > n_pages:
        st.session_state[page_key] = 1
    if n_pages > 1:
        left, right = st.columns([1, 4], vertical_alignment="center")
        page = left.number_input(
            "Page",
            min_value=1,
            max_value=n_pages,
            value=1,
            step=1,
            key=page_key,
            label_visibility="collapsed",
        )
        start = (int(page) - 1) * page_size
        right.caption(
            f"Page {page} of {n_pages} · images {start + 1}–{min(n, start + page_size)} of {fmt_int(n)}"
        )
    else:
        page, start = 1, 0
    shown = [int(i) for i in indices[start : start + page_size]]
    paths = thumbnail_paths(project, shown)
    prefix = pick_prefix(scope)
    grid = st.columns(columns)
    name_chars = max(12, 176 // columns)  # what fits one line of a tile (8 columns: 22 characters)
    for slot, (index, path) in enumerate(zip(shown, paths, strict=True)):
        with grid[slot % columns]:
            caption = captions[start + slot] if captions is not None else None
            if path:
                st.image(path, width="stretch")
            else:
                st.caption(":material/warning: unreadable")
            file_label(project, index, name_chars)
            if selectable:
                st.checkbox(
                    markdown_text(caption) if caption else str(index),
                    value=ticked_by_default,
                    key=f"{prefix}{image_token(project.images[index].path)}",
                    persist_state="page",
                )
            elif caption:
                st.caption(markdown_text(caption))
    return shown


def file_name(project: Project | Snapshot, index: int) -> str:
    return Path(project.images[index].path).name


def preview_image(project: Project | Snapshot, index: int, max_side: int = 640) -> None:
    """One image, larger than a thumbnail (EXIF-rotated, downscaled), or a note when it cannot be read."""
    from turtle_core.ingest.scan import UnusableImage, load_image
    from turtle_ui.session import read_roots

    try:
        image = load_image(project.image_path(index), within=read_roots())
        image.thumbnail((max_side, max_side))
    except (UnusableImage, OSError) as error:
        st.warning(f"Cannot show this image: {markdown_text(error)}")
        return
    st.image(image, width="stretch")
