"""Which clusters are alike: merge suggestions with their images side by side, and the number of
categories as a slider over the merge tree (a view of the map and the overview until applied)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from turtle_core.names import display_name, escape_name, markdown_text
from turtle_core.state import edits
from turtle_ui import gallery, session
from turtle_ui.fmt import fmt_count

if TYPE_CHECKING:
    from turtle_core.discovery.hierarchy import MergeStep, MergeTree
    from turtle_core.operations.project import Project
    from turtle_core.state.curation import Curation

SUGGESTIONS = 5
THUMBS_PER_SIDE = 4


def _view_key(project: Project) -> str:
    return f"merge_view:{project.folder}"


def _curation_key(project: Project, curation: Curation) -> tuple[str, int]:
    # Pages see a fresh copy of the curation every run: the discovery id and the version name its state.
    discovery = project.discovery
    return (discovery.discovery_id if discovery else "", curation.version)


def _rows_key(project: Project, curation: Curation) -> tuple[str, int]:
    # The caches hold per-row arrays: a rescan keeps the discovery id but changes the rows (`rows_key`).
    discovery = project.discovery
    return (discovery.rows_key if discovery else "", curation.version)


@st.cache_resource(show_spinner="Comparing the clusters…", max_entries=2)
def _features(_project: Any, folder: str, rows_key: str) -> list[np.ndarray] | None:
    """The discovery's features as TURTLE sees them (whitened): computed once per discovery and rescan."""
    from turtle_core.discovery.hierarchy import whitened_spaces
    from turtle_core.operations.project import ProjectError

    try:
        spaces = _project.spaces()
    except ProjectError:
        return None
    return whitened_spaces(spaces, _project.discovery.n_clusters)


@st.cache_resource(show_spinner=False, max_entries=4)
def _tree(_project: Any, _curation: Any, folder: str, rows_key: tuple[str, int]) -> MergeTree | None:
    from turtle_core.discovery.hierarchy import merge_tree

    features = _features(_project, folder, rows_key[0])
    if features is None:
        return None
    return merge_tree(features, _curation.assignments, geometry="l2")  # already whitened


def current_tree(project: Project, curation: Curation) -> MergeTree | None:
    """The merge tree of the current clusters (cached until the next edit); None below 3 clusters."""
    if len(curation.cluster_ids()) < 3:
        return None
    return _tree(project, curation, escape_name(project.folder), _rows_key(project, curation))


def previewed_count(project: Project, curation: Curation) -> int | None:
    """The number of categories the curator is previewing on the tree, or None (no preview, or an
    edit happened since it was chosen)."""
    saved = st.session_state.get(_view_key(project))
    if not saved or tuple(saved["curation"]) != _curation_key(project, curation):
        return None
    n = int(saved["n"])
    return n if n < len(curation.cluster_ids()) else None


def view_labels(project: Project, curation: Curation) -> tuple[np.ndarray, dict[int, str]] | None:
    """While a cut is previewed: every image's group (named by its clusters) for the map; else None."""
    n = previewed_count(project, curation)
    tree = current_tree(project, curation) if n is not None else None
    if n is None or tree is None:
        return None
    names = {group[0]: _group_name(curation, group) for group in tree.groups(n)}
    return tree.relabel(curation.assignments, n), names


def _group_name(curation: Curation, group: tuple[int, ...]) -> str:
    return " + ".join(display_name(curation.name_of(c)) for c in group)


def _remember(project: Project, curation: Curation, widget_key: str) -> None:
    st.session_state[_view_key(project)] = {
        "n": int(st.session_state[widget_key]),
        "curation": list(_curation_key(project, curation)),
    }


def section(project: Project, curation: Curation, *, busy: bool) -> bool:
    """Suggested merges and the categories slider. Returns True while a cut is previewed (the overview
    then shows the groups instead of the clusters)."""
    tree = current_tree(project, curation)
    with st.container(border=True):
        st.markdown("**Similar clusters**")
        if tree is None:
            st.caption("Merge suggestions need at least 3 clusters and this discovery's embeddings.")
            return False
        n_clusters = tree.n_clusters
        suggested = tree.suggested_n_groups()
        widget_key = f"merge_view_n:{escape_name(project.folder)}:{curation.version}"
        if widget_key not in st.session_state:
            st.session_state[widget_key] = previewed_count(project, curation) or n_clusters
        n = st.slider(
            "Number of categories",
            min_value=2,
            max_value=n_clusters,
            key=widget_key,
            help="Groups the clusters along the merge tree (closest centroids first). A preview: the map "
            "and the overview follow it, nothing changes until you apply it.",
        )
        _remember(project, curation, widget_key)
        st.caption(
            f"The merge tree suggests **{suggested}** categories (its largest jump in merge distance). "
            "Discovering more clusters than you expect and merging here works without knowing the number."
        )
        previewing = n < n_clusters
        if previewing:
            st.info(
                f"Previewing {n} categories from {n_clusters} clusters: the map and the overview show the "
                "groups. Nothing is changed until you apply it.",
                icon=":material/visibility:",
            )
            st.button(
                f"Apply: merge into {n} categories",
                type="primary",
                disabled=busy,
                key="apply_cut",
                icon=":material/call_merge:",
                on_click=session.apply_chosen_edit,
                args=(project, partial(_cut, tree, _curation_key(project, curation)[0], widget_key)),
            )
        elif st.toggle("Show the most alike clusters side by side", key="merge_suggestions_on"):
            # The parts of a split the curator made are not offered back for merging (undo does that).
            _suggestions(project, curation, tree.suggestions(SUGGESTIONS, curation.split_parts()), busy)
    if previewing:
        _grouped_overview(project, curation, tree, n)
    return previewing


def _cut(tree: MergeTree, discovery_id: str, widget_key: str) -> tuple[edits.Edit, str]:
    """The cut of the tree at the number of categories the slider holds at the click, as one edit."""
    n = int(st.session_state[widget_key])
    groups = tuple(tuple(int(c) for c in group) for group in tree.groups(n) if len(group) > 1)
    return (
        edits.MergeGroups(discovery_id=discovery_id, groups=groups),
        f"Merged {tree.n_clusters} clusters into {n} categories (one undo).",
    )


def _suggestions(project: Project, curation: Curation, steps: list[MergeStep], busy: bool) -> None:
    st.markdown("Most alike first:")
    for rank, step in enumerate(steps):
        with st.container(border=True):
            head, button = st.columns([5, 1], vertical_alignment="center")
            left, right = _group_name(curation, step.left), _group_name(curation, step.right)
            head.markdown(
                f"**{markdown_text(left)}** and **{markdown_text(right)}** · distance {step.height:.3g}"
            )
            ids = tuple(int(c) for c in (*step.left, *step.right))
            button.button(
                "Merge",
                key=f"merge_suggestion:{rank}",
                disabled=busy,
                width="stretch",
                on_click=session.apply_edit,
                args=(
                    project,
                    edits.Merge(discovery_id=_curation_key(project, curation)[0], cluster_ids=ids),
                    f"Merged {left} and {right} into '{curation.name_of(ids[0])}'.",
                ),
            )
            sides = st.columns(2)
            for column, group in zip(sides, (step.left, step.right), strict=True):
                with column:
                    gallery.image_strip(project, _typical(project, curation, group), width=56)


def _typical(project: Project, curation: Curation, group: tuple[int, ...]) -> list[int]:
    """The most confident images of a group of clusters."""
    members = np.flatnonzero(np.isin(curation.assignments, group))
    confidence = np.asarray(project.discovery.confidence)[members]
    return members[np.argsort(-confidence, kind="stable")[:THUMBS_PER_SIDE]].tolist()


def _grouped_overview(project: Project, curation: Curation, tree: MergeTree, n: int) -> None:
    sizes = curation.sizes()
    groups = sorted(tree.groups(n), key=lambda g: -sum(sizes[c] for c in g))
    st.markdown(f"**Overview at {n} categories**")
    per_row = 3
    for row in range(0, len(groups), per_row):
        cols = st.columns(per_row)
        for col, group in zip(cols, groups[row : row + per_row], strict=False):
            with col, st.container(border=True):
                st.markdown(f"**{markdown_text(_group_name(curation, group))}**")
                st.caption(
                    f"{fmt_count(sum(sizes[c] for c in group), 'image')} · {fmt_count(len(group), 'cluster')}"
                )
                gallery.image_strip(project, _typical(project, curation, group), width=56)
