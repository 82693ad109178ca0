"""Background jobs: run long engine steps in worker threads, report progress, cancel, keep the result.

Workers never touch the UI; the UI polls `Job` snapshots (e.g. from a Streamlit fragment).

Each job declares what it writes (`writes`: e.g. "scan", "discovery", "curation") within a `scope`
(a project), and whether it uses the GPU. The manager refuses (`JobConflict`) a job that would write
what a running job of the same scope writes (a split while a discovery runs; two discoveries), and
queues a job that needs the GPU while another holds it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from turtle_core.progress import Cancelled, Progress, ProgressCallback

T = TypeVar("T")
JobState = Literal["running", "done", "failed", "cancelled"]
JobFn = Callable[[ProgressCallback, threading.Event], T]

_ids = itertools.count(1)
# Clusters' rerun at 100,000 images beside the map's UMAP, 2 cores: 0.79 s with the job at niceness 0, 0.48 s at 10
JOB_NICENESS = 10

# What the engine's jobs write; the UI and the CLI pass these to `JobManager.submit`.
JOB_WRITES: dict[str, frozenset[str]] = {
    "scan": frozenset({"scan"}),
    "discover": frozenset({"scan", "discovery", "curation"}),
    "update": frozenset({"scan", "discovery", "curation"}),
    "import": frozenset({"scan", "discovery", "curation"}),  # a folder without clusters is discovered first
    "split": frozenset({"curation"}),
    "umap": frozenset(),
    "export": frozenset(),
    "classifier": frozenset(),
    "duplicates": frozenset(),  # the neighbour graph is a cache file of its own
    "names": frozenset(),
}


class JobConflict(RuntimeError):
    """A job was refused because a running job of the same project writes the same state."""


def cuda_in_use() -> bool:
    """Whether engine work runs on a CUDA GPU here (jobs that train or embed then queue for it)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def _yield_to_pages() -> None:
    """Lower the calling job thread's CPU priority, so that the page a curator is looking at reruns at
    once while a discovery, a map or a propagation runs. On Linux niceness belongs to each thread, and the
    threads a job starts (OpenMP, numba) inherit it; elsewhere the call would name a process, so it is
    left alone."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(
            os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + JOB_NICENESS)
        )


@dataclass(frozen=True)
class JobError:
    """Why a job failed: a one-line message for people and the full traceback for bug reports."""

    message: str
    traceback: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class StageRecord:
    """One stage a job went through: when it began and its latest progress."""

    stage: str
    started: float
    latest: Progress


class Job(Generic[T]):
    """A function running in a worker thread; all public attributes are safe to read from any thread."""

    def __init__(
        self,
        kind: str,
        key: str,
        fn: JobFn[T],
        *,
        scope: str | None = None,
        writes: Collection[str] = (),
        gpu: threading.Semaphore | None = None,
    ) -> None:
        self.id: int = next(_ids)
        self.kind = kind
        self.key = key
        self.scope = scope
        self.writes = frozenset(writes)
        self._gpu = gpu
        self.state: JobState = "running"
        self.progress: Progress | None = None
        self.result: T | None = None
        self.error: JobError | None = None
        self.started: float = time.time()
        self.finished: float | None = None
        self._fn = fn
        self._log: list[StageRecord] = []
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{kind}-{self.id}", daemon=True)

    @property
    def log(self) -> list[StageRecord]:
        """Stages seen so far, in order, each with its latest progress."""
        with self._lock:
            return list(self._log)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.time()) - self.started

    def cancel(self) -> None:
        """Ask the worker to stop at its next cancellation check."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (any final state); False on timeout."""
        return self._done.wait(timeout)

    def _report(self, progress: Progress) -> None:
        with self._lock:
            self.progress = progress
            if self._log and self._log[-1].stage == progress.stage:
                self._log[-1] = StageRecord(progress.stage, self._log[-1].started, progress)
            else:
                self._log.append(StageRecord(progress.stage, time.time(), progress))

    def _run(self) -> None:
        _yield_to_pages()
        try:
            if self._gpu is not None:
                self._wait_for_gpu(self._gpu)
            try:
                result = self._fn(self._report, self._cancel)
            finally:
                if self._gpu is not None:
                    self._gpu.release()
        except Cancelled:
            self._finish("cancelled")
        except BaseException as exc:  # noqa: BLE001 - any failure is reported to the user, never lost
            message = str(exc) or type(exc).__name__
            self.error = JobError(message, traceback.format_exc())
            self._finish("failed")
        else:
            self.result = result
            self._finish("done")

    def _wait_for_gpu(self, gpu: threading.Semaphore) -> None:
        if gpu.acquire(blocking=False):
            return
        self._report(Progress("queued", 0, 0, message="waiting for the GPU (another job is using it)"))
        while not gpu.acquire(timeout=0.1):
            if self._cancel.is_set():
                raise Cancelled()

    def _finish(self, state: JobState) -> None:
        self.finished = time.time()
        self.state = state
        self._done.set()

    def __repr__(self) -> str:
        return f"Job(id={self.id}, kind={self.kind!r}, key={self.key!r}, state={self.state!r})"


class JobManager:
    """Registry of background jobs: at most one running job per key; the latest job per key is kept;
    no two running jobs of one scope write the same thing; one job at a time on the GPU."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job[Any]] = {}
        self._lock = threading.Lock()
        self._gpu = threading.Semaphore(1)

    def submit(
        self,
        kind: str,
        fn: JobFn[T],
        *,
        key: str,
        scope: str | None = None,
        writes: Collection[str] | None = None,
        gpu: bool = False,
    ) -> Job[T]:
        """Start `fn(progress, cancel)` in a worker thread, unless a job with `key` is still running
        (then that job is returned and `fn` is not started).

        `writes` (default: `JOB_WRITES[kind]`, else nothing) names the state the job changes in
        `scope`; a running job of the same scope that writes any of it makes this raise
        `JobConflict`. With `gpu`, the job waits (reporting a "queued" stage) while another holds it."""
        declared = frozenset(JOB_WRITES.get(kind, ()) if writes is None else writes)
        with self._lock:
            current = self._jobs.get(key)
            if current is not None and current.running:
                return current
            if scope is not None and declared:
                for other in self._jobs.values():
                    if other.running and other.scope == scope and other.writes & declared:
                        shared = ", ".join(sorted(other.writes & declared))
                        raise JobConflict(
                            f"A {other.kind} is running on this project and also changes its {shared}; "
                            f"wait for it to finish (or cancel it) before starting a {kind}."
                        )
            job: Job[T] = Job(kind, key, fn, scope=scope, writes=declared, gpu=self._gpu if gpu else None)
            self._jobs[key] = job
        job._thread.start()
        return job

    def get(self, key: str) -> Job[Any] | None:
        """The running or most recent job for `key`."""
        with self._lock:
            return self._jobs.get(key)

    def forget(self, key: str) -> None:
        """Drop a finished job so the UI stops showing it; a running job is kept."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not job.running:
                del self._jobs[key]

    def running(self) -> list[Job[Any]]:
        with self._lock:
            return [job for job in self._jobs.values() if job.running]

    def cancel_all(self) -> None:
        for job in self.running():
            job.cancel()
