"""One step of the fault campaign in a process of its own, so that it can be killed with SIGKILL:

    python -m benchmarks.fault_harness.worker OP '{"folder": ..., ...}'

OPs: `setup` (make the sandbox's project; prints its baseline), `edits` (apply a list of edits, logging
each one the engine acknowledged), `discover`, `split`, `refine`, `export`, `rescan` (each logs "done"
when it returns), and `check` (reopen the project, read its state, render every page of the real app,
export once; prints a JSON report). A step prints "ready" once the project is open, just before the
step begins. Exit status: 0 done; 2 the engine refused with a message for the user (a handled error);
1 anything else (a crash).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turtle_core.constants import EXCLUDED
from turtle_core.operations.project import Project, ProjectError
from turtle_core.state.edits import Confirm, Edit, Exclude, Move, Rename

REPO = Path(__file__).resolve().parents[2]
PAGES = ("pages/project.py", "pages/discover.py", "pages/clusters.py", "pages/map.py", "pages/export.py")
HANDLED = (ProjectError,)


def run_worker(op: str, spec: dict[str, Any]) -> int:
    project = Project.open(spec["folder"])
    if spec.get("enospc"):
        no_space_left(project.workdir)
    if op == "check":
        print(json.dumps(check(project, spec)))
        return 0
    print("ready", flush=True)
    try:
        if op == "setup":
            print(json.dumps(setup(project, spec)))
            return 0
        if op == "edits":
            for index, edit in enumerate(spec["edits"]):
                project.apply(make_edit(project, edit))
                acknowledge(spec["ack"], str(index))
                if spec.get("pause"):
                    import time

                    time.sleep(float(spec["pause"]))
            return 0
        run_step(project, op, spec)
        acknowledge(spec["ack"], "done")
        return 0
    except HANDLED as error:
        print(f"handled: {error}", file=sys.stderr)
        return 2


def run_step(project: Project, op: str, spec: dict[str, Any]) -> None:
    if op == "discover":
        project.run_discovery(3, effort="quick")
    elif op == "split":
        project.split_cluster(int(spec["split"]), 2)
    elif op == "refine":
        project.refine()
    elif op == "export":
        project.export(spec["dest"], overwrite=True)
    elif op == "rescan":
        # The rescan hook: `Project.update()` (scan, embed what is new, place it) once it exists.
        update = getattr(project, "update", None)
        update() if callable(update) else project.scan()
    else:
        raise SystemExit(f"unknown step {op!r}")


def no_space_left(folder: Path) -> None:
    """Make every fsync of a file in `folder` fail with ENOSPC, as a full disk does: the real atomic
    write path (temp file, write, fsync, rename) runs and meets the error where a file system reports it."""
    os.fsync = failing_fsync(folder, os.fsync)  # type: ignore[assignment]


def failing_fsync(folder: Path, real_fsync: Callable[[int], None]) -> Callable[[int], None]:
    """`os.fsync` that fails with ENOSPC for files inside `folder` and works elsewhere."""
    prefix = os.fspath(folder) + os.sep

    def fsync(fd: int) -> None:
        target = ""
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
        if target.startswith(prefix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    return fsync


def acknowledge(path: str, what: str) -> None:
    """Record that the engine returned (fsync'd: the log must outlive a kill of this process)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(what + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def make_edit(project: Project, edit: dict[str, Any]) -> Edit:
    snap = project.snapshot()
    assert snap is not None
    kind, did = edit["kind"], snap.discovery_id
    if kind == "move":
        return Move(discovery_id=did, images=(edit["path"],), cluster_id=int(edit["to"]))
    if kind == "exclude":
        return Exclude(discovery_id=did, images=(edit["path"],))
    if kind == "confirm":
        return Confirm(discovery_id=did, images=tuple(edit["paths"]))
    if kind == "rename":
        return Rename(discovery_id=did, cluster_id=int(edit["cluster"]), name=edit["name"])
    raise ValueError(kind)


def holds(state: dict[str, Any], edit: dict[str, Any]) -> bool:
    """Whether the effect of `edit` is in a `check` report's state."""
    kind = edit["kind"]
    if kind == "move":
        return state["clusters"].get(edit["path"]) == int(edit["to"])
    if kind == "exclude":
        return state["clusters"].get(edit["path"]) == EXCLUDED
    if kind == "confirm":
        return set(edit["paths"]) <= set(state["checked"])
    if kind == "rename":
        return state["names"].get(str(edit["cluster"])) == edit["name"]
    raise ValueError(kind)


# ------------------------------------------------------------------ the sandbox's project
def setup(project: Project, spec: dict[str, Any]) -> dict[str, Any]:
    """Discovery, a map, thumbnails, the curator's first edits and an export; returns the baseline: the
    edits made (each must survive every fault), which cluster a split may take, and the images later
    edits may use."""
    if spec.get("discovery") == "folders":
        install_folder_discovery(project)
    else:
        project.run_discovery(3, effort="quick")
    project.layout("pca")
    for row in range(len(project.images)):
        project.thumbnail(row)
    snap = project.snapshot()
    assert snap is not None
    members = {
        c: [snap.images[r].path for r in snap.curation.members(c)] for c in snap.curation.cluster_ids()
    }
    by_size = sorted(members, key=lambda c: -len(members[c]))
    split, keep = by_size[0], by_size[1:3]  # the split takes the largest; the edits stay off it
    prior = [
        {"kind": "rename", "cluster": keep[0], "name": "kept **as named**"},
        {"kind": "confirm", "paths": members[keep[0]][:2] + members[keep[1]][:2]},
        {"kind": "move", "path": members[split][0], "to": keep[0]},
        {"kind": "exclude", "path": members[keep[1]][2]},
    ]
    for edit in prior:
        project.apply(make_edit(project, edit))
    project.export(spec["dest"])
    pool = [
        {"path": path, "home": c, "other": keep[1] if c == keep[0] else keep[0]}
        for c in keep
        for path in members[c][3:]
    ]
    return {"discovery_id": snap.discovery_id, "prior": prior, "split": split, "pool": pool}


def install_folder_discovery(project: Project) -> None:
    """A discovery whose clusters are the image folders (real embeddings, no TURTLE): a quick stand-in
    where the campaign's fast part needs a project, not a training."""
    import numpy as np

    from turtle_core.discovery.confidence import confidence_and_atypicality
    from turtle_core.state.discovery_result import DiscoveryResult

    project.scan()
    images, spaces, identities, failed = project.embed()
    names = sorted({record.path.split("/")[0] for record in images})
    labels = np.array([names.index(record.path.split("/")[0]) for record in images], dtype=np.int32)
    confidence, atypicality = confidence_and_atypicality(spaces, labels)
    project.state.install_discovery(
        DiscoveryResult(
            images,
            labels,
            np.eye(len(names), dtype=np.float32)[labels],
            confidence,
            len(names),
            0.0,
            {len(names): 0.0},
            {"stand_in": "folders"},
            list(project.backbones),
            identities,
            0.0,
            failed=failed,
            atypicality=atypicality,
        )  # fmt: skip
    )


# ------------------------------------------------------------------ after a fault
def check(project: Project, spec: dict[str, Any]) -> dict[str, Any]:
    """The project's state as the next user finds it, every page of the real app, and one export."""
    report: dict[str, Any] = {"notices": project.take_notices()}
    snap = project.snapshot()
    report["discovery_id"] = snap.discovery_id if snap is not None else None
    if snap is not None:
        paths = [record.path for record in snap.images]
        report["clusters"] = dict(zip(paths, (int(c) for c in snap.curation.assignments), strict=True))
        report["checked"] = [p for p, c in zip(paths, snap.curation.checked, strict=True) if c]
        report["names"] = {str(c): snap.curation.name_of(c) for c in snap.curation.cluster_ids()}
    else:
        report.update(clusters={}, checked=[], names={})
    report["page_errors"] = page_errors(str(project.folder)) if spec.get("pages", True) else []
    report["export_error"] = report["export_refused"] = None
    try:
        project.export(spec["dest"], overwrite=True)
    except HANDLED as error:  # a message the Export page shows (say, "run discovery first")
        report["export_refused"] = str(error)
    except Exception as error:  # noqa: BLE001 - reported: the campaign counts it
        report["export_error"] = f"{type(error).__name__}: {error}"
    return report


def page_errors(folder: str) -> list[str]:
    """Exceptions the real app shows on each page with this project open."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.session_state["folder"] = folder
    at.run()
    errors = [f"app: {e.value}" for e in at.exception]
    for page in PAGES:
        at.switch_page(page).run()
        errors += [f"{page}: {e.value}" for e in at.exception]
    return errors


if __name__ == "__main__":
    try:
        sys.exit(run_worker(sys.argv[1], json.loads(sys.argv[2])))
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
