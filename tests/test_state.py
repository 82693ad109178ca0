"""The project's state: one store, one discovery id, edits through `apply`, recovery instead of crashes.

Synthetic discoveries (no embedding, no TURTLE) keep these fast; `test_project.py` runs the real engine.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from state_helpers import image_names, open_state, synthetic_discovery

from turtle_core.constants import EXCLUDED
from turtle_core.paths import project_dir
from turtle_core.state import edits
from turtle_core.state.curation import Curation
from turtle_core.state.errors import CurationHasEdits, StaleEdit
from turtle_core.state.project_state import ProjectState
from turtle_core.state.store import ProjectStore

HERE = Path(__file__).resolve().parent


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "images"
    path.mkdir()
    return path


def test_apply_saves_every_edit_and_undo_survives_reopening(folder: Path) -> None:
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(30)))
    snap = state.snapshot()
    assert state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name="cats")) == "cats"
    assert state.apply(edits.Exclude(discovery_id=snap.discovery_id, images=snap.keys([4, 5]))) == 2
    assert snap.curation.name_of(0) == "Cluster 0"  # a snapshot is a copy: edits do not change it

    reopened = open_state(folder)
    assert reopened.take_notices() == []
    assert reopened.curation.name_of(0) == "cats"
    assert reopened.curation.assignments[4] == EXCLUDED
    assert reopened.apply(edits.Undo(discovery_id=snap.discovery_id)) is True
    assert open_state(folder).curation.assignments[4] != EXCLUDED


def test_edit_made_against_another_discovery_is_refused_and_changes_nothing(folder: Path) -> None:
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(30)))
    old = state.snapshot()
    state.install_discovery(synthetic_discovery(image_names(30), seed=1))
    with pytest.raises(StaleEdit, match="recomputed"):
        state.apply(edits.Exclude(discovery_id=old.discovery_id, images=old.keys([0])))
    assert not state.has_edits()
    assert not open_state(folder).has_edits()


def test_selection_by_identity_acts_on_the_ticked_images_after_a_rescan(folder: Path) -> None:
    """Defect 5: rows shift when a rescan finds a new file; an edit names images, not rows."""
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(20)))
    ticked = state.snapshot().keys([3, 4])  # what the curator ticked
    state.install_discovery(synthetic_discovery(["aaa_new.png", *image_names(20)]))
    snap = state.snapshot()
    state.apply(edits.Exclude(discovery_id=snap.discovery_id, images=ticked))
    excluded = [snap.images[row].path for row in state.curation.excluded()]
    assert excluded == list(ticked)


def test_crash_between_discovery_and_curation_writes_never_pairs_them(folder: Path, monkeypatch) -> None:
    """Defect 3: the old curation (same images, other discovery) is set aside, not silently reused."""
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(30)))
    snap = state.snapshot()
    state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=1, name="my work"))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed between the two writes")

    new = synthetic_discovery(image_names(30), seed=2)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(ProjectStore, "write_curation", crash)
        state.install_discovery(new)

    reopened = open_state(folder)
    assert reopened.discovery.discovery_id == new.discovery_id
    np.testing.assert_array_equal(reopened.curation.assignments, new.labels)
    assert not reopened.has_edits()
    (notice,) = reopened.take_notices()
    assert "could not be used" in notice and "another discovery" in notice
    kept = list(project_dir(folder).glob("curation.npz.bad-*"))
    assert len(kept) == 1  # the curator's work is kept aside, not deleted
    old_work = Curation.from_bytes(kept[0].read_bytes())
    assert old_work.name_of(1) == "my work"
    assert reopened.take_notices() == []  # shown once


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 torn", b"not a zip at all"])
def test_corrupt_curation_or_discovery_never_makes_a_project_unopenable(folder: Path, damage: bytes) -> None:
    state = open_state(folder)
    discovery = synthetic_discovery(image_names(30))
    state.install_discovery(discovery)
    workdir = project_dir(folder)
    (workdir / "curation.npz").write_bytes(damage)
    reopened = open_state(folder)
    np.testing.assert_array_equal(reopened.curation.assignments, discovery.labels)
    assert "could not be used" in reopened.take_notices()[0]

    (workdir / "discovery.npz").write_bytes(damage)
    (workdir / "discovery.copy.npz").write_bytes(damage)  # both copies damaged: nothing to restore
    (workdir / "project.json").write_bytes(b"{ torn")
    from turtle_core.operations.project import Project

    project = Project.open(folder, reuse=False)
    assert project.discovery is None and project.curation is None
    notices = " ".join(project.take_notices())
    assert "discovery was damaged" in notices and "settings" in notices
    assert list(workdir.glob("discovery.npz.bad-*"))


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 torn"])
def test_a_damaged_curation_file_costs_at_most_the_last_edit(folder: Path, damage: bytes) -> None:
    state = open_state(folder)
    discovery = synthetic_discovery(image_names(30))
    state.install_discovery(discovery)
    for cid, name in enumerate(["cats", "dogs", "birds"]):
        state.apply(edits.Rename(discovery_id=discovery.discovery_id, cluster_id=cid, name=name))
    (project_dir(folder) / "curation.npz").write_bytes(damage)

    reopened = open_state(folder)
    names = [reopened.curation.name_of(cid) for cid in range(3)]
    assert names[:2] == ["cats", "dogs"]  # only the last save is gone
    notice = reopened.take_notices()[0]
    assert "could not be used" in notice and "the save before it was restored" in notice
    assert list(project_dir(folder).glob("curation.npz.bad-*"))  # the damaged file is kept aside
    again = open_state(folder)  # the restored curation was saved: a second reopen needs no rescue
    assert [again.curation.name_of(cid) for cid in range(2)] == ["cats", "dogs"]
    assert again.take_notices() == []


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 torn"])
def test_a_damaged_discovery_file_is_restored_from_its_copy(folder: Path, damage: bytes) -> None:
    state = open_state(folder)
    discovery = synthetic_discovery(image_names(30))
    state.install_discovery(discovery)
    state.apply(edits.Rename(discovery_id=discovery.discovery_id, cluster_id=1, name="cats"))
    (project_dir(folder) / "discovery.npz").write_bytes(damage)

    reopened = open_state(folder)
    assert reopened.discovery.discovery_id == discovery.discovery_id
    assert reopened.curation.name_of(1) == "cats"  # the curation still pairs with it: nothing lost
    assert "its copy was restored" in reopened.take_notices()[0]
    assert list(project_dir(folder).glob("discovery.npz.bad-*"))
    assert open_state(folder).take_notices() == []  # restored on disk too


def test_refusing_to_replace_edits(folder: Path) -> None:
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(30)))
    state.install_discovery(synthetic_discovery(image_names(30), seed=1), replace_edits=False)  # no edits
    snap = state.snapshot()
    state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name="kept"))
    with pytest.raises(CurationHasEdits, match="1 edit"):
        state.install_discovery(synthetic_discovery(image_names(30), seed=2), replace_edits=False)
    assert open_state(folder).curation.name_of(0) == "kept"


def test_another_process_discovery_is_noticed_and_never_overwritten(folder: Path) -> None:
    """Defect 4 (app side): the app's stale curation is never saved over a newer discovery."""
    app = open_state(folder)
    app.install_discovery(synthetic_discovery(image_names(30)))
    seen = app.snapshot()
    app.curation.rename(0, "edited in place")  # the old way: edit the object, then save it

    cli = open_state(folder)  # another process: same files, its own memory
    new = synthetic_discovery(image_names(30), seed=3)
    cli.install_discovery(new)

    with pytest.raises(StaleEdit):
        app.save_curation()
    with pytest.raises(StaleEdit):
        app.apply(edits.Rename(discovery_id=seen.discovery_id, cluster_id=1, name="late"))
    assert app.discovery.discovery_id == new.discovery_id
    assert "replaced by a discovery saved elsewhere" in " ".join(app.take_notices())
    on_disk = Curation.from_bytes((project_dir(folder) / "curation.npz").read_bytes())
    assert not on_disk.can_undo and on_disk.name_of(0) == "Cluster 0"


def test_symlinked_folder_is_one_project(tmp_path: Path, folder: Path) -> None:
    """Defect 5: one folder through a symlink and through its real path is ONE project."""
    from turtle_core.operations.project import Project

    link = tmp_path / "link"
    link.symlink_to(folder, target_is_directory=True)
    assert project_dir(link) == project_dir(folder)
    real = Project.open(folder)
    assert Project.open(link) is real
    assert Project.open(str(link) + "/") is real


def test_split_racing_a_discovery_changes_nothing(folder: Path, monkeypatch) -> None:
    """Defect 5: a split that finishes after a new discovery must not edit an orphaned curation."""
    from turtle_core.discovery import selection
    from turtle_core.operations.project import Project

    project = Project.open(folder, reuse=False)
    first = synthetic_discovery(image_names(40), n_clusters=2, params={"effort": "quick"})
    project.state.install_discovery(first)
    rng = np.random.default_rng(0)
    project._spaces = (first.rows_key, [rng.normal(size=(40, 8)).astype(np.float32)])
    started, finish = threading.Event(), threading.Event()
    real_select = selection.select_model

    def slow_select(*args, **kwargs):
        started.set()
        assert finish.wait(30)
        return real_select(*args, **kwargs)

    monkeypatch.setattr(selection, "select_model", slow_select)
    outcome: dict[str, object] = {}

    def split() -> None:
        try:
            outcome["ids"] = project.split_cluster(0, 2)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            outcome["error"] = error

    worker = threading.Thread(target=split)
    worker.start()
    assert started.wait(30)
    second = synthetic_discovery(image_names(40), n_clusters=2, seed=1)
    project.state.install_discovery(second)  # the discovery finishes while the split runs
    finish.set()
    worker.join(60)
    assert isinstance(outcome.get("error"), StaleEdit), outcome
    assert not project.state.has_edits()
    on_disk = ProjectState(ProjectStore(project.workdir), folder)
    on_disk.load()
    assert on_disk.discovery.discovery_id == second.discovery_id and not on_disk.has_edits()


def test_split_applies_when_nothing_changed_meanwhile(folder: Path) -> None:
    from turtle_core.operations.project import Project

    project = Project.open(folder, reuse=False)
    discovery = synthetic_discovery(image_names(40), n_clusters=2, params={"effort": "quick"})
    project.state.install_discovery(discovery)
    centres = np.repeat(np.array([[0.0] * 8, [6.0] * 8]), 10, axis=0)  # cluster 0's two obvious groups
    features = np.zeros((40, 8), np.float32)
    features[project.curation.members(0)] = centres + np.random.default_rng(0).normal(size=(20, 8)) * 0.3
    project._spaces = (discovery.rows_key, [features])
    ids = project.split_cluster(0, 2)
    assert len(ids) == 2
    sizes = project.curation.sizes()
    assert sorted(sizes[cid] for cid in ids) == [10, 10]
    assert project.curation.history()[-1].startswith("Split")


def test_kill_at_random_points_loses_at_most_the_edit_in_flight(folder: Path, turtle_home: Path) -> None:
    """SIGKILL an editing process at random moments; every reopen works and pairs correctly."""
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(60)))
    workdir = project_dir(folder)
    env = {
        **os.environ,
        "TURTLE_HOME": str(turtle_home),
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)]),
    }
    rng = random.Random(8)
    runs, budget_end = 0, time.monotonic() + 25
    while runs < 40 and (runs < 8 or time.monotonic() < budget_end):  # 8 runs even on a busy machine
        runs += 1
        child = subprocess.Popen(
            [sys.executable, str(HERE / "state_helpers.py"), str(workdir), str(folder), str(runs)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        first = child.stdout.readline()  # the child is up and has made one durable change
        assert first, child.stderr.read()
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate()
        assert "Traceback" not in errors, errors
        kind, discovery_id, version = (first + rest).strip().splitlines()[-1].split()

        reopened = open_state(folder)
        assert reopened.discovery is not None and reopened.curation is not None
        curation_file = workdir / "curation.npz"
        if curation_file.exists():  # absent right after a mismatched one was set aside
            on_disk = Curation.from_bytes(
                curation_file.read_bytes(), expected_discovery_id=reopened.discovery.discovery_id
            )  # raises CurationMismatch if the file names another discovery
            assert on_disk.version == reopened.curation.version
        if reopened.discovery.discovery_id == discovery_id:
            # the last acknowledged change is there; at most one more (the one in flight) on top
            assert int(version) <= reopened.curation.version <= int(version) + 1
        else:  # killed while a new discovery was being installed: its new curation (the previous one's
            # names and checked images carried over, one step at most), never the old one
            assert reopened.curation.version <= 1 and len(reopened.curation.history()) <= 1
            notices = reopened.take_notices()
            assert not notices or "carried over" in notices[0] or "another discovery" in notices[0]
    print(f"kill test: {runs} SIGKILLed editor runs, every reopen consistent")
    assert runs >= 8


def test_temp_files_of_a_killed_writer_are_cleaned_up_when_old(folder: Path) -> None:
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(10)))
    workdir = project_dir(folder)
    old, fresh = workdir / ".curation.npz.abc123.tmp", workdir / ".curation.npz.def456.tmp"
    old.write_bytes(b"half a file")
    fresh.write_bytes(b"a write in progress")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    open_state(folder)
    assert not old.exists() and fresh.exists()
    assert (workdir / "curation.npz").exists()
