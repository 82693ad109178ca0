"""Cleaning inside the labelling loop: the Duplicates view, quality-flag filters and name suggestions."""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from turtle_core.cleaning.quality import FLAG_TITLES, QUALITY_FLAGS, QualityFlags
from turtle_core.constants import EXCLUDED
from turtle_core.names import markdown_text
from turtle_core.operations import cleaning
from turtle_core.state import edits
from turtle_core.state.errors import ProjectError
from turtle_ui import gallery, session
from turtle_ui import jobs as jobs_ui
from turtle_ui.fmt import fmt_count, fmt_int

if TYPE_CHECKING:
    from turtle_core.cleaning.duplicates import DuplicateGroup, NeighbourGraph
    from turtle_core.operations.project import Project
    from turtle_core.state.project_state import Snapshot

GROUPS_PER_PAGE = 8
NAMES_INLINE_LIMIT = 20_000  # up to this many images the words are found during the page run (seconds)
THUMBS_PER_GROUP = 8


def flags_of(project: Project, snap: Snapshot) -> QualityFlags:
    """The quality flags of the snapshot's images (scores from the scan)."""
    return cleaning.snapshot_quality(snap, project.scan_result)


def quality_filter(project: Project, snap: Snapshot, *, key: str) -> np.ndarray | None:
    """Pills to show only images with some quality flags; returns the rows that pass (None: no filter).
    A folder without flagged images says so instead."""
    flags = flags_of(project, snap)
    counts = {flag: count for flag, count in flags.counts().items() if count}
    if not counts:
        st.caption(
            "No image of this folder is dark, light, blurry, low in information, oddly shaped or grey."
        )
        return None
    chosen = st.pills(
        "Only images that are",
        list(counts),
        selection_mode="multi",
        format_func=lambda flag: f"{FLAG_TITLES[flag]} ({fmt_int(counts[flag])})",
        key=f"quality_filter:{key}",
        help=(
            "Image-quality flags measured when the folder was scanned (cleanvision's definitions; "
            "blurry: edges spread over several pixels, whatever the contrast)."
        ),
    )
    if not chosen:
        return None
    return flags.any_of(list(chosen))


def flag_caption(flags: QualityFlags, row: int) -> str:
    """The image's flags for a tile caption ("" when none)."""
    return ", ".join(FLAG_TITLES[flag] for flag in flags.names_of(row))


# ------------------------------------------------------------------------------------------ duplicates
def duplicates_view(project: Project, snap: Snapshot, *, busy: bool) -> None:
    """Groups of near-duplicates side by side, the threshold with its histogram, and keep-one edits."""
    graph = cleaning.cached_graph(project, snap.discovery)
    if graph is None:
        job = jobs_ui.project_job(project, "duplicates")
        if job is None or (not job.running and job.state != "failed"):
            discovery = snap.discovery
            job = jobs_ui.submit_job(
                project,
                "duplicates",
                lambda progress, cancel: cleaning.compute_graph(project, discovery, progress, cancel),
            )
        st.caption("Comparing every image with its nearest neighbours in the embeddings (no new model runs)…")
        jobs_ui.job_panel(job, "Near-duplicates")
        if job.state == "failed" and st.button("Retry", key="dup_retry"):
            jobs_ui.forget_job(project, "duplicates")
            st.rerun()
        return
    _review(project, snap, graph, busy)


def _review(project: Project, snap: Snapshot, graph: NeighbourGraph, busy: bool) -> None:
    median = graph.median_distance()
    if graph.n_nodes < 2:
        st.info("Too few distinct images to compare.", icon=":material/info:")
        return
    default = graph.default_threshold()
    top = max(2 * default, median, 1e-4)
    key = f"dup_threshold:{snap.discovery_id[:12]}"
    threshold = st.slider(
        "Near-duplicate threshold (distance)",
        min_value=0.0,
        max_value=float(round(top, 4)),
        value=float(round(default, 4)),
        step=float(round(top / 200, 6)) or 1e-6,
        format="%.4f",
        key=key,
        help="Two images are near-duplicates when the mean cosine distance of their embeddings is at most "
        "this and their pixel signatures are far closer to each other than to each image's other "
        "look-alikes (as a whole, or the one against a slightly cropped window of the other; or "
        "practically identical). The default adapts to the folder: a multiple of its "
        "median nearest-neighbour distance.",
    )
    _histogram(graph, threshold, median, top)
    groups = cleaning.near_duplicates(snap, graph, threshold)
    assignments = snap.curation.assignments
    open_groups = [g for g in groups if any(assignments[row] != EXCLUDED for row in g.others)]
    done = len(groups) - len(open_groups)
    if not groups:
        st.success(
            f"No near-duplicates or exact copies among {fmt_count(len(snap.images), 'image')} at this threshold.",
            icon=":material/check_circle:",
        )
        return
    copies = sum(1 for g in open_groups for row in g.others if assignments[row] != EXCLUDED)
    head, button = st.columns([3, 2], vertical_alignment="center")
    head.markdown(
        f"**{_count(len(open_groups), 'group')} to review** · {_count(copies, 'image')} beside the ones kept"
        + (f" · {_count(done, 'group')} done" if done else "")
    )
    if open_groups:
        button.button(
            f"Keep one of each, exclude {fmt_int(copies)}",
            key="dup_keep_all",
            type="primary",
            icon=":material/filter_none:",
            disabled=busy,
            width="stretch",
            on_click=session.apply_chosen_edit,
            args=(project, partial(_keep_one, snap, open_groups)),
        )
    if not open_groups:
        st.success(
            "Every group keeps one image; undo to bring the others back.", icon=":material/check_circle:"
        )
        return
    st.caption(
        "The first image of each group is the one kept (the most pixels, then the largest file); the others "
        "show their distance to it. Exact copies are the scan's identical files."
    )
    n_pages = max(1, math.ceil(len(open_groups) / GROUPS_PER_PAGE))
    page = 1
    if n_pages > 1:
        page = int(st.number_input("Page", 1, n_pages, 1, key="dup_page", label_visibility="collapsed"))
        st.caption(f"Page {page} of {n_pages}")
    flags = flags_of(project, snap)
    for number, group in enumerate(open_groups[(page - 1) * GROUPS_PER_PAGE :][:GROUPS_PER_PAGE]):
        _group(project, snap, group, (page - 1) * GROUPS_PER_PAGE + number, flags, busy)


def _count(n: int, word: str) -> str:
    return f"{fmt_int(n)} {word}" + ("" if n == 1 else "s")


def _histogram(graph: NeighbourGraph, threshold: float, median: float, top: float) -> None:
    import plotly.graph_objects as go

    from turtle_core.cleaning.duplicates import distance_histogram

    counts, edges = distance_histogram(graph, upper=top)
    figure = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, marker_color="#8aa1b4"))
    figure.add_vline(x=threshold, line_color="#d1495b", annotation_text="threshold")
    figure.update_layout(
        height=180,
        margin={"l": 10, "r": 10, "t": 10, "b": 30},
        xaxis_title="distance to the nearest other image",
        bargap=0.05,
    )
    st.plotly_chart(figure, key="dup_histogram", config={"displayModeBar": False})
    st.caption(
        f"Median nearest-neighbour distance {median:.4f}; images left of the line have a neighbour near "
        "enough in the embeddings, which their pixel signatures must then confirm."
    )


def _group(
    project: Project, snap: Snapshot, group: DuplicateGroup, number: int, flags: QualityFlags, busy: bool
) -> None:
    assignments = snap.curation.assignments
    with st.container(border=True):
        rows = list(group.rows)[:THUMBS_PER_GROUP]
        paths = gallery.thumbnail_paths(snap, rows)
        columns = st.columns(THUMBS_PER_GROUP)
        for slot, (row, path) in enumerate(zip(rows, paths, strict=True)):
            with columns[slot]:
                if path:
                    st.image(path, width="stretch")
                gallery.file_label(snap, row, 16)
                record = snap.images[row]
                if slot == 0:
                    note = f"keep · {record.width}×{record.height}"
                elif assignments[row] == EXCLUDED:
                    note = "excluded"
                else:
                    distance = group.distances[slot - 1]
                    note = "exact copy" if distance == 0.0 else f"distance {distance:.4f}"
                extra = flag_caption(flags, row)
                st.caption(markdown_text(note + (f" · {extra}" if extra else "")))
        if len(group.rows) > THUMBS_PER_GROUP:
            st.caption(f"and {len(group.rows) - THUMBS_PER_GROUP} more")
        others = sum(1 for row in group.others if assignments[row] != EXCLUDED)
        st.button(
            f"Keep the first, exclude {others}",
            key=f"dup_keep:{number}",
            icon=":material/filter_1:",
            disabled=busy,
            on_click=session.apply_chosen_edit,
            args=(project, partial(_keep_one, snap, [group])),
        )


def _keep_one(snap: Snapshot, groups: list[DuplicateGroup]) -> tuple[edits.Edit, session.Describe] | None:
    edit = cleaning.keep_one_edit(snap, groups)
    if edit is None:
        return None
    return (
        edit,
        lambda excluded: (
            f"Kept one image of each of {fmt_count(len(groups), 'group')}; excluded {excluded} (undo brings them back)."
        ),
    )


def duplicates_label(project: Project, snap: Snapshot) -> str:
    """The Duplicates view's name, with its open groups when they are known already."""
    graph = cleaning.cached_graph(project, snap.discovery)
    if graph is None:
        return "Duplicates"
    key = f"dup_threshold:{snap.discovery_id[:12]}"
    threshold = st.session_state.get(key, graph.default_threshold())
    groups = cleaning.near_duplicates(snap, graph, float(threshold))
    assignments = snap.curation.assignments
    n_open = sum(1 for g in groups if any(assignments[row] != EXCLUDED for row in g.others))
    return f"Duplicates ({n_open})"


# ------------------------------------------------------------------------------------------ names
def suggestions(project: Project, snap: Snapshot) -> dict[int, list] | None:
    """Name suggestions per cluster (the images' words are found once per discovery: during the page run
    up to `NAMES_INLINE_LIMIT` images, else in a background job with a progress line meanwhile); None
    while computing, or when no backbone of the discovery can name images (then said once)."""
    try:
        found = cleaning.cluster_suggestions(project, snap, compute=False)
    except cleaning.NotComputed:
        if len(snap.images) <= NAMES_INLINE_LIMIT:
            try:
                with st.spinner("Finding words for the clusters…"):
                    found = cleaning.cluster_suggestions(project, snap)
            except ProjectError as error:  # e.g. the embedding cache lost the features: the page goes on
                st.caption(f"No name suggestions: {markdown_text(str(error))}")
                return None
            return _said(found)
        job = jobs_ui.project_job(project, "names")
        if job is None or not job.running:
            if job is not None and job.state == "failed":
                jobs_ui.job_panel(job, "Name suggestions")
                return None
            job = jobs_ui.submit_job(project, "names", lambda progress, cancel: _compute_words(project, snap))
        jobs_ui.job_panel(job, "Name suggestions", compact=True)
        return None
    return _said(found)


def _said(found: dict[int, list] | None) -> dict[int, list] | None:
    if found is None:
        st.caption(
            "No name suggestions: none of this discovery's backbones knows words for pictures (a CLIP "
            "backbone with its weights, or EfficientNet-Lite with its shipped ImageNet head, does)."
        )
    elif not any(found.values()):
        st.caption("No name suggestions: no word has strong enough evidence in any cluster.")
    return found


def _compute_words(project: Project, snap: Snapshot) -> str:
    cleaning.cluster_suggestions(project, snap)
    return snap.discovery_id


def suggestion_buttons(project: Project, snap: Snapshot, cid: int, found: list, *, busy: bool) -> None:
    """One button per suggested name: a click renames the cluster (one undoable edit)."""
    if not found:
        return
    columns = st.columns(len(found))
    for i, (column, suggestion) in enumerate(zip(columns, found, strict=True)):
        old = snap.curation.name_of(cid)
        column.button(
            f"{suggestion.name} · {suggestion.share:.0%}",
            key=f"suggest:{cid}:{i}",
            type="tertiary",
            icon=":material/label:",
            disabled=busy,
            help=f"Name this cluster '{suggestion.name}': {suggestion.share:.0%} of its images have it "
            "among their five most likely words.",
            on_click=session.apply_edit,
            args=(
                project,
                edits.Rename(discovery_id=snap.discovery_id, cluster_id=cid, name=suggestion.name),
                lambda new, old=old: f"Renamed '{old}' to '{new}'.",
            ),
        )


__all__ = [
    "QUALITY_FLAGS",
    "duplicates_label",
    "duplicates_view",
    "flag_caption",
    "flags_of",
    "quality_filter",
    "suggestion_buttons",
    "suggestions",
]
