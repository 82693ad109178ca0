"""The job panel and a page that read a job at different moments of one script run."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _page_that_reads_the_job_then_draws_its_panel() -> None:
    import threading

    import streamlit as st

    from turtle_core.jobs import JobManager
    from turtle_ui import jobs as jobs_ui

    jobs_ui.mark_run_start()
    st.session_state.runs = st.session_state.get("runs", 0) + 1
    if "job" not in st.session_state:  # the first run starts the job; it runs on into the next runs
        release = threading.Event()
        st.session_state.release = release
        st.session_state.job = JobManager().submit(
            "demo", lambda report, cancel: release.wait(10) and 42, key="k"
        )
        st.markdown("Started")
        return
    job = st.session_state.job
    st.markdown("Working…" if job.running else f"Result: {job.result}")  # the page reads the job once
    st.session_state.release.set()  # the job ends while the page is drawn
    job.wait(10)
    jobs_ui.job_panel(job, "Demo")


def test_a_job_that_ends_while_the_page_is_drawn_has_the_page_drawn_again() -> None:
    at = AppTest.from_function(_page_that_reads_the_job_then_draws_its_panel).run(timeout=30)
    at.run(timeout=30)  # reads the job as running, which ends before its panel is drawn
    assert not at.exception
    assert at.session_state.runs == 3  # the panel saw the job end during that run and drew the page again
    shown = [element.value for element in at.markdown]
    assert "Result: 42" in shown and "Working…" not in shown
