"""Clusters page, Split: a background job with progress in steps and a Cancel button, parts named after the
cluster, editing of other clusters possible meanwhile, and its message shown once, to the session that
watched it (not again after a reload)."""

from __future__ import annotations

import threading
from pathlib import Path

from streamlit.testing.v1 import AppTest
from test_app_fakes import APP, FakeProject, open_app, texts, wait_for_job

PAGE = "pages/clusters.py"


def _by_key(at, kind: str, prefix: str):
    return [w for w in getattr(at, kind) if w.key and w.key.startswith(prefix)]


def _start_split(at, cluster_id: int, parts: int | None) -> None:
    _by_key(at, "selectbox", "split_cid")[0].set_value(cluster_id)
    at.selectbox(key="split_parts").set_value(parts)
    at.button(key="split").click().run()


def _running_split(project):
    from turtle_ui import jobs as jobs_ui

    job = jobs_ui.job_manager().get(jobs_ui.job_key(project, "split"))
    assert job is not None
    for _ in range(200):  # the worker reaches the gate within moments
        if job.progress is not None and job.progress.done == 500:
            break
        threading.Event().wait(0.02)
    return job


def test_split_names_the_parts_after_the_cluster(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    curation = fake_project.curation
    curation.rename(2, "owls")
    fake_project.split_gate = threading.Event()  # so that the page sees it running, then ending
    at = open_app(monkeypatch, fake_project, PAGE)
    _start_split(at, 2, 3)
    _running_split(fake_project)
    fake_project.split_gate.set()
    wait_for_job(at, fake_project, "split")
    assert not at.exception
    assert fake_project.split_calls == [(2, 3)]
    names = sorted(curation.name_of(c) for c in curation.cluster_ids())
    assert names == [
        "Cluster 0",
        "Cluster 1",
        "owls · part 1",
        "owls · part 2",
        "owls · part 3",
    ]  # no part keeps "owls" alone
    assert sorted(curation.sizes().values()) == [4, 4, 4, 12, 12]
    assert "Split into 3 clusters: 'owls · part 1', 'owls · part 2', 'owls · part 3'." in at.success[0].value
    at.run()
    assert not at.success, "the message is shown once"


def test_split_shows_progress_can_be_cancelled_and_leaves_editing_open(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    fake_project.split_gate = threading.Event()
    curation = fake_project.curation
    at = open_app(monkeypatch, fake_project, PAGE)
    _start_split(at, 1, 2)
    job = _running_split(fake_project)
    at.run()
    assert not at.exception
    page = texts(at)
    assert "**Split** · Finding the parts of the cluster" in page
    assert "500 / 1\u202f000 steps" in [bar.proto.text for bar in at.get("progress")]
    assert "500 steps/s" in page and "left" in page
    assert "You can keep editing meanwhile" in page
    assert "editing is paused" not in page
    assert at.button(key="split").disabled  # one split at a time
    assert not at.button(key="rename").disabled

    # Another cluster can be renamed while the split runs.
    _by_key(at, "selectbox", "rename_cid")[0].set_value(0)
    _by_key(at, "text_input", "rename_name")[0].set_value("cats")
    at.button(key="rename").click().run()
    assert curation.name_of(0) == "cats"

    at.button(key=f"cancel-{job.id}").click().run()
    assert job.wait(10) and job.state == "cancelled"
    at.run()
    assert not at.exception
    assert "Split cancelled after" in " ".join(w.value for w in at.warning)
    assert curation.sizes() == {0: 12, 1: 12, 2: 12}
    assert curation.name_of(0) == "cats"
    assert not at.button(key="split").disabled


def test_split_message_does_not_come_back_after_a_reload(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    fake_project.split_gate = threading.Event()
    at = open_app(monkeypatch, fake_project, PAGE)
    _start_split(at, 0, 2)
    _running_split(fake_project)
    fake_project.split_gate.set()
    wait_for_job(at, fake_project, "split")
    assert "Split into 2 clusters" in at.success[0].value

    # A reload is a new browser session on the same server (the job registry outlives it).
    reloaded = AppTest.from_file(APP, default_timeout=30)
    reloaded.query_params["folder"] = str(fake_project.folder)
    reloaded.run()
    reloaded.switch_page(PAGE).run()
    assert not reloaded.exception
    assert "Cluster 0 · part 1" in texts(reloaded)
    assert not reloaded.success, "an earlier split is not news in a new session"


def test_split_failure_is_reported_once(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    gate = threading.Event()

    def refuse(cluster_id, n_parts=None, progress=None, cancel=None, *, effort=None):
        gate.wait(10)
        raise ValueError("'Cluster 0' has 3 images: too few to split.")

    fake_project.split_cluster = refuse
    at = open_app(monkeypatch, fake_project, PAGE)
    at.button(key="split").click().run()
    assert not at.button(key="rename").disabled
    gate.set()
    wait_for_job(at, fake_project, "split")
    assert not at.exception
    assert "Split failed: 'Cluster 0' has 3 images: too few to split." in at.error[0].value
    assert fake_project.curation.sizes() == {0: 12, 1: 12, 2: 12}
    at.run()
    assert not at.error
