"""Fixes that propagate: confirm images as checked, and move unchecked ones where the checked ones show how.

"Propagate my fixes" computes a proposal in the background (nothing changes yet) and shows it as a from →
to table: per pair of clusters, how many images would move and a few of them. A slider narrows it to the
changes the learner is surer of; each row applies on its own, "Apply all shown" applies every row shown;
each click is one undoable edit, and the review queue keeps its order (moved images keep their place). A
proposal belongs to the curation it was computed on: after any other change (here, in another tab or
program, an undo) it says "out of date" and offers to recompute, never to apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from turtle_core.jobs import JobConflict
from turtle_core.names import markdown_text
from turtle_core.state import edits
from turtle_ui import gallery
from turtle_ui import jobs as jobs_ui
from turtle_ui.edits import Pick, on_picked
from turtle_ui.fmt import fmt_count, fmt_int
from turtle_ui.session import apply_chosen_edit

if TYPE_CHECKING:
    from turtle_core.operations.project import Project
    from turtle_core.operations.propagate import ProposedMove, RefineProposal
    from turtle_core.state.project_state import Snapshot

JOB_KIND = "refine"
SAMPLE = 6  # thumbnails per row: the images the learner is surest of


def confirm_button(
    project: Project,
    snap: Snapshot,
    rows: Sequence[int] | np.ndarray,
    pick: Pick,
    *,
    key: str,
    disabled: bool = False,
) -> None:
    """Mark the ticked images (`rows`; `pick()` gives them at the click) as checked: their labels are right,
    and refine learns from them."""
    count = len(rows)
    st.button(
        f"Confirm {count}" if count else "Confirm",
        icon=":material/check:",
        help="These labels are right: keep them, and learn from them when propagating fixes.",
        disabled=disabled or count == 0,
        key=f"{key}:confirm",
        width="stretch",
        on_click=apply_chosen_edit,
        args=(project, on_picked(snap, pick, partial(_confirm, snap.discovery_id))),
    )


def _confirm(discovery_id: str, images: tuple[str, ...]) -> tuple[edits.Edit, Callable[[int], str]]:
    return edits.Confirm(
        discovery_id=discovery_id, images=images
    ), lambda n: f"Confirmed {fmt_count(n, 'image')}: they keep their labels and teach 'Propagate my fixes'."


def propagate_panel(project: Project, snap: Snapshot, *, disabled: bool = False) -> None:
    """The "Propagate my fixes" action: proposal in the background, then its table (or "out of date")."""
    n_checked = int(np.asarray(snap.curation.checked).sum())
    job = jobs_ui.project_job(project, JOB_KIND)
    # One reading of the job for the whole panel: a job that ends while the panel is drawn would otherwise
    # leave "Learning…" on the page with no live panel to redraw it (seen in the browser test).
    running = job is not None and job.running
    proposal: RefineProposal | None = None
    if (
        not running
        and job is not None
        and job.state == "done"
        and st.session_state.get("refine_dismissed") != job.id
    ):
        # What is left of it after rows applied from this session, else the job's own result.
        proposal = st.session_state.get(f"refine_proposal:{job.id}", job.result)
    with st.container(border=True):
        if running:
            st.caption("Learning from your checked images…")
        elif proposal is not None and job is not None:
            if proposal.discovery_id == snap.discovery_id and proposal.state_id == snap.curation.state_id:
                _proposal_table(project, snap, job.id, proposal, disabled)
            else:
                _out_of_date(project, job.id, disabled)
            return
        text, button = st.columns([4, 1], vertical_alignment="center")
        text.markdown(
            f"**Propagate my fixes** · learn from your {fmt_count(n_checked, 'checked image')} (moved or "
            "confirmed) and move the unchecked images they show to be wrong; you see every change before "
            "anything changes."
        )
        if button.button(
            "Propagate my fixes",
            icon=":material/auto_fix_high:",
            disabled=disabled or n_checked == 0 or running,
            help=None
            if n_checked
            else "Confirm or move some images first (the review queue is a good start).",
            key="refine:start",
            width="stretch",
        ):
            _start(project)
    if running:  # the panel draws the page again if the job ended while this run drew it as running
        jobs_ui.job_panel(job, "Propagate my fixes", compact=True)
    elif job is not None and job.state == "failed" and job.error is not None:
        jobs_ui.job_panel(job, "Propagate my fixes")


def _start(project: Project) -> None:
    try:
        jobs_ui.submit_job(project, JOB_KIND, lambda progress, cancel: project.propose_refine(cancel))
    except JobConflict as error:
        st.warning(str(error))
    st.rerun()


def _out_of_date(project: Project, job_id: Any, disabled: bool) -> None:
    text, recompute, discard = st.columns([4, 1, 1], vertical_alignment="center")
    text.markdown(
        "**Propagate my fixes** · the proposal is **out of date — recompute**: the clusters changed after "
        "it was computed (an edit, an undo, another tab or program), so it can no longer be applied."
    )
    if recompute.button("Recompute", type="primary", disabled=disabled, key="refine:start", width="stretch"):
        _start(project)
    if discard.button("Discard", key="refine:discard", width="stretch"):
        st.session_state.refine_dismissed = job_id
        st.rerun()


def _proposal_table(
    project: Project, snap: Snapshot, job_id: Any, proposal: RefineProposal, disabled: bool
) -> None:
    st.markdown(f"**Propagate my fixes** · {_summary(proposal)}")
    if not proposal.moves:
        st.caption(_why_nothing(proposal))
        if st.button("Close", key="refine:discard"):
            st.session_state.refine_dismissed = job_id
            st.rerun()
        return
    floor = proposal.cutoff or 0.0
    at_least = st.slider(
        "Only changes the learner is at least this sure of",
        floor,
        1.0,
        floor,
        0.01,
        key=f"refine:at_least:{job_id}",
        help="The learner's probability of the new cluster. The lowest value is where, on checked images it "
        "was not trained on, its fixes outweighed what it broke.",
    )
    shown = proposal.shown(at_least)
    for move in shown:
        _move_row(project, snap, job_id, proposal, move, at_least, disabled)
    total = sum(move.count(at_least) for move in shown)
    caption, apply_col, discard_col = st.columns([3, 1, 1], vertical_alignment="center")
    caption.caption(
        f"{fmt_count(total, 'image')} in {fmt_count(len(shown), 'row')} at this setting. Each click is one undoable "
        "edit; moved images keep their place in the review queue, so you can check what moved."
    )
    apply_col.button(
        "Apply all shown",
        type="primary",
        disabled=disabled or total == 0,
        key="refine:apply",
        width="stretch",
        on_click=apply_chosen_edit,
        args=(project, partial(_chosen, job_id, proposal, None, at_least)),
    )
    if discard_col.button("Discard", key="refine:discard", width="stretch"):
        st.session_state.refine_dismissed = job_id
        st.rerun()


def _move_row(
    project: Project,
    snap: Snapshot,
    job_id: Any,
    proposal: RefineProposal,
    move: ProposedMove,
    at_least: float,
    disabled: bool,
) -> None:
    curation = snap.curation
    n = move.count(at_least)
    names, strip, action = st.columns([3, 5, 1], vertical_alignment="center")
    names.markdown(
        f"{markdown_text(curation.name_of(move.source))} → **{markdown_text(curation.name_of(move.target))}** "
        f"· {fmt_int(n)}"
    )
    with strip:
        gallery.image_strip(snap, move.rows[: min(n, SAMPLE)], width=48)
    action.button(
        "Apply",
        disabled=disabled,
        key=f"refine:row:{move.source}:{move.target}",
        width="stretch",
        on_click=apply_chosen_edit,
        args=(project, partial(_chosen, job_id, proposal, [move.pair], at_least)),
    )


def _chosen(
    job_id: Any, proposal: RefineProposal, pairs: list[tuple[int, int]] | None, shown_at: float
) -> tuple[edits.Edit, Callable[[Any], str]]:
    """The proposal's edit for `pairs` (None: every row) at the sureness the slider holds at the click."""
    at_least = float(st.session_state.get(f"refine:at_least:{job_id}", shown_at))

    def advance(done: edits.Relabelled) -> str:
        st.session_state[f"refine_proposal:{job_id}"] = proposal.after(done, pairs, at_least)
        return f"Propagated your fixes: {fmt_count(done.moved, 'image')} moved (undo restores them)."

    return proposal.edit(pairs, at_least), advance


def _summary(proposal: RefineProposal) -> str:
    learned = (
        f"learned from {fmt_count(proposal.n_checked, 'checked image')} "
        f"in {fmt_count(proposal.n_learned, 'cluster')}"
    )
    if not proposal.moves:
        return f"nothing to move ({learned})."
    return f"would move **{fmt_int(proposal.n_changed)}** of {fmt_count(proposal.n_unchecked, 'unchecked image')}, {learned}."


def _why_nothing(proposal: RefineProposal) -> str:
    if proposal.n_learned < 2:
        return "Check images in at least two clusters first: the learner needs two to tell apart."
    if proposal.cutoff is None:
        return (
            "On your checked images the learner, trained without them, did not fix clearly more labels than it "
            "broke, so it changes nothing. Check a few more images in each cluster (moving the wrong ones) "
            "and propagate again."
        )
    return "The learner agrees with every unchecked image's cluster."
