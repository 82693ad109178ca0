"""Helpers shared by the pages: the open project, background jobs, progress panels, galleries."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from turtle_core.workspace.jobs import Job, JobManager

if TYPE_CHECKING:
    from turtle_core.workspace.curation import Curation
    from turtle_core.workspace.project import Project

PROJECT_PAGE = "pages/project.py"
DISCOVER_PAGE = "pages/discover.py"
MAP_PAGE = "pages/map.py"
CLUSTERS_PAGE = "pages/clusters.py"
EXPORT_PAGE = "pages/export.py"

STAGE_LABELS = {
    "scan": "Scanning images",
    "embed": "Computing embeddings",
    "turtle": "Running TURTLE",
    "select": "Screening starts and comparing TURTLE runs",
    "layout": "Computing the map layout",
    "export": "Exporting",
    "split": "Splitting the cluster",
    "thumbnails": "Making thumbnails",
}

SESSION_DEFAULTS: dict[str, Any] = {
    "folder": None,  # the open project's image folder (str)
    "flash": None,  # (kind, message) shown once at the top of the next page run
    "edit_nonce": 0,  # bumped after every curation edit: resets selections keyed on it
}


def init_session() -> None:
    """Set session defaults once per session."""
    for key, value in SESSION_DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value


# ---------------------------------------------------------------------------------------- project


def _open_project_uncached(folder: str) -> Project:
    from turtle_core.workspace.project import Project

    return Project.open(folder)


@st.cache_resource(show_spinner=False, max_entries=8)
def _open_project(folder: str) -> Project:
    return _open_project_uncached(folder)


@st.cache_resource(show_spinner=False)
def job_manager() -> JobManager:
    """The process-wide registry of background jobs."""
    return JobManager()


def open_folder(folder: str | os.PathLike[str]) -> Project:
    """Open (or re-use) the project of `folder` and make it this session's project.

    Raises the engine's `ProjectError` with a user-facing message when the folder is unusable."""
    key = os.path.abspath(os.path.expanduser(os.fspath(folder).strip()))
    project = _open_project(key)
    st.session_state.folder = key
    st.session_state.edit_nonce += 1
    return project


def close_project() -> None:
    st.session_state.folder = None


def current_project() -> Project | None:
    """This session's project, or None when no folder is open (or it cannot be opened any more)."""
    folder = st.session_state.get("folder")
    if not folder:
        return None
    try:
        return _open_project(folder)
    except Exception as error:  # the folder vanished or became unreadable since it was opened
        st.session_state.folder = None
        flash("error", f"Could not reopen {folder}: {error}")
        return None


def require_project() -> Project:
    """The open project; otherwise a friendly hint with a link to the Project page, and stop."""
    project = current_project()
    if project is None:
        show_flash()
        st.info(
            "No project is open yet. Choose an image folder, or try the demo, to start.",
            icon=":material/folder_open:",
        )
        st.page_link(PROJECT_PAGE, label="Open a project", icon=":material/arrow_forward:")
        st.stop()
    return project


def require_curation(project: Project) -> Curation:
    """The project's curation; otherwise a hint to run discovery first, and stop."""
    if project.discovery is None or project.curation is None:
        st.info(
            "No categories yet: run discovery first to group the images.", icon=":material/travel_explore:"
        )
        st.page_link(DISCOVER_PAGE, label="Discover categories", icon=":material/arrow_forward:")
        st.stop()
    return project.curation


def job_key(project: Project, kind: str) -> str:
    return f"{project.folder}::{kind}"


def project_job(project: Project, kind: str) -> Job[Any] | None:
    return job_manager().get(job_key(project, kind))


def submit_job(project: Project, kind: str, fn: Callable[[Any, Any], Any]) -> Job[Any]:
    return job_manager().submit(kind, fn, key=job_key(project, kind))


def busy_jobs(project: Project, kinds: Sequence[str] = ("scan", "discover", "split")) -> list[Job[Any]]:
    """Running jobs of this project that change its images or clusters."""
    jobs = (project_job(project, kind) for kind in kinds)
    return [job for job in jobs if job is not None and job.running]


def busy_notice(project: Project) -> bool:
    """While discovery or a split rewrites the clusters: say so, show its progress (the page reruns when it
    ends), and return True so the page disables its edits."""
    jobs = busy_jobs(project, ("discover", "split"))
    if jobs:
        st.warning(
            "The clusters are being recomputed; editing is paused until it finishes.",
            icon=":material/hourglass_top:",
        )
        for job in jobs:
            job_panel(job, "Discovery" if job.kind == "discover" else "Split", compact=True)
    return bool(jobs)


# ---------------------------------------------------------------------------------------- messages


def flash(kind: str, message: str) -> None:
    """Show `message` at the top of the next run (survives `st.rerun`)."""
    st.session_state.flash = (kind, message)


def show_flash() -> None:
    note = st.session_state.get("flash")
    if not note:
        return
    st.session_state.flash = None
    kind, message = note
    {"success": st.success, "error": st.error, "warning": st.warning}.get(kind, st.info)(message)


def edited(project: Project, message: str) -> None:
    """After a curation edit: save, reset selections, tell the user, rerun the whole app."""
    project.save_curation()
    st.session_state.edit_nonce += 1
    flash("success", message)
    st.rerun()


# ---------------------------------------------------------------------------------------- formatting


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def fmt_int(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def cluster_options(curation: Curation) -> dict[int, str]:
    """Cluster id → "name (size)" for select boxes, largest first."""
    sizes = curation.sizes()
    order = sorted(sizes, key=lambda cid: (-sizes[cid], cid))
    return {cid: f"{curation.name_of(cid)} ({fmt_int(sizes[cid])})" for cid in order}


# ---------------------------------------------------------------------------------------- jobs UI


def job_panel(
    job: Job[Any] | None, title: str, *, cancel_label: str = "Cancel", compact: bool = False
) -> None:
    """Live status of a background job, redrawn every 0.5 s while it runs (the rest of the page stays
    responsive); when it finishes, the whole app reruns once so the page shows the result.
    `compact`: a single progress line without a cancel button, for narrow columns."""
    if job is None:
        return
    if not job.running:
        _draw_job(job, title, cancel_label)
        return

    def draw() -> None:
        if not job.running:
            st.rerun()
        if compact:
            _draw_job_line(job, title)
        else:
            _draw_job(job, title, cancel_label)

    # Two guards against Streamlit 1.67 dropping the element after a polling fragment. On a busy
    # server the browser's 0.5 s reruns of the fragment pile up and can run right after the full
    # rerun that follows the job; the full run's delta for the fragment's block is then discarded
    # unsent, the browser drops the old block as stale (shifting its siblings up) and the late
    # fragment run writes its block over the next sibling (seen: "Exported N images" vanished).
    # So the fragment lives alone in its own container, and once the job is over there is no
    # fragment for late reruns to find.
    with st.container():
        st.fragment(draw, run_every=0.5)()


def _draw_job_line(job: Job[Any], title: str) -> None:
    progress = job.progress
    detail = progress.message if progress and progress.message else "starting"
    text = f"{title}: {detail} · {fmt_duration(job.elapsed_s)}"
    st.progress(progress.fraction if progress else 0.0, text=text)


def _draw_job(job: Job[Any], title: str, cancel_label: str) -> None:
    if job.running:
        with st.container(border=True):
            progress = job.progress
            stage = STAGE_LABELS.get(progress.stage, progress.stage.title()) if progress else "Starting"
            head, button = st.columns([5, 1], vertical_alignment="center")
            head.markdown(f"**{title}** · {stage}")
            if job.cancel_requested:
                button.caption("Cancelling…")
            elif button.button(cancel_label, key=f"cancel-{job.id}", icon=":material/close:"):
                job.cancel()
                st.rerun(scope="fragment")
            if progress is not None and progress.total:
                st.progress(progress.fraction, text=f"{fmt_int(progress.done)} / {fmt_int(progress.total)}")
                parts = [f"{progress.rate:,.1f} images/s" if progress.rate else None]
                parts.append(f"ETA {fmt_duration(progress.eta_s)}" if progress.eta_s is not None else None)
                parts.append(f"elapsed {fmt_duration(job.elapsed_s)}")
                parts.append(progress.message or None)
                st.caption(" · ".join(p for p in parts if p))
            else:
                st.progress(0.0, text=progress.message if progress and progress.message else "Starting…")
                st.caption(f"elapsed {fmt_duration(job.elapsed_s)}")
            earlier = [STAGE_LABELS.get(r.stage, r.stage.title()) for r in job.log[:-1]]
            if earlier:
                st.caption("Done: " + " → ".join(dict.fromkeys(earlier)))
    elif job.state == "failed" and job.error is not None:
        st.error(f"{title} failed: {job.error.message}", icon=":material/warning:")
        with st.expander("Technical details"):
            st.code(job.error.traceback, language="text")
    elif job.state == "cancelled":
        st.warning(
            f"{title} was cancelled after {fmt_duration(job.elapsed_s)}.", icon=":material/stop_circle:"
        )


# ---------------------------------------------------------------------------------------- galleries


def thumbnail_paths(project: Project, indices: Sequence[int]) -> list[str | None]:
    paths: list[str | None] = []
    for index in indices:
        try:
            path = project.thumbnail(int(index))
        except Exception:  # a broken file must not break the gallery
            path = None
        paths.append(str(path) if path is not None else None)
    return paths


def image_strip(project: Project, indices: Sequence[int], width: int = 64) -> None:
    """A row of small thumbnails (e.g. a cluster's most typical images)."""
    paths = [p for p in thumbnail_paths(project, indices) if p]
    if paths:
        st.image(paths, width=width)
    else:
        st.caption("No preview available.")


def pick_prefix(scope: str) -> str:
    return f"pick:{scope}:{st.session_state.edit_nonce}:"


def picked(scope: str) -> list[int]:
    """Indices ticked in the gallery `scope` (on any of its pages) since the last edit."""
    prefix = pick_prefix(scope)
    return sorted(
        int(key[len(prefix) :])
        for key, value in st.session_state.to_dict().items()
        if isinstance(key, str) and key.startswith(prefix) and value is True
    )


def set_picked(scope: str, indices: Sequence[int], value: bool) -> None:
    prefix = pick_prefix(scope)
    for index in indices:
        st.session_state[f"{prefix}{int(index)}"] = value


def clear_picked(scope: str) -> None:
    prefix = pick_prefix(scope)
    for key in list(st.session_state.to_dict()):
        if isinstance(key, str) and key.startswith(prefix):
            st.session_state[key] = False


def gallery(
    project: Project,
    indices: np.ndarray,
    *,
    scope: str,
    captions: Sequence[str] | None = None,
    page_size: int = 48,
    columns: int = 8,
    selectable: bool = True,
) -> list[int]:
    """A paginated grid of thumbnails; with `selectable`, each has a checkbox. Returns the page's indices."""
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
    for slot, (index, path) in enumerate(zip(shown, paths, strict=True)):
        with grid[slot % columns]:
            caption = captions[start + slot] if captions is not None else None
            if path:
                st.image(path, width="stretch")
            else:
                st.caption(":material/warning: unreadable")
            if selectable:
                st.checkbox(
                    caption or str(index),
                    key=f"{prefix}{index}",
                    persist_state="page",
                )
            elif caption:
                st.caption(caption)
    return shown


def file_name(project: Project, index: int) -> str:
    return Path(project.images[index].path).name


def palette_css() -> None:
    """Load the app's small stylesheet (compact galleries, tighter headers)."""
    css = Path(__file__).resolve().parent.parent / "assets" / "app.css"
    if css.is_file():
        st.html(f"<style>{css.read_text()}</style>")


# ---------------------------------------------------------------------------------------- edits


NEW_CLUSTER = -2  # select-box sentinel: "move to a new cluster"


def edit_actions(
    project: Project,
    curation: Curation,
    indices: Sequence[int] | np.ndarray,
    *,
    key: str,
    horizontal: bool = True,
    restore: bool = False,
    disabled: bool = False,
) -> None:
    """Move the given images to an existing or new cluster, exclude them, or (for excluded ones) restore them."""
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
    n_text = "image" if indices.size == 1 else "images"
    try:
        if move_col.button(
            f"Move {indices.size} {n_text}" if indices.size else "Move",
            type="primary",
            icon=":material/arrow_forward:",
            disabled=disabled or none,
            key=f"{key}:move",
            width="stretch",
        ):
            if target == NEW_CLUSTER:
                cid = curation.move_to_new_cluster(indices, new_name.strip() or None)
                edited(
                    project, f"Moved {indices.size} {n_text} to the new cluster '{curation.name_of(cid)}'."
                )
            else:
                moved = curation.move(indices, int(target))
                edited(project, f"Moved {moved} {n_text} to '{curation.name_of(int(target))}'.")
        if restore:
            if exclude_col.button(
                "Restore",
                icon=":material/restore_from_trash:",
                disabled=disabled or none,
                key=f"{key}:restore",
                width="stretch",
            ):
                restored = curation.restore(indices)
                edited(project, f"Restored {restored} {n_text} to their clusters.")
        elif exclude_col.button(
            "Exclude",
            icon=":material/block:",
            disabled=disabled or none,
            key=f"{key}:exclude",
            width="stretch",
        ):
            excluded = curation.exclude(indices)
            edited(project, f"Excluded {excluded} {n_text} from the dataset.")
    except ValueError as error:
        st.error(str(error), icon=":material/warning:")


def preview_image(project: Project, index: int, max_side: int = 640) -> None:
    """One image, larger than a thumbnail (EXIF-rotated, downscaled), or a note when it cannot be read."""
    from turtle_core.ingest.scan import UnusableImage, load_image

    try:
        image = load_image(project.image_path(index))
        image.thumbnail((max_side, max_side))
    except (UnusableImage, OSError) as error:
        st.warning(f"Cannot show this image: {error}")
        return
    st.image(image, width="stretch")


def undo_bar(project: Project, curation: Curation, disabled: bool = False) -> None:
    """Undo / redo buttons, the last edit, and the full history in a popover."""
    history = curation.history()
    undo_col, redo_col, last_col, history_col = st.columns([1, 1, 5, 1.2], vertical_alignment="center")
    if undo_col.button(
        "Undo",
        icon=":material/undo:",
        disabled=disabled or not curation.can_undo,
        width="stretch",
        key="undo",
    ):
        last = history[-1]
        curation.undo()
        edited(project, f"Undone: {last}")
    if redo_col.button(
        "Redo",
        icon=":material/redo:",
        disabled=disabled or not curation.can_redo,
        width="stretch",
        key="redo",
    ):
        curation.redo()
        edited(project, "Redone: " + curation.history()[-1])
    last_col.caption(f"Last edit: {history[-1]}" if history else "No edits yet.")
    with history_col.popover(f"History ({len(history)})", width="stretch"):
        if not history:
            st.caption("No edits yet.")
        for number, line in reversed(list(enumerate(history, 1))):
            st.caption(f"{number}. {line}")
        for line in curation.redo_history():
            st.caption(f"~~{line}~~ (undone)")
