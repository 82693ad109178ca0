"""Clusters and Map pages: 'Propagate my fixes' shows a from → to table of what it would move, applies a row
or every row shown as one undoable edit, leaves checked images alone, and never offers an out-of-date
proposal; Confirm marks ticked images as checked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_app_fakes import APP, FakeProject, open_app, texts

from turtle_core.state import edits
from turtle_core.state.errors import StaleEdit
from turtle_ui import jobs as jobs_ui

PAGE = "pages/clusters.py"


def _wait_for_proposal(at, project) -> None:
    job = jobs_ui.job_manager().get(jobs_ui.job_key(project, "refine"))
    assert job is not None
    assert job.wait(60), "the proposal did not finish"
    at.run()


def _merged_project(tmp_path: Path) -> FakeProject:
    """The discovery put class 2 into cluster 1; the curator moved six class-2 images to a new cluster
    "twos" and confirmed twelve images of each other class."""
    project = FakeProject(tmp_path / "images", per_class=20)
    truth = project._truth
    labels = np.minimum(truth, 1).astype(np.int32)
    discovery = dataclasses.replace(
        project.discovery, labels=labels, probabilities=np.eye(2, dtype=np.float32)[labels], n_clusters=2
    )
    discovery.discovery_id = "two-clusters"
    project.state.install_discovery(discovery)
    snap = project.snapshot()
    wrong = np.flatnonzero(truth == 2)
    project.apply(
        edits.MoveToNewCluster(discovery_id=snap.discovery_id, images=snap.keys(wrong[:6]), name="twos")
    )
    project.apply(
        edits.Confirm(discovery_id=snap.discovery_id, images=snap.keys(list(range(12)) + list(range(20, 32))))
    )
    return project


def _keys(at) -> set[str]:
    return {button.key for button in at.button if button.key}


def test_the_proposal_table_applies_a_row_and_undoes(monkeypatch, tmp_path: Path) -> None:
    project = _merged_project(tmp_path)
    wrong = np.flatnonzero(project._truth == 2)
    before = project.snapshot().curation
    twos = [c for c in before.cluster_ids() if before.name_of(c) == "twos"][0]
    at = open_app(monkeypatch, project, PAGE)
    assert not at.exception
    assert "learn from your 30 checked images" in texts(at)

    at.button(key="refine:start").click().run()
    _wait_for_proposal(at, project)
    page = texts(at)
    assert "would move" in page and "of 30 unchecked images, learned from 30 checked images" in page
    assert "Cluster 1 → **twos**" in page
    assert {"refine:apply", "refine:discard", f"refine:row:1:{twos}"} <= _keys(at)
    assert project.snapshot().curation.state_id == before.state_id  # nothing changed yet
    slider = at.slider(key=f"refine:at_least:{_job(project).id}")
    slider.set_value(1.0).run()  # nobody is that sure: the table empties
    assert f"refine:row:1:{twos}" not in _keys(at) and at.button(key="refine:apply").disabled
    at.slider(key=slider.key).set_value(slider.min).run()

    at.button(key=f"refine:row:1:{twos}").click().run()
    assert not at.exception
    after = project.snapshot().curation
    assert (np.asarray(after.assignments)[wrong] == twos).mean() >= 0.9
    checked = np.asarray(before.checked)
    assert np.array_equal(np.asarray(after.assignments)[checked], np.asarray(before.assignments)[checked])
    assert "Propagated your fixes" in at.success[0].value
    assert "out of date" not in texts(at)  # what is left of the proposal is on the state its row left

    at.button(key="undo").click().run()
    assert np.array_equal(project.snapshot().curation.assignments, before.assignments)
    assert "out of date — recompute" in texts(at)


def test_an_old_proposal_is_never_offered_after_undo_split_and_reload(monkeypatch, tmp_path: Path) -> None:
    """The browser story: Propagate → Apply → Undo → a split → a reload. The reloaded page says the old
    proposal is out of date and offers Recompute, never Apply; the engine refuses its edit too."""
    project = _merged_project(tmp_path)
    at = open_app(monkeypatch, project, PAGE)
    at.button(key="refine:start").click().run()
    _wait_for_proposal(at, project)
    at.button(key="refine:apply").click().run()
    at.button(key="undo").click().run()
    snap = project.snapshot()
    members = snap.curation.members(0)
    project.apply(
        edits.Split(
            discovery_id=snap.discovery_id,
            cluster_id=0,
            members=snap.keys(members),
            sub_labels=tuple(int(i) % 2 for i in range(members.size)),
        )
    )
    split = project.snapshot().curation

    reloaded = AppTest.from_file(APP, default_timeout=30)  # a new browser session; the jobs live on
    reloaded.session_state["folder"] = str(project.folder)
    reloaded.run()
    reloaded.switch_page(PAGE).run()
    assert not reloaded.exception
    assert "out of date — recompute" in texts(reloaded)
    assert "refine:apply" not in _keys(reloaded) and "refine:start" in _keys(reloaded)
    with pytest.raises(StaleEdit):
        project.apply(_job(project).result.edit())
    assert project.snapshot().curation.state_id == split.state_id
    assert len(project.snapshot().curation.cluster_ids()) == len(split.cluster_ids())  # the split's part

    reloaded.button(key="refine:start").click().run()  # Recompute
    _wait_for_proposal(reloaded, project)
    assert "out of date" not in texts(reloaded) and "would move" in texts(reloaded)
    reloaded.button(key="refine:apply").click().run()
    assert "Propagated your fixes" in reloaded.success[0].value


def _job(project):
    return jobs_ui.job_manager().get(jobs_ui.job_key(project, "refine"))


def test_confirm_marks_ticked_images_checked(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images", per_class=10)
    at = open_app(monkeypatch, project, PAGE)
    assert not at.exception
    assert at.button(key="refine:start").disabled  # nothing checked yet: nothing to learn from
    at.segmented_control(key="clusters_view").set_value("Review queue").run()
    at.slider(key="review_threshold").set_value(1.0).run()
    ticks = [c for c in at.checkbox if c.key and c.key.startswith("pick:review:")][:2]
    for tick in ticks:
        tick.check()
    at.run()
    at.button(key="review:confirm").click().run()
    assert not at.exception
    assert int(np.asarray(project.snapshot().curation.checked).sum()) == 2
    assert "Confirmed 2 images" in at.success[0].value
    assert "28 images to review" in texts(at)  # confirmed images leave the queue of unchecked ones
