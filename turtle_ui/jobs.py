"""Background jobs of a project, and the live panels that show their progress."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import streamlit as st

from turtle_core.jobs import Job, JobManager, cuda_in_use
from turtle_core.names import display_name, markdown_text
from turtle_core.progress import Progress
from turtle_ui.fmt import fmt_duration, fmt_eta, fmt_int, fmt_rate, stage_unit

if TYPE_CHECKING:
    from turtle_core.operations.project import Project

# What each engine stage does, in a curator's words.
STAGE_LABELS = {
    "scan": "Looking through the folder's files",
    "embed": "Turning each image into a feature vector (embedding)",
    "turtle": "Training TURTLE",
    "select": "Finding the categories: trying starts, training TURTLE, scoring the results",
    "stability": "Comparing with k-means: which partition is more stable",
    "split": "Finding the parts of the cluster",
    "layout": "Arranging the images on the map",
    "export": "Writing the labeled dataset",
    "thumbnails": "Making thumbnails",
    "finish": "Wrapping up: scoring the result and saving it",
}


@st.cache_resource(show_spinner=False)
def job_manager() -> JobManager:
    """The process-wide registry of background jobs."""
    return JobManager()


def job_key(project: Project, kind: str) -> str:
    return f"{project.folder}::{kind}"


def project_job(project: Project, kind: str) -> Job[Any] | None:
    return job_manager().get(job_key(project, kind))


def forget_job(project: Project, kind: str) -> None:
    """Drop the project's finished job of `kind` (a running one is kept), so the page can start it again."""
    job_manager().forget(job_key(project, kind))


GPU_KINDS = ("discover", "split")  # jobs that train TURTLE (and embed) queue for a CUDA GPU


def submit_job(project: Project, kind: str, fn: Callable[[Any, Any], Any]) -> Job[Any]:
    """Start a background job of `project`; raises `JobConflict` when a running job of the project
    writes what this one writes (what each kind writes: `turtle_core.jobs.JOB_WRITES`)."""
    gpu = kind in GPU_KINDS and cuda_in_use()
    job = job_manager().submit(kind, fn, key=job_key(project, kind), scope=str(project.folder), gpu=gpu)
    _watched().add(job.id)
    return job


def submit_map_job(project: Project) -> Job[Any]:
    """Start the map's UMAP layout of the project's discovery in the background (cached when done)."""
    return submit_job(
        project, "umap", lambda progress, cancel: project.layout("umap", progress=progress, cancel=cancel)
    )


SPEED_PROBE_KEY = "machine::speed-probe"


def speed_probe(wait_s: float = 0.0) -> Job[Any] | None:
    """Measure this machine's speed once, in the background, before a first estimate needs it
    (`discovery.speed_probe`; nothing to do once a discovery or a probe measured it); with `wait_s`, wait up
    to that long for a probe that is running. The probe's job, or None when none was needed."""
    from turtle_core.discovery.estimate import speed_unknown

    job = job_manager().get(SPEED_PROBE_KEY)
    if job is None:
        if not speed_unknown():
            return None

        def probe(progress: Any, cancel: Any) -> float | None:
            from turtle_core.discovery.speed_probe import measure_cpu_speed

            return measure_cpu_speed(cancel)

        job = job_manager().submit("speed-probe", probe, key=SPEED_PROBE_KEY)
    if wait_s > 0 and job.running:
        job.wait(wait_s)
    return job


def rerun_when_done(job: Job[Any]) -> None:
    """Draw the whole page again once `job` ends, for a page that shows something the job measures without a
    panel of its own: a fragment checks once a second, alone in its container (see `job_panel`)."""
    if not job.running:
        return

    def check() -> None:
        if not job.running:
            st.rerun()

    with st.container():
        st.fragment(check, run_every=1.0)()


def _watched() -> set[int]:
    if "jobs_watched" not in st.session_state:
        st.session_state.jobs_watched = set()
    return st.session_state.jobs_watched


def finished_news(job: Job[Any] | None) -> bool:
    """True once, in this browser session, for a job that ended while the session was watching it (it
    started it or saw it running). A reload or a second tab starts a new session: an earlier job's outcome
    is not news there, so messages such as "Split into 3 clusters." do not come back on every reopen."""
    if job is None:
        return False
    watched = _watched()
    if job.running:
        watched.add(job.id)
        return False
    if job.id in watched:
        watched.discard(job.id)
        return True
    return False


def busy_jobs(project: Project, kinds: Sequence[str] = ("scan", "discover", "split")) -> list[Job[Any]]:
    """Running jobs of this project that change its images or clusters."""
    jobs = (project_job(project, kind) for kind in kinds)
    return [job for job in jobs if job is not None and job.running]


def busy_notice(project: Project, *, show_split: bool = True) -> bool:
    """While discovery rewrites the clusters: say so, show its progress (the page reruns when it ends),
    and return True so the page disables its edits. A running split does not block editing (it applies
    to the cluster as it is when the split ends); with `show_split` it gets a one-line note here."""
    discovering = busy_jobs(project, ("discover",))
    if discovering:
        st.warning(
            "The clusters are being recomputed; editing is paused until it finishes.",
            icon=":material/hourglass_top:",
        )
        for job in discovering:
            job_panel(job, "Discovery", compact=True)
    splitting = busy_jobs(project, ("split",))
    if splitting and show_split:
        for job in splitting:
            finished_news(job)  # this session watches it: its outcome is announced here
            job_panel(job, "Split", compact=True)
    return bool(discovering)


RUN_STARTED = "jobs:run_started"


def mark_run_start() -> None:
    """Note when this script run began (app.py, every full run): `job_panel` draws the page again when a job
    ended after that, since the page may have drawn it as running before it ended."""
    st.session_state[RUN_STARTED] = time.time()


def job_panel(
    job: Job[Any] | None, title: str, *, cancel_label: str = "Cancel", compact: bool = False
) -> None:
    """Live status of a background job, redrawn every second while it runs (the rest of the page stays
    responsive); when it finishes, the whole app reruns once so the page shows the result, also when it
    finished during this run, after the page above read it as running. `compact`: a single progress line
    without a cancel button, for narrow columns."""
    if job is None:
        return
    if not job.running:
        run_started = st.session_state.get(RUN_STARTED)
        # Only a job that was already running when this run began: one started and finished within this run
        # (a quick job a page starts on every run) would have the page drawn again and again.
        if run_started is not None and job.finished is not None and job.started < run_started <= job.finished:
            st.rerun()
        _draw_job(job, title, cancel_label)
        return

    def draw() -> None:
        if not job.running:
            st.rerun()
        if compact:
            _draw_job_line(job, title)
        else:
            _draw_job(job, title, cancel_label)

    # Once a second: each fragment run takes the GIL from the job's thread (TURTLE's many small torch steps
    # ran 1.4x slower in the browser than in the engine with twice-a-second reruns).
    # Two guards against Streamlit 1.67 dropping the element after a polling fragment. On a busy
    # server the browser's reruns of the fragment pile up and can run right after the full
    # rerun that follows the job; the full run's delta for the fragment's block is then discarded
    # unsent, the browser drops the old block as stale (shifting its siblings up) and the late
    # fragment run writes its block over the next sibling (seen: "Exported N images" vanished).
    # So the fragment lives alone in its own container, and once the job is over there is no
    # fragment for late reruns to find.
    with st.container():
        st.fragment(draw, run_every=1.0)()


def _detail(title: str, message: str) -> str:
    """The progress message without a repeated title ("UMAP: UMAP: loading…" reads "UMAP: loading…")."""
    message = message.strip()
    prefix = f"{title}:"
    return message[len(prefix) :].strip() if message.lower().startswith(prefix.lower()) else message


def progress_caption(progress: Progress, elapsed_s: float) -> str:
    """Rate in the stage's own unit · time left (never "0 s" while work remains) · elapsed · message."""
    parts = []
    if progress.total:
        parts.append(fmt_rate(progress.rate, stage_unit(progress)))
        parts.append(fmt_eta(progress))
    parts.append(f"elapsed {fmt_duration(elapsed_s)}")
    parts.append(progress.message)
    return " · ".join(p for p in parts if p)


def _draw_job_line(job: Job[Any], title: str) -> None:
    progress = job.progress
    detail = _detail(title, progress.message) if progress and progress.message else "starting"
    if progress is not None and progress.total and not progress.remaining:
        detail = f"{detail} · finishing…"
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
                counts = f"{fmt_int(progress.done)} / {fmt_int(progress.total)} {stage_unit(progress)}"
                st.progress(progress.fraction, text=counts)
            else:  # an uncounted stage: wrapping up shows a full bar, anything else an empty one
                wrapping_up = progress is not None and progress.stage == "finish"
                st.progress(
                    1.0 if wrapping_up else 0.0,
                    text=markdown_text(progress.message) if progress and progress.message else "Starting…",
                )
            # Messages quote file and cluster names: shown as written, never interpreted.
            st.caption(markdown_text(progress_caption(progress, job.elapsed_s)) if progress else "")
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
