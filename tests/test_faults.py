"""The fault campaign's fast part (the long one: `benchmarks/faults.py`): kill -9 during edits and an
export, damaged workspace and cache files, a full disk during a save, two app processes and the CLI on one
project. Each run restores a real project, injects the fault in real processes, then opens the project as
the next user would. Goals: the project reopens, no acknowledged edit is lost (at most the one in flight),
nothing outside the engine's home and the export is touched, no crash is shown to the user."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from benchmarks.fault_harness import kinds as fk
from benchmarks.fault_harness.sandbox import Sandbox, build, damage, damageable_files, restore
from benchmarks.fault_harness.worker import failing_fsync

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return build(tmp_path_factory.mktemp("faults") / "project", discovery="folders")


def _holds_up(outcome: fk.RunOutcome) -> None:
    assert outcome.reopened, outcome
    assert outcome.edits_lost == 0, outcome
    assert outcome.touched == [], outcome
    assert outcome.crashes == [], outcome


@pytest.mark.parametrize("step", ["edits", "export"])
def test_kill_9_at_random_points_loses_nothing_acknowledged(sandbox: Sandbox, step: str) -> None:
    rng = random.Random(7)
    duration = fk.calibrate(sandbox, step)
    outcomes = [fk.kill_run(sandbox, step, duration * fraction, rng) for fraction in (0.3, 1.0)]
    for outcome in outcomes:
        _holds_up(outcome)
    assert any(outcome.detail.startswith("killed") for outcome in outcomes)


def test_damaged_files_never_stop_the_project_from_opening(sandbox: Sandbox) -> None:
    restore(sandbox)
    files = dict(damageable_files(sandbox))
    assert {"workspace/curation.npz", "workspace/discovery.npz", "workspace/scan.json"} <= set(files)
    assert any(name.startswith("cache/") and name.endswith(".npy") for name in files)
    for how, what in [
        ("truncate", "workspace/discovery.npz"),
        ("corrupt", "workspace/scan.json"),
        ("corrupt", next(name for name in files if name.startswith("cache/") and name.endswith(".npy"))),
    ]:
        restore(sandbox)
        before = fk.outside_state(sandbox)
        damage(files[what], how)
        outcome = fk.assess(sandbox, fk.RunOutcome(how, what), before, sandbox.baseline()["prior"])
        if (
            what == "workspace/discovery.npz"
        ):  # set aside, and its copy restored: the edits still pair with it
            assert outcome.reopened and "its copy was restored" in " ".join(outcome.notices)
            assert outcome.crashes == [] and outcome.touched == []
            assert outcome.edits_lost == 0
        else:
            _holds_up(outcome)
    # A damaged curation is set aside (never deleted) and the pages say so instead of failing.
    restore(sandbox)
    before = fk.outside_state(sandbox)
    damage(files["workspace/curation.npz"], "truncate")
    outcome = fk.assess(sandbox, fk.RunOutcome("truncate", "curation"), before, [], pages=True)
    assert outcome.reopened and outcome.crashes == [] and outcome.touched == []
    assert any("kept as curation.npz.bad-" in notice for notice in outcome.notices)
    assert list(sandbox.workspace().glob("curation.npz.bad-*"))


def test_a_full_disk_during_a_save_refuses_the_edit_and_keeps_the_rest(sandbox: Sandbox) -> None:
    outcome = fk.disk_full_run(sandbox, random.Random(3))
    _holds_up(outcome)
    assert outcome.in_flight == 1 and outcome.acknowledged == 0  # the refused save, said as a message


def test_two_app_processes_and_the_cli_on_one_project(sandbox: Sandbox) -> None:
    outcome = fk.concurrent_run(sandbox, random.Random(5))
    _holds_up(outcome)
    assert outcome.acknowledged == 12  # both processes' edits, every one of them kept


def test_the_campaign_table_counts_every_run(tmp_path: Path) -> None:
    from benchmarks.faults import markdown, table

    outcomes = [
        fk.RunOutcome("kill -9 during edits", "a", reopened=True),
        fk.RunOutcome("kill -9 during edits", "b", reopened=True, edits_lost=1, crashes=["x"]),
        fk.RunOutcome("corrupt", "c", touched=["images/a.png"]),
    ]
    rows = table(outcomes)
    assert rows == [
        {"fault kind": "kill -9 during edits", "runs": 2, "reopened": 2, "edits lost": 1,
         "touched outside": 0, "crashes shown": 1},
        {"fault kind": "corrupt", "runs": 1, "reopened": 0, "edits lost": 0,
         "touched outside": 1, "crashes shown": 0},
    ]  # fmt: skip
    assert markdown(rows).splitlines()[2] == "| kill -9 during edits | 2 | 2 | 1 | 0 | 1 |"


def test_the_clusters_page_says_a_full_disk_refused_the_edit(monkeypatch, tmp_path: Path) -> None:
    import os

    from test_app_fakes import FakeProject, open_app

    project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, project, "pages/clusters.py")
    saved = (project.workdir / "curation.npz").read_bytes()
    # The real atomic save runs and meets ENOSPC where a disk reports it.
    monkeypatch.setattr(os, "fsync", failing_fsync(project.workdir, os.fsync))
    [w for w in at.selectbox if w.key and w.key.startswith("rename_cid")][0].set_value(1)
    [w for w in at.text_input if w.key and w.key.startswith("rename_name")][0].set_value("dogs")
    at.button(key="rename").click().run()
    assert not at.exception
    assert "could not be saved (No space left on device); it was undone" in at.error[0].value
    assert project.curation.name_of(1) != "dogs"  # memory never runs ahead of the file
    assert (project.workdir / "curation.npz").read_bytes() == saved
    assert not list(project.workdir.glob(".*.tmp"))


def test_a_project_opens_on_a_full_disk_and_says_its_settings_were_not_saved(
    monkeypatch, make_image_tree
) -> None:
    import os

    from turtle_core.operations.project import Project

    folder = make_image_tree({"a": 2, "b": 2})
    workdir = Project.open(folder).workdir
    monkeypatch.setattr(os, "fsync", failing_fsync(workdir, os.fsync))
    project = Project.open(folder, reuse=False)  # before: died writing unchanged settings
    assert project.take_notices() == []
    project.set_backbones(["effnet-lite0", "effnet-lite2"])
    assert project.backbones == ["effnet-lite0", "effnet-lite2"]  # still applies in this process
    assert "settings could not be saved (No space left on device)" in project.take_notices()[0]
    assert not list(workdir.glob(".*.tmp"))
