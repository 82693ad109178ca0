"""Clusters page: overview, per-cluster galleries, a review queue, and the cluster edits."""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from turtle_core.constants import ATYPICAL_Z, EXCLUDED
from turtle_core.discovery.effort import EFFORTS
from turtle_core.jobs import JobConflict
from turtle_core.names import display_name, markdown_text
from turtle_core.operations.split import SPLIT_EFFORT, part_names
from turtle_core.state import edits as curation_edits
from turtle_ui import cleaning as cleaning_ui
from turtle_ui import edits, fmt, gallery, keyboard_review, merge_view, propagate, session
from turtle_ui import jobs as jobs_ui
from turtle_ui.pickers import cluster_selectbox

session.through_app()
st.title("Clusters")
st.caption("Name the clusters, fix what TURTLE got wrong, and leave out what does not belong.")
project = session.require_project()
snap = session.require_snapshot(project)  # this run's discovery + curation, read together
curation = snap.curation

# A finished split is announced once, to the session that watched it, and selections made before it are reset.
split_job = jobs_ui.project_job(project, "split")
if jobs_ui.finished_news(split_job):
    if split_job.state == "done":
        st.session_state.edit_nonce += 1
        parts = [curation.name_of(cid) for cid in split_job.result or []]
        session.flash(
            "success", f"Split into {len(parts)} clusters: " + ", ".join(f"'{n}'" for n in parts) + "."
        )
    elif split_job.state == "cancelled":
        session.flash(
            "warning", f"Split cancelled after {fmt.fmt_duration(split_job.elapsed_s)}; nothing changed."
        )
    elif split_job.error is not None:
        session.flash("error", f"Split failed: {split_job.error.message}")
session.show_flash()

busy = jobs_ui.busy_notice(project, show_split=False)
splitting = split_job is not None and split_job.running
if splitting:
    jobs_ui.job_panel(split_job, "Split", cancel_label="Cancel split")
    st.caption(
        "You can keep editing meanwhile: the split applies to the cluster as it is when it ends "
        "(images moved in or out of it meanwhile included)."
    )
edits.undo_bar(project, snap, disabled=busy)
propagate.propagate_panel(project, snap, disabled=busy)
confidence = np.asarray(snap.confidence, dtype=np.float32)
assign = curation.assignments
sizes = curation.sizes()
options = fmt.cluster_options(curation)

VIEWS = ["Overview", "Gallery", "Review queue", "Duplicates"]
view = st.segmented_control(
    "View",
    VIEWS,
    default="Overview",
    required=True,
    key="clusters_view",
    label_visibility="collapsed",
    format_func=lambda v: cleaning_ui.duplicates_label(project, snap) if v == "Duplicates" else v,
)


def _open_cluster(cid: int) -> None:
    st.session_state.clusters_view = "Gallery"
    st.session_state.gallery_cluster = cid


def _rename(cid_key: str, name_key: str) -> tuple[curation_edits.Edit, session.Describe]:
    cid = int(st.session_state[cid_key])
    old = curation.name_of(cid)
    return (
        curation_edits.Rename(
            discovery_id=snap.discovery_id, cluster_id=cid, name=st.session_state.get(name_key, "")
        ),
        lambda new: f"Renamed '{old}' to '{new}'.",
    )


def _merge(cids_key: str, name_key: str) -> tuple[curation_edits.Edit, session.Describe]:
    chosen = [int(c_) for c_ in st.session_state.get(cids_key) or []]
    name = (st.session_state.get(name_key) or "").strip()
    merged_name = name or (curation.name_of(chosen[0]) if chosen else "")
    return (
        curation_edits.Merge(discovery_id=snap.discovery_id, cluster_ids=tuple(chosen), name=name or None),
        f"Merged {len(chosen)} clusters into '{merged_name}'.",
    )


# ------------------------------------------------------------------------------------------ overview
def overview() -> None:
    n_excluded = int((assign == EXCLUDED).sum())
    cols = st.columns(5)
    cols[0].metric("Clusters", len(sizes))
    cols[1].metric("Images", fmt.fmt_int(curation.n_images - n_excluded))
    cols[2].metric("Excluded", fmt.fmt_int(n_excluded))
    cols[3].metric("Checked images", fmt.fmt_int(int(curation.checked.sum())))
    metrics = project.current_metrics(snap)
    if metrics:
        cols[4].metric(
            "Accuracy vs folders",
            f"{metrics['accuracy']:.1%}",
            help="Hungarian-matched accuracy of the current labels",
        )

    with st.container(border=True):
        st.markdown("**Edit clusters**")
        rename_tab, merge_tab, split_tab = st.tabs(
            ["Rename", "Merge", "Split"], key="edit_tab", on_change="rerun"
        )
        nonce = st.session_state.edit_nonce
        try:
            with rename_tab:
                a, b, c = st.columns([3, 3, 1], vertical_alignment="bottom")
                cid = cluster_selectbox(a, "Cluster", list(options), options.get, key=f"rename_cid:{nonce}")
                b.text_input(
                    "New name", placeholder=display_name(curation.name_of(cid)), key=f"rename_name:{nonce}"
                )
                c.button(
                    "Rename",
                    type="primary",
                    disabled=bool(busy),
                    key="rename",
                    width="stretch",
                    on_click=session.apply_chosen_edit,
                    args=(project, partial(_rename, f"rename_cid:{nonce}", f"rename_name:{nonce}")),
                )
            with merge_tab:
                a, b, c = st.columns([3, 3, 1], vertical_alignment="bottom")
                chosen = a.multiselect(
                    "Clusters to merge", list(options), format_func=options.get, key=f"merge_cids:{nonce}"
                )
                b.text_input(
                    "Name of the merged cluster",
                    placeholder=(
                        display_name(curation.name_of(chosen[0]))
                        if chosen
                        else "keeps the first cluster's name"
                    ),
                    key=f"merge_name:{nonce}",
                )
                c.button(
                    "Merge",
                    type="primary",
                    disabled=bool(busy) or len(chosen) < 2,
                    key="merge",
                    width="stretch",
                    on_click=session.apply_chosen_edit,
                    args=(project, partial(_merge, f"merge_cids:{nonce}", f"merge_name:{nonce}")),
                )
            with split_tab:
                a, b, e, c = st.columns([3, 2, 2, 1], vertical_alignment="bottom")
                cid = cluster_selectbox(a, "Cluster", list(options), options.get, key=f"split_cid:{nonce}")
                parts = b.selectbox(
                    "Parts",
                    [None, 2, 3, 4],
                    format_func=lambda p: "automatic (2–4)" if p is None else str(p),
                    key="split_parts",
                )
                split_effort = e.selectbox(
                    "Effort",
                    list(EFFORTS),
                    index=list(EFFORTS).index(SPLIT_EFFORT),
                    format_func=str.capitalize,
                    key="split_effort",
                    help="Quick (default): a fraction of a full discovery, on this cluster's images only. "
                    "Standard: what a full discovery spends, many times longer.",
                )
                if c.button(
                    "Split", type="primary", disabled=bool(busy) or splitting, key="split", width="stretch"
                ):
                    try:
                        jobs_ui.submit_job(
                            project,
                            "split",
                            lambda progress, cancel: project.split_cluster(
                                cid, parts, progress=progress, cancel=cancel, effort=split_effort
                            ),
                        )
                    except JobConflict as error:
                        session.flash("warning", str(error))
                    st.rerun()
                first, second = (markdown_text(n) for n in part_names(curation, cid, 2))
                st.caption(
                    "TURTLE runs again on this cluster's images only, in the background (cancellable). The parts "
                    f"are named after the cluster: '{first}', '{second}', …; the split is one undoable edit."
                )
        except ValueError as error:
            st.error(markdown_text(error), icon=":material/warning:")

    if merge_view.section(project, curation, busy=bool(busy)):
        return  # a cut of the merge tree is previewed: its groups replace the clusters below

    suggested = cleaning_ui.suggestions(project, snap) or {}
    order = np.lexsort((-confidence, assign))  # by cluster, most confident first
    starts = np.searchsorted(assign[order], list(options))
    per_row = 3
    ids = list(options)
    for row in range(0, len(ids), per_row):
        cols = st.columns(per_row)
        for col, cid in zip(cols, ids[row : row + per_row], strict=False):
            start = starts[ids.index(cid)]
            members = order[start : start + sizes[cid]]
            with col, st.container(border=True):
                head, button = st.columns([3, 1], vertical_alignment="center")
                head.markdown(f"**{markdown_text(curation.name_of(cid))}**")
                button.button("Open", key=f"open-{cid}", on_click=_open_cluster, args=(cid,), type="tertiary")
                st.caption(
                    f"{fmt.fmt_count(sizes[cid], 'image')} · mean confidence {float(confidence[members].mean()):.2f}"
                )
                gallery.image_strip(snap, members[:5].tolist(), width=46)
                cleaning_ui.suggestion_buttons(project, snap, cid, suggested.get(cid, []), busy=bool(busy))


# ------------------------------------------------------------------------------------------ gallery
SORTS = {
    "Least sure": "asc",
    "Most typical": "desc",
    "File name": "name",
}


@st.fragment
def cluster_gallery() -> None:
    session.redraw_for_flash()
    choices = list(options) + ([EXCLUDED] if (assign == EXCLUDED).any() else [])
    a, b, c = st.columns([5, 4, 2], vertical_alignment="bottom")
    cid = cluster_selectbox(
        a,
        "Cluster",
        choices,
        lambda c_: f"Excluded ({int((assign == EXCLUDED).sum())})" if c_ == EXCLUDED else options[c_],
        key="gallery_cluster",
    )
    sort = b.segmented_control("Sort", list(SORTS), default="Least sure", required=True, key="gallery_sort")
    page_size = c.selectbox("Per page", [48, 100], key="gallery_page_size")
    members = curation.members(cid)
    passing = cleaning_ui.quality_filter(project, snap, key="gallery")
    if passing is not None:
        members = members[passing[members]]
    if SORTS[sort] == "name":
        members = members[np.argsort([snap.images[i].path for i in members], kind="stable")]
    else:
        members = members[
            np.argsort(confidence[members] * (1 if SORTS[sort] == "asc" else -1), kind="stable")
        ]
    scope = f"cluster{cid}"
    captions = [f"{confidence[i]:.2f}" for i in members]
    shown = gallery.gallery(snap, members, scope=scope, captions=captions, page_size=page_size)
    _selection_bar(scope, shown, restore=cid == EXCLUDED)


@st.fragment
def review_queue() -> None:
    session.redraw_for_flash()
    unchecked = (assign != EXCLUDED) & ~np.asarray(curation.checked)
    strangers = unchecked & (snap.atypicality > ATYPICAL_Z)
    fresh = snap.new
    least_sure, no_category = "Least sure first", f"Fits no category ({fmt.fmt_int(int(strangers.sum()))})"
    new_group = f"New images ({fmt.fmt_int(int(fresh.sum()))})"
    groups = ([new_group] if fresh.any() else []) + [least_sure, no_category]
    group = st.segmented_control(
        "Queue", groups, default=groups[0], required=True, key="review_group", label_visibility="collapsed"
    )
    group = (
        group if group in groups else groups[0]
    )  # a group that emptied since (the new images, all checked)
    a, b, c = st.columns([3, 1, 1], vertical_alignment="bottom")
    page_size = b.selectbox("Per page", [48, 100], key="review_page_size")
    # Buttons, not a toggle: the keyboard's shortcuts do nothing while an input (a toggle's box) has the focus.
    one_at_a_time = (
        c.segmented_control(
            "Show",
            ["Grid", "One at a time"],
            default="Grid",
            required=True,
            key="review_layout",
            help="One at a time: review with the keyboard. Y keeps the image where it is, 1–9 move it to a "
            "cluster, X excludes it, → skips, ← goes back.",
        )
        == "One at a time"
    )
    if group == new_group:
        st.caption(
            "Images a rescan added and labelled with your categories, least sure first (those that fit none "
            "wait in their own cluster). Move the wrong ones and confirm the right ones."
        )
        queue = np.flatnonzero(fresh)
        queue = queue[np.argsort(confidence[queue], kind="stable")]
    elif group == least_sure:
        st.caption(
            "Unchecked images from the least sure up, across all clusters: the most likely mistakes. "
            "Move the wrong ones, confirm the right ones, then propagate your fixes."
        )
        threshold = a.slider("Confidence below", 0.0, 1.0, 0.6, 0.05, key="review_threshold")
        queue = np.flatnonzero(unchecked & (confidence < threshold))
        queue = queue[np.argsort(confidence[queue], kind="stable")]
    else:
        st.caption(
            "Unchecked images far from every cluster's typical images: they may belong to a category that "
            "has no cluster yet (move them to a new cluster) or to none (exclude them)."
        )
        queue = np.flatnonzero(strangers)
        queue = queue[np.argsort(-snap.atypicality[queue], kind="stable")]
    passing = cleaning_ui.quality_filter(project, snap, key="review")
    if passing is not None:
        queue = queue[passing[queue]]
    st.caption(f"{fmt.fmt_count(queue.size, 'image')} to review")
    captions = [
        f"{curation.name_of(int(assign[i]))} · {confidence[i]:.2f}" + (" · new" if fresh[i] else "")
        for i in queue
    ]
    if one_at_a_time:
        keyboard_review.one_by_one(project, snap, queue, captions, disabled=busy)
        return
    shown = gallery.gallery(snap, queue, scope="review", captions=captions, page_size=page_size)
    _selection_bar("review", shown)


def _selection_bar(scope: str, shown: list[int], restore: bool = False) -> None:
    picked = gallery.picked(scope, snap)
    with st.container(border=True):
        info, select_all, clear = st.columns([4, 1, 1], vertical_alignment="center")
        info.markdown(f"**{len(picked)} selected**" if picked else "Tick images to move or exclude them.")
        select_all.button(
            "Select page",
            key=f"{scope}:all",
            on_click=gallery.set_picked,
            args=(scope, snap, shown, True),
            width="stretch",
        )
        clear.button(
            "Clear", key=f"{scope}:clear", on_click=gallery.clear_picked, args=(scope,), width="stretch"
        )
        pick = partial(gallery.picked, scope, snap)  # the ticks as they are at a click
        edits.edit_actions(project, snap, picked, pick, key=scope, restore=restore, disabled=bool(busy))
        if not restore:
            propagate.confirm_button(project, snap, picked, pick, key=scope, disabled=bool(busy))


if view == "Overview":
    overview()
elif view == "Gallery":
    cluster_gallery()
elif view == "Review queue":
    review_queue()
else:
    cleaning_ui.duplicates_view(project, snap, busy=bool(busy))
