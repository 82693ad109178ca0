"""JobManager with real worker threads: success, failure, cancellation, progress, one job per key."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from turtle_core.jobs import JOB_NICENESS, JobManager
from turtle_core.progress import Progress, check_cancel

TIMEOUT = 10.0


def test_success_keeps_result_and_times() -> None:
    manager = JobManager()
    job = manager.submit("sum", lambda progress, cancel: sum(range(10)), key="p1")
    assert job.wait(TIMEOUT)
    assert job.state == "done"
    assert job.result == 45
    assert job.error is None
    assert job.finished is not None and job.finished >= job.started
    assert manager.get("p1") is job


def test_failure_is_captured_with_message_and_traceback() -> None:
    def boom(progress, cancel):
        raise ValueError("folder has no images")

    job = JobManager().submit("scan", boom, key="p1")
    assert job.wait(TIMEOUT)
    assert job.state == "failed"
    assert job.result is None
    assert job.error is not None
    assert job.error.message == "folder has no images"
    assert "ValueError" in job.error.traceback and "boom" in job.error.traceback


def test_cancel_stops_a_cooperating_worker() -> None:
    started = threading.Event()

    def loop(progress, cancel):
        started.set()
        while True:
            check_cancel(cancel)
            cancel.wait(0.01)

    job = JobManager().submit("embed", loop, key="p1")
    assert started.wait(TIMEOUT)
    assert job.state == "running"
    job.cancel()
    assert job.cancel_requested
    assert job.wait(TIMEOUT)
    assert job.state == "cancelled"
    assert job.error is None


def test_progress_updates_are_visible_while_running_and_logged_per_stage() -> None:
    step = threading.Event()
    seen = threading.Event()

    def work(progress, cancel):
        progress(Progress("scan", 1, 4))
        seen.set()
        step.wait(TIMEOUT)
        progress(Progress("scan", 4, 4))
        progress(Progress("embed", 2, 10, rate=5.0, eta_s=1.6))
        return "ok"

    job = JobManager().submit("discover", work, key="p1")
    assert seen.wait(TIMEOUT)
    assert job.state == "running"
    assert job.progress == Progress("scan", 1, 4)
    step.set()
    assert job.wait(TIMEOUT)
    assert job.progress is not None and job.progress.stage == "embed" and job.progress.done == 2
    assert [record.stage for record in job.log] == ["scan", "embed"]
    assert job.log[0].latest.done == 4


def test_one_running_job_per_key() -> None:
    manager = JobManager()
    release = threading.Event()
    calls: list[str] = []

    def slow(progress, cancel):
        calls.append("slow")
        release.wait(TIMEOUT)
        return 1

    first = manager.submit("discover", slow, key="p1")
    second = manager.submit("discover", lambda p, c: calls.append("fast"), key="p1")
    other = manager.submit("discover", lambda p, c: 2, key="p2")
    assert second is first
    assert other is not first
    assert other.wait(TIMEOUT) and other.result == 2
    assert [job.id for job in manager.running()] == [first.id]
    release.set()
    assert first.wait(TIMEOUT)
    assert calls == ["slow"]
    # Once finished, the key accepts a new job.
    third = manager.submit("discover", lambda p, c: 3, key="p1")
    assert third is not first and third.wait(TIMEOUT) and third.result == 3
    assert manager.get("p1") is third


def test_forget_drops_finished_jobs_only() -> None:
    manager = JobManager()
    release = threading.Event()
    running = manager.submit("x", lambda p, c: release.wait(TIMEOUT), key="busy")
    done = manager.submit("x", lambda p, c: None, key="idle")
    assert done.wait(TIMEOUT)
    manager.forget("idle")
    manager.forget("busy")
    assert manager.get("idle") is None
    assert manager.get("busy") is running
    release.set()
    assert running.wait(TIMEOUT)


@pytest.mark.parametrize("n_jobs", [8])
def test_cancel_all_stops_every_running_job(n_jobs: int) -> None:
    manager = JobManager()

    def loop(progress, cancel):
        while True:
            check_cancel(cancel)
            cancel.wait(0.01)

    jobs = [manager.submit("loop", loop, key=f"k{i}") for i in range(n_jobs)]
    manager.cancel_all()
    assert all(job.wait(TIMEOUT) for job in jobs)
    assert {job.state for job in jobs} == {"cancelled"}
    assert manager.running() == []


def test_conflicting_jobs_of_one_project_are_refused_others_run() -> None:
    """A split while a discovery runs (both write the curation), or two discoveries, is refused."""
    from turtle_core.jobs import JobConflict

    manager = JobManager()
    release = threading.Event()
    discovery = manager.submit("discover", lambda p, c: release.wait(TIMEOUT), key="A::discover", scope="A")
    with pytest.raises(JobConflict, match="discover is running"):
        manager.submit("split", lambda p, c: 1, key="A::split", scope="A")
    with pytest.raises(JobConflict):
        manager.submit("scan", lambda p, c: 1, key="A::scan", scope="A")
    assert manager.submit("discover", lambda p, c: 2, key="A::discover", scope="A") is discovery
    other = manager.submit("split", lambda p, c: 3, key="B::split", scope="B")  # another project
    layout = manager.submit("umap", lambda p, c: 4, key="A::umap", scope="A")  # writes nothing
    assert other.wait(TIMEOUT) and other.result == 3
    assert layout.wait(TIMEOUT) and layout.result == 4
    release.set()
    assert discovery.wait(TIMEOUT)
    split = manager.submit("split", lambda p, c: 5, key="A::split", scope="A")
    assert split.wait(TIMEOUT) and split.result == 5


def test_gpu_jobs_queue_one_at_a_time() -> None:
    manager = JobManager()
    release = threading.Event()
    first = manager.submit(
        "discover", lambda p, c: release.wait(TIMEOUT), key="A::discover", scope="A", gpu=True
    )
    second = manager.submit("discover", lambda p, c: "ran", key="B::discover", scope="B", gpu=True)
    for _ in range(1000):
        if second.progress is not None:
            break
        threading.Event().wait(0.01)
    assert second.running and second.progress.stage == "queued" and second.result is None
    release.set()
    assert first.wait(TIMEOUT) and second.wait(TIMEOUT)
    assert second.result == "ran"


@pytest.mark.skipif(sys.platform != "linux", reason="niceness per thread is Linux's")
def test_a_job_runs_below_the_pages_priority_and_so_do_the_threads_it_starts() -> None:
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def job_and_its_thread(progress, cancel) -> tuple[int, int]:
        seen: list[int] = []
        child = threading.Thread(target=lambda: seen.append(niceness()))
        child.start()
        child.join()
        return niceness(), seen[0]

    page = niceness()
    job = JobManager().submit("discover", job_and_its_thread, key="p1")
    assert job.wait(TIMEOUT) and job.state == "done"
    expected = min(19, page + JOB_NICENESS)
    assert job.result == (expected, expected)
    assert niceness() == page  # the caller's own priority is untouched
