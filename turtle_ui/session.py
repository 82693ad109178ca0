"""The open project of this browser session, page links, and one-shot messages."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

if TYPE_CHECKING:
    from turtle_core.operations.project import Project
    from turtle_core.state.curation import Curation
    from turtle_core.state.edits import Edit
    from turtle_core.state.project_state import Snapshot
    from turtle_ui.access import FolderPolicy

PROJECT_PAGE = "pages/project.py"


DISCOVER_PAGE = "pages/discover.py"


MAP_PAGE = "pages/map.py"


CLUSTERS_PAGE = "pages/clusters.py"


EXPORT_PAGE = "pages/export.py"


SESSION_DEFAULTS: dict[str, Any] = {
    "folder": None,  # the open project's image folder (str)
    "flash": None,  # (kind, message) shown once at the top of the next page run
    "edit_nonce": 0,  # bumped after every curation edit: resets selections keyed on it
    "url_folder": None,  # the ?folder= of the URL as last seen, to tell a changed URL from a stale one
    "app_ran": True,  # app.py has run in this session (`through_app`)
}


def init_session() -> None:
    """Set session defaults once per session; open the folder the URL names and keep the URL naming the
    open folder, so a reload, a bookmark or a second tab opens the same project."""
    for key, value in SESSION_DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value
    _follow_url()


def through_app() -> None:
    """Run the calling page inside app.py (session, URL, sidebar, navigation). When the first session of a
    server process opens a page by its URL (a bookmark, or a tab reloaded after a restart: `/map?folder=…`),
    Streamlit runs the page's script on its own, in its pages-folder mode, which lasts until app.py's first
    `st.navigation`: the page said "No project is open yet". Leaving that mode and running again goes
    through app.py, on the same page (the page's URL path names it in both modes)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager  # the mode's switch (Streamlit 1.67)
    except ImportError:  # a Streamlit that keeps it elsewhere: the page runs as it is
        return
    # Only before this session's first run of app.py: AppTest enters that mode again on every run, and a
    # rerun then would lose the run's button clicks.
    state = st.session_state
    in_pages_mode = getattr(PagesManager, "uses_pages_directory", None)
    if in_pages_mode and not state.get("app_ran") and not state.get("through_app_tried"):
        state["through_app_tried"] = True  # never a loop, whatever another Streamlit version does
        PagesManager.uses_pages_directory = False
        st.rerun()


def _url_text(folder: str) -> str:
    from turtle_core.names import escape_name

    return escape_name(folder)  # a URL (like every text we write) carries undecodable bytes as \xNN


def _follow_url() -> None:
    from turtle_core.names import unescape_name

    given = st.query_params.get("folder") or None
    wanted = unescape_name(given) if given else None
    if wanted != st.session_state.url_folder:  # a new session, or the URL was changed by hand
        st.session_state.url_folder = wanted
        if wanted and _normalised(wanted) != st.session_state.folder:
            _open_from_url(wanted)
    folder = st.session_state.folder
    if folder and st.query_params.get("folder") != _url_text(folder):
        st.query_params["folder"] = _url_text(folder)  # page links drop the query string: put it back
        st.session_state.url_folder = folder
    elif not folder and "folder" in st.query_params:
        del st.query_params["folder"]
        st.session_state.url_folder = None


def _open_from_url(folder: str) -> None:
    """The Project page's open path (scan when never scanned), with its messages, for a folder in the URL."""
    from turtle_core.operations.project import ProjectError
    from turtle_ui.access import FolderNotAllowed

    try:
        project = open_folder(folder)
    except (ProjectError, FolderNotAllowed) as error:
        flash("error", f"Could not open {folder} from the link: {error}")
        return
    if project.scan_result is None:
        from turtle_ui import jobs as jobs_ui

        roots = read_roots()
        jobs_ui.submit_job(
            project,
            "scan",
            lambda progress, cancel: project.scan(progress=progress, cancel=cancel, within=roots),
        )


def _normalised(folder: str | os.PathLike[str]) -> str:
    # One folder is one project, however it is named (a symlink, a trailing slash, `~`).
    return os.path.realpath(os.path.expanduser(os.fspath(folder).strip()))


def _open_project_uncached(folder: str) -> Project:
    from turtle_core.operations.project import Project

    return Project.open(folder)


@st.cache_resource(show_spinner=False, max_entries=8)
def _open_project_escaped(folder_text: str) -> Project:
    from turtle_core.names import unescape_name

    return _open_project_uncached(unescape_name(folder_text))


def _open_project(folder: str) -> Project:
    from turtle_core.names import escape_name

    # Streamlit hashes the cache key as UTF-8: a non-UTF-8 folder name goes in escaped.
    return _open_project_escaped(escape_name(folder))


def folder_policy() -> FolderPolicy:
    """The folders this app may open, for the address it is served on (see `turtle_ui.access`)."""
    from turtle_ui.access import folder_policy as policy_for

    return policy_for(st.get_option("server.address"))


def read_roots() -> tuple[Path, ...] | None:
    """The folders the engine may read for this app (None: anywhere); pass as `within=`."""
    return folder_policy().read_roots


@dataclass
class RunChoices:
    """What this visitor chose for their runs on a project: kept in their session, never in the
    project object that every visitor of the folder shares."""

    backbones: list[str]
    checkpoints: dict[str, str] = field(default_factory=dict)
    ray_address: str | None = None


def run_choices(project: Project) -> RunChoices:
    """This session's choices for `project`, first taken from the project's saved settings (checkpoints
    the serving policy refuses are left out)."""
    from turtle_core.names import escape_name

    key = f"run_choices:{escape_name(project.folder)}"
    if key not in st.session_state:
        policy = folder_policy()
        checkpoints = {n: p for n, p in project.checkpoints.items() if policy.permits_checkpoint(p)}
        st.session_state[key] = RunChoices(list(project.backbones), checkpoints)
    return st.session_state[key]


def open_folder(folder: str | os.PathLike[str]) -> Project:
    """Open (or re-use) the project of `folder` and make it this session's project.

    Raises the engine's `ProjectError` with a user-facing message when the folder is unusable, and
    `FolderNotAllowed` when the app is served to others and the folder is not in its allow-list."""
    key = _normalised(folder)
    folder_policy().check(key)
    project = _open_project(key)
    st.session_state.folder = key
    st.session_state.edit_nonce += 1
    st.query_params["folder"] = _url_text(key)
    st.session_state.url_folder = key
    return project


def close_project() -> None:
    st.session_state.folder = None
    st.query_params.pop("folder", None)
    st.session_state.url_folder = None


def current_project() -> Project | None:
    """This session's project, or None when no folder is open (or it cannot be opened any more)."""
    folder = st.session_state.get("folder")
    if not folder:
        return None
    if not folder_policy().permits(folder):
        st.session_state.folder = None
        return None
    try:
        return _open_project(folder)
    except Exception as error:  # the folder vanished or became unreadable since it was opened
        close_project()
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
    for notice in project.take_notices():  # damaged files set aside, a discovery replaced elsewhere
        st.warning(notice, icon=":material/warning:")
        st.session_state.edit_nonce += 1  # selections made on the old state are void
    return project


def require_snapshot(project: Project) -> Snapshot:
    """This run's consistent view of the discovery and curation (read together under the project's
    lock); otherwise a hint to run discovery first, and stop. Read it once per page run."""
    snap = project.snapshot()
    if snap is None:
        st.info(
            "No categories yet: run discovery first to group the images.", icon=":material/travel_explore:"
        )
        st.page_link(DISCOVER_PAGE, label="Discover categories", icon=":material/arrow_forward:")
        st.stop()
    return snap


def require_curation(project: Project) -> Curation:
    """The curation of this run's snapshot (see `require_snapshot`)."""
    return require_snapshot(project).curation


Describe = Callable[[Any], str] | str  # the message of an applied edit, or a function of its result


def apply_edit(project: Project, edit: Edit, describe: Describe) -> None:
    """A widget callback (`on_click=apply_edit, args=(project, edit, describe)`): apply a curation edit through
    `project.apply` (lock, discovery check, save, undo) before the script runs, so that the one run a click
    starts draws the new state; then reset selections and say what happened at the top of the page. A bad
    edit says why; one made on clusters that were recomputed meanwhile changes nothing and says so."""
    from turtle_core.state.errors import StaleEdit

    try:
        result = project.apply(dataclasses.replace(edit, origin=tab_origin()))
    except StaleEdit as error:
        st.session_state.edit_nonce += 1
        flash("warning", str(error))
        return
    except ValueError as error:  # a callback draws nothing: the message shows at the top of the run it starts
        flash("error", str(error))
        return
    st.session_state.edit_nonce += 1
    flash("success", describe(result) if callable(describe) else describe)


def apply_chosen_edit(project: Project, choose: Callable[[], tuple[Edit, Describe] | None]) -> None:
    """A widget callback like `apply_edit` for an edit made from the widgets' values at click time (a name
    typed, a cluster picked, images ticked just before the click): `choose()` gives the edit and its
    description, or None when there is nothing to do."""
    chosen = choose()
    if chosen is not None:
        apply_edit(project, *chosen)


def redraw_for_flash() -> None:
    """Call first in a fragment whose buttons edit. A click there reruns only the fragment, drawn from the
    page's state before the edit and without the edit's message (shown at the top of the page): while a
    message waits, the whole page runs instead."""
    if st.session_state.get("flash"):
        st.rerun()


def tab_origin() -> str:
    """This browser tab's name on the edits it makes ("tab:<id>"), so undo can tell its own edits apart."""
    if "tab_id" not in st.session_state:
        st.session_state.tab_id = uuid.uuid4().hex[:12]
    return f"tab:{st.session_state.tab_id}"


def made_by(origin: str) -> str:
    """Whose edit a step is, in words, from this tab's point of view."""
    if origin == tab_origin():
        return "this tab"
    if origin.startswith("tab:"):
        return "another tab"
    return {"cli": "the command line", "rescan": "a rescan", "discovery": "a new discovery"}.get(
        origin, "another program"
    )


def flash(kind: str, message: str) -> None:
    """Show `message` at the top of the next page run (the one `st.rerun` or a callback's click starts)."""
    st.session_state.flash = (kind, message)


def show_flash() -> None:
    note = st.session_state.get("flash")
    if not note:
        return
    st.session_state.flash = None
    kind, message = note
    from turtle_core.names import markdown_text

    message = markdown_text(message)  # messages quote file and cluster names: shown, never interpreted
    {"success": st.success, "error": st.error, "warning": st.warning}.get(kind, st.info)(message)


def palette_css() -> None:
    """Load the app's small stylesheet (compact galleries, tighter headers)."""
    css = Path(__file__).resolve().parent.parent / "assets" / "app.css"
    if css.is_file():
        st.html(f"<style>{css.read_text()}</style>")
