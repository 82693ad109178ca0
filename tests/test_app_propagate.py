"""Clusters and Map pages: 'Propagate my fixes' says how many images it would re-label, applies them as one
undoable edit, and leaves checked images alone; Confirm marks ticked images as checked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from test_app_fakes import FakeProject, open_app, texts

from turtle_core.state import edits
from turtle_ui import jobs as jobs_ui

PAGE = "pages/clusters.py"


def _wait_for_proposal(at, project) -> None:
    job = jobs_ui.job_manager().get(jobs_ui.job_key(project, "refine"))
    assert job is not None
    assert job.wait(60), "the proposal did not finish"
    at.run()


def test_propagate_proposes_applies_and_undoes(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images", per_class=20)
    truth = project._truth
    # The discovery put class 2 into cluster 1; the curator moved three class-2 images to a new cluster.
    labels = np.minimum(truth, 1).astype(np.int32)
    discovery = dataclasses.replace(
        project.discovery, labels=labels, probabilities=np.eye(2, dtype=np.float32)[labels], n_clusters=2
    )
    discovery.discovery_id = "two-clusters"
    project.state.install_discovery(discovery)
    wrong = np.flatnonzero(truth == 2)
    snap = project.snapshot()
    project.apply(
        edits.MoveToNewCluster(discovery_id=snap.discovery_id, images=snap.keys(wrong[:3]), name="twos")
    )
    project.apply(edits.Confirm(discovery_id=snap.discovery_id, images=snap.keys([0, 1, 20, 21])))
    before = project.snapshot().curation
    at = open_app(monkeypatch, project, PAGE)
    assert not at.exception
    assert "learn from your 7 checked image(s)" in texts(at)

    at.button(key="refine:start").click().run()
    _wait_for_proposal(at, project)
    page = texts(at)
    assert "would re-label" in page and "of 53 unchecked images, learned from 7 checked ones" in page
    assert project.snapshot().curation.version == before.version  # nothing changed yet

    at.button(key="refine:apply").click().run()
    assert not at.exception
    after = project.snapshot().curation
    new_id = [c for c in after.cluster_ids() if after.name_of(c) == "twos"][0]
    assert (np.asarray(after.assignments)[wrong] == new_id).mean() >= 0.9
    checked = np.asarray(before.checked)
    assert np.array_equal(np.asarray(after.assignments)[checked], np.asarray(before.assignments)[checked])
    assert "Propagated your fixes" in at.success[0].value

    at.button(key="undo").click().run()
    assert np.array_equal(project.snapshot().curation.assignments, before.assignments)


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
    assert "Confirmed 2 image(s)" in at.success[0].value
    assert "28 images to review" in texts(at)  # confirmed images leave the queue of unchecked ones
