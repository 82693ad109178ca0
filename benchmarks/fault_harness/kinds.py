"""The fault kinds. Each run restores the sandbox, injects one fault, lets the next user open the project
(`worker.py check`: reopen, every page of the real app, one export) and counts what the campaign reports:
whether the project reopened, acknowledged edits lost, files touched outside the engine's home and the
export, and crashes shown to the user (exceptions on a page, a step that died of something other than
the kill, an export that failed afterwards)."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.fault_harness.sandbox import (
    REPO,
    Sandbox,
    damage,
    damageable_files,
    outside_state,
    restore,
    spec_for,
    touched,
)
from benchmarks.fault_harness.worker import holds

WORKER = [sys.executable, "-m", "benchmarks.fault_harness.worker"]
STEP_TIMEOUT_S = 1800


@dataclass
class RunOutcome:
    """What one run of a fault found."""

    kind: str
    detail: str
    reopened: bool = False
    acknowledged: int = 0  # edits the engine acknowledged before the fault
    edits_lost: int = 0  # acknowledged edits (and the baseline's) missing afterwards
    in_flight: int = 0  # 1 when the fault struck while an edit or step was running
    touched: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Step:
    """A worker process: its exit status, output, and whether it was killed."""

    returncode: int
    stdout: str
    stderr: str
    killed: bool
    seconds: float  # from "ready" (the project open) to the end
    ready_at: float  # wall-clock time of "ready"


def runs_dir(sandbox: Sandbox) -> Path:
    path = sandbox.root.with_name(sandbox.root.name + ".runs")
    path.mkdir(exist_ok=True)
    return path


def run_step(sandbox: Sandbox, op: str, spec: dict[str, Any], kill_after: float | None = None) -> Step:
    """Run worker step `op`; with `kill_after`, SIGKILL it that many seconds after it said "ready"."""
    with tempfile.TemporaryFile(mode="w+") as errors:
        started = time.monotonic()
        process = subprocess.Popen(
            [*WORKER, op, json.dumps(spec)],
            cwd=REPO,
            env=sandbox.env(),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        lines: list[str] = []
        ready = threading.Event()
        ready_at = [started]
        ready_wall = [time.time()]

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if line.strip() == "ready":
                    ready_at[0], ready_wall[0] = time.monotonic(), time.time()
                    ready.set()
            ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        killed = False
        if kill_after is not None and ready.wait(STEP_TIMEOUT_S) and process.poll() is None:
            time.sleep(kill_after)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed = True
        try:
            process.wait(timeout=STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(30)
        errors.seek(0)
        stderr = errors.read()
    return Step(
        process.returncode, "".join(lines), stderr, killed, time.monotonic() - ready_at[0], ready_wall[0]
    )


def step_crash(step: Step, name: str) -> list[str]:
    """A step that ended by itself with status 1 crashed (2 is a message the engine gives the user)."""
    if step.killed or step.returncode in (0, 2):
        return []
    tail = step.stderr.strip().splitlines()[-1:] or [f"exit {step.returncode}"]
    return [f"{name}: {tail[0]}"]


def acknowledged(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def assess(
    sandbox: Sandbox,
    outcome: RunOutcome,
    before: dict[str, Any],
    must_hold: list[dict[str, Any]],
    *,
    new_discovery_allowed: bool = False,
    pages: bool = True,
) -> RunOutcome:
    """Open the project as the next user would and fill in `outcome`."""
    check = run_step(sandbox, "check", spec_for(sandbox, pages=pages))
    if check.returncode != 0:
        outcome.crashes += [f"reopening: {(check.stderr.strip().splitlines() or ['?'])[-1]}"]
        outcome.touched = touched(before, outside_state(sandbox))
        return outcome
    report = json.loads(check.stdout.strip().splitlines()[-1])
    outcome.reopened = True  # opened, its state read, its pages drawn (a lost discovery is said so)
    outcome.notices = report["notices"]
    replaced = report["discovery_id"] != sandbox.baseline()["discovery_id"]
    if not (replaced and new_discovery_allowed):  # a finished rediscovery replaces edits as asked
        outcome.edits_lost = sum(not holds(report, edit) for edit in must_hold)
    outcome.crashes += report["page_errors"]
    if report["export_error"]:
        outcome.crashes.append(f"export afterwards: {report['export_error']}")
    outcome.touched = touched(before, outside_state(sandbox))
    return outcome


def edit_plan(sandbox: Sandbox, n: int, offset: int = 0, stride: int = 1) -> list[dict[str, Any]]:
    """`n` edits on distinct images of the baseline's pool: moves to the other kept cluster and exclusions."""
    pool = sandbox.baseline()["pool"][offset::stride][:n]
    return [
        {"kind": "move", "path": item["path"], "to": item["other"]}
        if i % 2 == 0
        else {"kind": "exclude", "path": item["path"]}
        for i, item in enumerate(pool)
    ]


# ------------------------------------------------------------------ kill -9
KILLED_STEPS = ("edits", "discover", "split", "refine", "export", "rescan")


def calibrate(sandbox: Sandbox, op: str) -> float:
    """Seconds the step's work takes when nothing kills it: from "ready" to its last acknowledgement
    (the process's own exit after it is no target)."""
    restore(sandbox)
    ack = runs_dir(sandbox) / "calibrate.ack"
    step = run_step(sandbox, op, _step_spec(sandbox, op, ack))
    if step.returncode not in (0, 2):
        raise RuntimeError(f"step {op} fails without a fault:\n{step.stderr[-3000:]}")
    worked = ack.stat().st_mtime - step.ready_at if ack.exists() else step.seconds
    return max(0.2, worked)


def _step_spec(sandbox: Sandbox, op: str, ack: Path) -> dict[str, Any]:
    ack.unlink(missing_ok=True)
    spec = spec_for(sandbox, ack=str(ack), split=sandbox.baseline()["split"])
    if op == "edits":
        spec.update(edits=edit_plan(sandbox, 10), pause=0.05)
    return spec


def kill_run(sandbox: Sandbox, op: str, duration: float, rng: random.Random) -> RunOutcome:
    restore(sandbox)
    before = outside_state(sandbox)
    ack = runs_dir(sandbox) / f"{op}.ack"
    spec = _step_spec(sandbox, op, ack)
    delay = rng.uniform(0.0, duration)
    step = run_step(sandbox, op, spec, kill_after=delay)
    done = acknowledged(ack)
    prior = sandbox.baseline()["prior"]
    outcome = RunOutcome(f"kill -9 during {op}", f"killed {delay:.2f} s in" if step.killed else "finished")
    outcome.crashes += step_crash(step, op)
    if op == "edits":
        acked = [spec["edits"][int(i)] for i in done]
        outcome.acknowledged = len(acked)
        outcome.in_flight = int(step.killed and len(acked) < len(spec["edits"]))
        return assess(sandbox, outcome, before, prior + acked)
    outcome.in_flight = int(step.killed and not done)
    return assess(sandbox, outcome, before, prior, new_discovery_allowed=op == "discover")


# ------------------------------------------------------------------ damaged files
def damage_runs(sandbox: Sandbox, how: str) -> Iterator[RunOutcome]:
    restore(sandbox)
    targets = [(what, path.relative_to(sandbox.root)) for what, path in damageable_files(sandbox)]
    for what, relative in targets:
        restore(sandbox)
        before = outside_state(sandbox)
        damage(sandbox.root / relative, how)
        outcome = RunOutcome(f"{how} a workspace or cache file", what)
        yield assess(sandbox, outcome, before, sandbox.baseline()["prior"])


# ------------------------------------------------------------------ disk full
@contextlib.contextmanager
def full_workspace(sandbox: Sandbox) -> Iterator[str]:
    """The workspace on a tiny file system left with almost no room ("tmpfs"), or, where nothing can be
    mounted, every fsync of the save failing with ENOSPC ("injected")."""
    work = sandbox.workspace()
    aside = work.with_name(work.name + ".aside")
    shutil.copytree(work, aside, symlinks=True)
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(work)], capture_output=True
        ).returncode
        == 0
    )
    try:
        if mounted:
            shutil.copytree(aside, work, symlinks=True, dirs_exist_ok=True)
            # Each save replaces the previous save's copy, which frees as much as it writes: without one to
            # free, the next save finds the disk full.
            (work / "curation.previous.npz").unlink(missing_ok=True)
            with contextlib.suppress(OSError), open(work / "filler", "wb") as filler:
                while True:
                    filler.write(b"\0" * 4096)
                    filler.flush()
        yield "tmpfs" if mounted else "injected"
    finally:
        if mounted:
            (work / "filler").unlink(missing_ok=True)
            kept = work.with_name(work.name + ".kept")
            shutil.copytree(work, kept, symlinks=True)
            subprocess.run(["umount", str(work)], check=True)
            shutil.rmtree(work)
            kept.rename(work)
        shutil.rmtree(aside)


def disk_full_run(sandbox: Sandbox, rng: random.Random) -> RunOutcome:
    restore(sandbox)
    before = outside_state(sandbox)
    ack = runs_dir(sandbox) / "full.ack"
    ack.unlink(missing_ok=True)
    edits = edit_plan(sandbox, 3, offset=rng.randrange(4))
    with full_workspace(sandbox) as how:
        spec = spec_for(sandbox, ack=str(ack), edits=edits, enospc=how == "injected")
        step = run_step(sandbox, "edits", spec)
        leftovers = [p.name for p in sandbox.workspace().glob(".*.tmp")]
    outcome = RunOutcome("disk full during a save", how)
    outcome.crashes += step_crash(step, "save")
    outcome.crashes += [f"temp file left: {name}" for name in leftovers]
    acked = [edits[int(i)] for i in acknowledged(ack)]
    outcome.acknowledged = len(acked)
    outcome.in_flight = int(step.returncode == 2)  # the refused save is the edit in flight
    return assess(sandbox, outcome, before, sandbox.baseline()["prior"] + acked)


# ------------------------------------------------------------------ two apps and the CLI at once
def _cli(sandbox: Sandbox, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "turtle_core", *args],
        cwd=REPO,
        env=sandbox.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def concurrent_run(sandbox: Sandbox, rng: random.Random) -> RunOutcome:
    restore(sandbox)
    before = outside_state(sandbox)
    out = runs_dir(sandbox)
    folder = str(sandbox.images)
    plans = [edit_plan(sandbox, 6, offset=i, stride=2) for i in range(2)]
    acks = [out / f"app{i}.ack" for i in range(2)]
    results: list[Step | None] = [None, None]

    def app(i: int) -> None:
        acks[i].unlink(missing_ok=True)
        spec = spec_for(sandbox, ack=str(acks[i]), edits=plans[i], pause=rng.uniform(0.05, 0.3))
        results[i] = run_step(sandbox, "edits", spec)

    apps = [threading.Thread(target=app, args=(i,)) for i in range(2)]
    for thread in apps:
        thread.start()
    clis = {
        "embed": (_cli(sandbox, "embed", folder), {0}),
        "refine": (
            _cli(
                sandbox,
                "refine",
                folder,
                "-l",
                str(sandbox.dest / "manifest.csv"),
                "-o",
                str(out / "refined.csv"),
            ),
            {0},
        ),  # fmt: skip
        # Refuses (3): the curation holds edits made in the app.
        "discover": (
            _cli(sandbox, "discover", folder, "-k", "3", "--effort", "quick", "-o", str(out / "labels.csv")),
            {3},
        ),  # fmt: skip
    }
    outcome = RunOutcome("two app processes and the CLI at once", "")
    for name, (process, expected) in clis.items():
        _, stderr = process.communicate(timeout=STEP_TIMEOUT_S)
        if process.returncode not in expected or "Traceback" in stderr:
            outcome.crashes.append(f"cli {name}: exit {process.returncode}: {stderr.strip()[-300:]}")
    for thread in apps:
        thread.join()
    acked = []
    for i, step in enumerate(results):
        assert step is not None
        outcome.crashes += step_crash(step, f"app {i}")
        acked += [plans[i][int(n)] for n in acknowledged(acks[i])]
    outcome.acknowledged = len(acked)
    outcome.detail = f"{len(acked)} edits from two processes"
    return assess(sandbox, outcome, before, sandbox.baseline()["prior"] + acked)
