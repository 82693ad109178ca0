"""Background jobs of a project, and the live panels that show their progress."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import streamlit as st

from turtle_core.names import display_name, markdown_text
from turtle_core.workspace.jobs import Job, JobManager, cuda_in_use
from turtle_ui.fmt import fmt_duration, fmt_int

if TYPE_CHECKING:
    from turtle_core.workspace.project import Project

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


@st.cache_resource(show_spinner=False)
def job_manager() -> JobManager:
    """The process-wide registry of background jobs."""
    return JobManager()


def job_key(project: Project, kind: str) -> str:
    return f"{project.folder}::{kind}"


def project_job(project: Project, kind: str) -> Job[Any] | None:
    return job_manager().get(job_key(project, kind))


GPU_KINDS = ("discover", "split")  # jobs that train TURTLE (and embed) queue for a CUDA GPU


def submit_job(project: Project, kind: str, fn: Callable[[Any, Any], Any]) -> Job[Any]:
    """Start a background job of `project`; raises `JobConflict` when a running job of the project
    writes what this one writes (what each kind writes: `turtle_core.workspace.jobs.JOB_WRITES`)."""
    gpu = kind in GPU_KINDS and cuda_in_use()
    return job_manager().submit(kind, fn, key=job_key(project, kind), scope=str(project.folder), gpu=gpu)


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
    text = f"{title}: {markdown_text(detail)} · {fmt_duration(job.elapsed_s)}"
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
                parts.append(markdown_text(progress.message) if progress.message else None)
                st.caption(" · ".join(p for p in parts if p))
            else:
                st.progress(
                    0.0,
                    text=markdown_text(progress.message) if progress and progress.message else "Starting…",
                )
                st.caption(f"elapsed {fmt_duration(job.elapsed_s)}")
            earlier = [STAGE_LABELS.get(r.stage, r.stage.title()) for r in job.log[:-1]]
            if earlier:
                st.caption("Done: " + " → ".join(dict.fromkeys(earlier)))
    elif job.state == "failed" and job.error is not None:
        st.error(f"{title} failed: {markdown_text(job.error.message)}", icon=":material/warning:")
        with st.expander("Technical details"):
            st.code(display_name(job.error.traceback, multiline=True), language="text")
    elif job.state == "cancelled":
        st.warning(
            f"{title} was cancelled after {fmt_duration(job.elapsed_s)}.", icon=":material/stop_circle:"
        )
