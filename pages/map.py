"""Map page: every image as a point; lasso a group to look at it and relabel or exclude it."""

from __future__ import annotations

import hashlib
from functools import partial

import numpy as np
import streamlit as st

from turtle_core.maps.layouts import density_sample
from turtle_core.names import markdown_text
from turtle_ui import cleaning as cleaning_ui
from turtle_ui import edits, figures, fmt, gallery, merge_view, propagate, session
from turtle_ui import jobs as jobs_ui
from turtle_ui.figures import density_figure, density_grid, scatter_figure
from turtle_ui.selection import points_in_selection


class FileNames:
    """File names of the images, looked up only for the rows drawn or shown."""

    def __init__(self, images: list) -> None:
        self.images = images

    def __getitem__(self, index: int) -> str:
        return self.images[int(index)].path.rsplit("/", 1)[-1]


def selection_in_density_map(xy: np.ndarray, chosen: dict, sample: np.ndarray) -> np.ndarray:
    """Every image inside the drawn boxes and lassos (all points, not only the drawn sample), or the
    clicked sampled point; remembered per shape so reruns do not test a million points again."""
    boxes, lassos = list(chosen.get("box") or []), list(chosen.get("lasso") or [])
    if not boxes and not lassos:
        clicked = [p.get("point_index") for p in chosen.get("points") or [] if p.get("curve_number") == 1]
        return np.unique(sample[np.asarray([i for i in clicked if i is not None], dtype=np.int64)])
    key = repr((xy.shape, float(xy[:, 0].sum()), boxes, lassos))
    memo = st.session_state.setdefault("map_shape_memo", {})
    if key not in memo:
        memo.clear()
        memo[key] = points_in_selection(xy, boxes, lassos)
    return memo[key]


session.through_app()
st.title("Map")
st.caption(
    "Similar images lie close together. Lasso or box a group of points to review and relabel it; "
    "pick the Click tool to open a single image."
)
session.show_flash()
project = session.require_project()
snap = session.require_snapshot(project)  # this run's discovery + curation, read together
curation = snap.curation

busy = jobs_ui.busy_notice(project)
edits.undo_bar(project, snap, disabled=busy)
propagate.propagate_panel(project, snap, disabled=busy)

# ------------------------------------------------------------------------------------------ layout
controls = st.columns([1, 1.2, 1.4, 2], vertical_alignment="bottom")
method_label = controls[0].segmented_control(
    "Layout", ["UMAP", "PCA"], default="UMAP", required=True, key="map_layout", persist_state="session"
)
colour_label = controls[1].segmented_control(
    "Colour by",
    ["Cluster", "Confidence"],
    default="Cluster",
    required=True,
    key="map_colour",
    persist_state="session",
)
TOOLS = {"Lasso": "lasso", "Box": "select", "Click": "pan"}
tool = controls[2].segmented_control(
    "Tool",
    list(TOOLS),
    default="Lasso",
    required=True,
    key="map_tool",
    persist_state="session",
    help="Lasso or Box: select a group of images. Click: open one image (drag to pan).",
)

# Point selections are rows of the chart: a new discovery (new rows) gets a new chart, never old rows.
chart_key = f"map:{snap.discovery_id[:12]}:{st.session_state.edit_nonce}"
# What the chart showed last run: "umap", "pca" (chosen) or "stand-in" (PCA while UMAP computes).
shown_key = f"map_shown:{project.folder}"


def _ticked(scope: str, selected: np.ndarray) -> np.ndarray:
    """The selected rows whose tick box (in the selection's gallery `scope`) is still ticked."""
    left_out = gallery.unticked(scope, snap, selected) if selected.size > 1 else selected[:0]
    return np.setdiff1d(selected, left_out)


def _selection(key: str) -> list[int]:
    """Rows selected in the chart `key` (its state from the previous run)."""
    state = st.session_state.get(key) or {}
    return list((state.get("selection") or {}).get("point_indices") or [])


def _show_umap() -> None:
    st.session_state[shown_key] = "umap"


xy = None
umap_job = jobs_ui.project_job(project, "umap")
if method_label == "UMAP":
    xy = project.cached_layout("umap")
    if xy is not None and st.session_state.get(shown_key) == "stand-in" and _selection(chart_key):
        # UMAP finished while the user works on the PCA stand-in: swapping now would redraw the map
        # under their cursor and drop their selection (a new figure is a new chart), so wait to be asked.
        xy = None
        with controls[3]:
            st.caption("The UMAP layout is ready.")
            st.button("Show UMAP", key="show_umap", icon=":material/scatter_plot:", on_click=_show_umap)
    elif xy is None:
        if umap_job is None or umap_job.state == "done":  # done: its layout was for another discovery
            umap_job = jobs_ui.submit_map_job(project)
        if umap_job.state == "failed":
            controls[3].warning("UMAP failed; showing PCA.", icon=":material/warning:")
            if controls[3].button("Retry UMAP", key="retry_umap"):
                jobs_ui.forget_job(project, "umap")
                st.rerun()
            jobs_ui.job_panel(umap_job, "UMAP layout")
        elif umap_job.state == "cancelled":  # as asked: not started again behind the curator's back
            controls[3].caption("UMAP was cancelled; showing PCA.")
            if controls[3].button("Compute UMAP", key="restart_umap", icon=":material/scatter_plot:"):
                jobs_ui.forget_job(project, "umap")
                st.rerun()
        else:
            with controls[3]:
                st.caption("Showing the PCA layout while UMAP is computed in the background.")
                jobs_ui.job_panel(umap_job, "UMAP", compact=True)
                if umap_job.running and not umap_job.cancel_requested:
                    st.button("Stop UMAP", key="stop_umap", icon=":material/close:", on_click=umap_job.cancel)
if method_label == "UMAP":
    st.session_state[shown_key] = "stand-in" if xy is None else "umap"
else:
    st.session_state[shown_key] = "pca"
if xy is None:
    from turtle_core.operations.project import ProjectError

    try:
        xy = project.layout("pca")
    except ProjectError as error:
        st.error(str(error), icon=":material/error:")
        st.page_link(session.DISCOVER_PAGE, label="Discover categories", icon=":material/arrow_forward:")
        st.stop()

n = curation.n_images
if xy.shape[0] != n:
    st.error("The saved layout does not match the images; it will be recomputed.")
    st.stop()

confidence = np.asarray(snap.confidence, dtype=np.float32)
file_names = FileNames(snap.images)
# While the Clusters page previews a cut of the merge tree, colour the map by its groups.
previewed = merge_view.view_labels(project, curation)
if previewed is not None:
    st.caption(
        f"Colours show the {len(previewed[1])} categories previewed on the Clusters page (not applied yet)."
    )
map_labels = previewed or (
    curation.assignments,
    {cid: curation.name_of(cid) for cid in curation.cluster_ids()},
)
colour_by = "cluster" if colour_label == "Cluster" else "confidence"
dense = n > figures.DENSITY_ABOVE  # too many points for the browser: a density map under a sample
layout_key = (str(project.folder), xy.shape, float(xy[:, 0].sum()), float(xy[:, 1].sum()))
# The figure is rebuilt only when what it draws changed (a lasso's rerun reuses it: 0.3 s at 1M points).
figure_key = (
    layout_key,
    snap.discovery_id,
    curation.version,
    merge_view.previewed_count(project, curation),
    colour_by,
    tool,
)
memo = st.session_state.get("map_figure_memo")
if memo is not None and memo[0] == figure_key:
    figure = memo[1]
    sample = density_sample(n, figures.DENSITY_SAMPLE) if dense else None
elif dense:
    sample = density_sample(n, figures.DENSITY_SAMPLE)
    if st.session_state.get("map_grid_key") != layout_key:  # computed once per layout
        st.session_state["map_grid"] = density_grid(xy)
        st.session_state["map_grid_key"] = layout_key
    figure = density_figure(
        st.session_state["map_grid"],
        xy[sample],
        map_labels[0][sample],
        confidence[sample],
        map_labels[1],
        [file_names[i] for i in sample],
        colour_by=colour_by,
        dragmode=TOOLS[tool],
    )
else:
    figure = scatter_figure(
        xy,
        map_labels[0],
        confidence,
        map_labels[1],
        [file_names[i] for i in range(n)],
        colour_by=colour_by,
        dragmode=TOOLS[tool],
    )
st.session_state["map_figure_memo"] = (figure_key, figure)

map_col, side_col = st.columns([7, 4], gap="medium")
with map_col:
    event = st.plotly_chart(
        figure,
        key=chart_key,
        on_select="rerun",
        selection_mode=("points", "box", "lasso"),
        config={"displaylogo": False, "scrollZoom": True, "modeBarButtonsToRemove": ["toImage"]},
    )
    st.caption(
        f"{fmt.fmt_count(n, 'image')} · {fmt.fmt_count(len(curation.cluster_ids()), 'cluster')} · hover a point for its name"
    )

# Key access works for Streamlit's selection state and for a plain dict (AppTest seeds one).
chosen = (event or {}).get("selection") or {}
if dense:
    selected = selection_in_density_map(xy, chosen, sample)
else:
    point_indices = chosen.get("point_indices") or []
    selected = np.unique(np.asarray(point_indices, dtype=np.int64))
selected = selected[(selected >= 0) & (selected < n)]
with map_col:
    passing = cleaning_ui.quality_filter(project, snap, key="map")
if passing is not None and selected.size:
    kept = selected[passing[selected]]
    with map_col:
        st.caption(
            f"{fmt.fmt_int(kept.size)} of the {fmt.fmt_int(selected.size)} selected images carry the flags."
        )
    selected = kept

with side_col:
    if selected.size == 0:
        st.info(
            "Draw a lasso or a box around some points (or click one) to see the images here.",
            icon=":material/touch_app:",
        )
        st.stop()

    # Each selection has its own tick boxes, all ticked: un-ticking leaves an image out of the actions, and a
    # new lasso starts with every image ticked again.
    scope = "map:" + hashlib.sha1(selected.tobytes()).hexdigest()[:12]
    acted_on = _ticked(scope, selected)
    left_out = np.setdiff1d(selected, acted_on)
    if selected.size == 1:
        index = int(selected[0])
        cid = int(curation.assignments[index])
        st.markdown(f"**{markdown_text(file_names[index])}**")
        gallery.preview_image(snap, index)
        st.caption(
            f"{markdown_text(curation.name_of(cid))} · confidence {confidence[index]:.2f} · "
            f"{markdown_text(snap.images[index].path)}"
        )
    else:
        by_cluster = np.unique(curation.assignments[acted_on], return_counts=True)
        parts = sorted(zip(by_cluster[1].tolist(), by_cluster[0].tolist(), strict=True), reverse=True)[:4]
        head = f"**{fmt.fmt_count(selected.size, 'image')} selected**"
        if left_out.size:
            head = f"**{fmt.fmt_int(acted_on.size)} of {fmt.fmt_count(selected.size, 'selected image')}** · {fmt.fmt_int(left_out.size)} un-ticked"
        st.markdown(head)
        st.caption(" · ".join(f"{markdown_text(curation.name_of(c))}: {k}" for k, c in parts))

    with st.container(border=True):
        if acted_on.size:
            pick = partial(_ticked, scope, selected)  # the ticks as they are at a click
            edits.edit_actions(project, snap, acted_on, pick, key="map", horizontal=False, disabled=busy)
            propagate.confirm_button(project, snap, acted_on, pick, key="map", disabled=busy)
        else:
            st.caption("Every image is un-ticked: tick some below to move, exclude or confirm them.")

    if selected.size > 1:
        order = selected[np.argsort(confidence[selected], kind="stable")]
        captions = [f"{confidence[i]:.2f}" for i in order]
        st.caption("Un-tick an image to leave it out.")
        gallery.gallery(
            snap, order, scope=scope, captions=captions, page_size=24, columns=4, ticked_by_default=True
        )
