"""Fixes that propagate: confirm images as checked, and re-label the unchecked ones from the checked ones.

"Propagate my fixes" computes a proposal in the background (nothing changes yet), says how many images it
would re-label, and applies it as one undoable edit when the curator accepts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from turtle_core.jobs import JobConflict
from turtle_core.state import edits
from turtle_ui import jobs as jobs_ui
from turtle_ui.fmt import fmt_int
from turtle_ui.session import apply_edit

if TYPE_CHECKING:
    from turtle_core.operations.project import Project
    from turtle_core.operations.propagate import RefineProposal
    from turtle_core.state.project_state import Snapshot

JOB_KIND = "refine"


def confirm_button(
    project: Project, snap: Snapshot, indices: Sequence[int] | np.ndarray, *, key: str, disabled: bool = False
) -> None:
    """Mark the ticked images as checked: their labels are right, and refine learns from them."""
    rows = np.asarray(indices, dtype=np.int64)
    if st.button(
        f"Confirm {rows.size}" if rows.size else "Confirm",
        icon=":material/check:",
        help="These labels are right: keep them, and learn from them when propagating fixes.",
        disabled=disabled or rows.size == 0,
        key=f"{key}:confirm",
        width="stretch",
    ):
        apply_edit(
            project,
            edits.Confirm(discovery_id=snap.discovery_id, images=snap.keys(rows)),
            lambda n: f"Confirmed {n} image(s): they keep their labels and teach 'Propagate my fixes'.",
        )


def propagate_panel(project: Project, snap: Snapshot, *, disabled: bool = False) -> None:
    """The "Propagate my fixes" action: proposal in the background, then Apply (one undoable edit) or Discard."""
    n_checked = int(np.asarray(snap.curation.checked).sum())
    job = jobs_ui.project_job(project, JOB_KIND)
    proposal: RefineProposal | None = None
    if job is not None and job.state == "done" and st.session_state.get("refine_dismissed") != job.id:
        proposal = job.result
    with st.container(border=True):
        text, button = st.columns([4, 1], vertical_alignment="center")
        if job is not None and job.running:
            text.caption("Learning from your checked images…")
        elif proposal is not None:
            _proposal_actions(project, snap, job.id, proposal, text, button, disabled)
            return
        else:
            text.markdown(
                f"**Propagate my fixes** · learn from your {fmt_int(n_checked)} checked image(s) (moved or "
                "confirmed) and re-label every unchecked image; you see how many before anything changes."
            )
        if button.button(
            "Propagate my fixes",
            icon=":material/auto_fix_high:",
            disabled=disabled or n_checked == 0 or (job is not None and job.running),
            help=None
            if n_checked
            else "Confirm or move some images first (the review queue is a good start).",
            key="refine:start",
            width="stretch",
        ):
            try:
                jobs_ui.submit_job(project, JOB_KIND, lambda progress, cancel: project.propose_refine(cancel))
            except JobConflict as error:
                st.warning(str(error))
            st.rerun()
    if job is not None and job.running:
        jobs_ui.job_panel(job, "Propagate my fixes", compact=True)
    elif job is not None and job.state == "failed" and job.error is not None:
        jobs_ui.job_panel(job, "Propagate my fixes")


def _proposal_actions(
    project: Project,
    snap: Snapshot,
    job_id: Any,
    proposal: RefineProposal,
    text: Any,
    button: Any,
    disabled: bool,
) -> None:
    stale = proposal.curation_version != snap.curation.version
    text.markdown(
        f"**Propagate my fixes** would re-label **{fmt_int(proposal.n_changed)}** of "
        f"{fmt_int(proposal.n_unchecked)} unchecked images, learned from {fmt_int(proposal.n_checked)} checked ones."
        + (
            " You edited since it was computed: images you checked meanwhile are left as they are."
            if stale
            else ""
        )
    )
    apply_col, discard_col = button.columns(2)
    if apply_col.button("Apply", type="primary", disabled=disabled, key="refine:apply", width="stretch"):
        st.session_state.refine_dismissed = job_id
        apply_edit(
            project,
            proposal.edit,
            lambda moved: f"Propagated your fixes: {moved} image(s) re-labelled (undo restores them).",
        )
    if discard_col.button("Discard", key="refine:discard", width="stretch"):
        st.session_state.refine_dismissed = job_id
        st.rerun()
