"""A new discovery on a curated project: run it without replacing edits the curator never saw, and when the
curation changed while it ran, offer the held-back result instead of losing it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import streamlit as st

from turtle_core.progress import ProgressCallback
from turtle_core.state.errors import CurationChanged
from turtle_ui import session

if TYPE_CHECKING:
    from turtle_core.jobs import Job
    from turtle_core.operations.project import Project


def discovery_or_hold(
    project: Project,
    request: int | tuple[int, int],
    progress: ProgressCallback,
    cancel: threading.Event,
    *,
    replaceable: str | None,
    **options: Any,
) -> Any:
    """The discover job: `run_discovery`, which never replaces a curation other than the one the curator
    agreed to replace (`replaceable`); when the curation changed meanwhile, the job's result is the
    `CurationChanged` holding the new discovery, for `held_back` to offer."""
    try:
        return project.run_discovery(
            request, progress=progress, cancel=cancel, replaceable=replaceable, **options
        )
    except CurationChanged as held:
        return held


def held_back(project: Project, job: Job | None) -> None:
    """When the last discovery was held back, say why and let the curator install it or keep their clusters."""
    if job is None or job.running or not isinstance(job.result, CurationChanged):
        return
    if st.session_state.get("held_back_done") == job.id:
        return
    held: CurationChanged = job.result
    with st.container(border=True):
        st.warning(str(held), icon=":material/sync_problem:")
        use, keep = st.columns(2)
        if use.button(
            "Use the new clusters anyway (names and checked images carry over)",
            key="held_back:use",
            width="stretch",
        ):
            st.session_state.held_back_done = job.id
            project.install_discovery(held.discovery)
            session.flash(
                "success", "The new discovery is installed; your curation is kept among the earlier ones."
            )
            st.rerun()
        if keep.button("Keep my current clusters", key="held_back:keep", width="stretch"):
            st.session_state.held_back_done = job.id
            st.rerun()
