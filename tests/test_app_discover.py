"""Discover page: settings, background run with progress and cancel, result summary."""

from __future__ import annotations

import threading
from pathlib import Path

from test_app_fakes import FakeProject, open_app, texts, wait_for_job

PAGE = "pages/discover.py"


def test_fixed_number_of_categories_runs_in_the_background(monkeypatch, tmp_path) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)
    at = open_app(monkeypatch, project, PAGE)
    assert not at.exception
    assert "press **Run discovery**" in texts(at)
    assert at.number_input(key=f"k_fixed:{project.folder}").value == 3  # default: the number of folder labels
    at.number_input(key=f"k_fixed:{project.folder}").set_value(4)
    at.button(key="run_discovery").click().run()
    job = wait_for_job(at, project, "discover")
    assert job.state == "done"
    assert project.discover_calls == [4]
    assert project.discover_efforts == ["standard"]  # the default effort
    assert not at.exception
    page = texts(at)
    assert "Categories: 4" in page
    assert "Accuracy: 100.0%" in page
    assert "Score per number of categories" not in page  # one candidate only
    assert at.get("vega_lite_chart"), "cluster-size bar chart"


def test_range_shows_the_score_per_candidate(monkeypatch, tmp_path) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)
    at = open_app(monkeypatch, project, PAGE)
    at.radio(key=f"k_mode:{project.folder}").set_value("Choose automatically").run()
    at.slider(key=f"k_range:{project.folder}").set_value((2, 5)).run()
    at.button(key="run_discovery").click().run()
    wait_for_job(at, project, "discover")
    assert project.discover_calls == [(2, 5)]
    assert "Score per number of categories" in texts(at)
    assert len(at.get("vega_lite_chart")) == 2
    assert "Best: 3 categories." in texts(at)


def test_quick_effort_is_passed_to_the_engine(monkeypatch, tmp_path) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)
    at = open_app(monkeypatch, project, PAGE)
    assert at.radio(key=f"effort:{project.folder}").value == "standard"
    at.radio(key=f"effort:{project.folder}").set_value("quick").run()
    at.button(key="run_discovery").click().run()
    wait_for_job(at, project, "discover")
    assert project.discover_efforts == ["quick"]
    assert project.discover_partitions == ["auto"]  # the stability choice unless the curator picks one


def test_a_forced_partition_is_passed_to_the_engine(monkeypatch, tmp_path) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)
    at = open_app(monkeypatch, project, PAGE)
    radio = at.radio(key=f"partition:{project.folder}")
    assert radio.value == "auto" and list(radio.options) == ["Automatic", "TURTLE", "k-means"]
    radio.set_value("turtle").run()
    at.button(key="run_discovery").click().run()
    wait_for_job(at, project, "discover")
    assert project.discover_partitions == ["turtle"]


def test_progress_is_shown_while_running_and_cancel_works(monkeypatch, tmp_path) -> None:
    from turtle_ui import jobs as jobs_ui

    project = FakeProject(tmp_path / "images", discovered=False)
    project.discover_gate = threading.Event()
    at = open_app(monkeypatch, project, PAGE)
    at.button(key="run_discovery").click().run()
    job = jobs_ui.job_manager().get(jobs_ui.job_key(project, "discover"))
    assert job is not None and job.running
    assert at.button(key="run_discovery").disabled
    assert "Turning each image into a feature vector" in texts(at)
    assert at.get("progress"), "a progress bar"
    assert "100 images/s · finishing…" in texts(at)  # embedding done, discovery still running
    assert "Done: Looking through the folder's files" in texts(at)

    at.button(key=f"cancel-{job.id}").click().run()
    assert job.wait(10)
    assert job.state == "cancelled"
    at.run()
    assert "Discovery was cancelled" in " ".join(w.value for w in at.warning)
    assert project.discovery is None
    assert not at.button(key="run_discovery").disabled


def test_failure_is_reported_without_crashing_the_page(monkeypatch, tmp_path) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)

    def broken(n_clusters, progress=None, cancel=None, effort=None, partition="auto", **run):
        raise ValueError("Backbone effnet-lite0 is missing: install its wheel.")

    project.run_discovery = broken
    at = open_app(monkeypatch, project, PAGE)
    at.button(key="run_discovery").click().run()
    wait_for_job(at, project, "discover")
    assert not at.exception
    assert "Discovery failed: Backbone effnet-lite0 is missing" in at.error[0].value
    assert at.expander, "technical details"


def test_rerunning_over_edits_needs_confirmation(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    fake_project.curation.rename(0, "cats")
    at = open_app(monkeypatch, fake_project, PAGE)
    assert at.button(key="run_discovery").disabled
    at.checkbox(key="confirm_rediscover").check().run()
    assert not at.button(key="run_discovery").disabled
    assert "What carries over: your cluster names" in " ".join(c.value for c in at.caption)


def test_edits_made_elsewhere_while_discovery_runs_are_never_replaced_unasked(
    monkeypatch, tmp_path: Path
) -> None:
    import threading

    from turtle_core.state import edits

    fake_project = FakeProject(tmp_path / "images")
    fake_project.curation.rename(0, "cats")
    fake_project.discover_gate = threading.Event()
    at = open_app(monkeypatch, fake_project, PAGE)
    at.checkbox(key="confirm_rediscover").check().run()
    at.button(key="run_discovery").click().run()
    snap = fake_project.snapshot()  # another tab renames a cluster while the discovery runs
    fake_project.apply(
        edits.Rename(discovery_id=snap.discovery_id, cluster_id=1, name="dogs", origin="tab:other")
    )
    fake_project.discover_gate.set()
    wait_for_job(at, fake_project, "discover")
    assert not at.exception
    assert fake_project.curation.name_of(1) == "dogs"  # still the old clusters
    assert "The curation changed while discovery ran" in at.warning[0].value

    at.button(key="held_back:use").click().run()
    assert not at.exception
    assert fake_project.discovery.discovery_id != snap.discovery_id
    assert "dogs" in fake_project.curation.names.values()  # carried over
    assert fake_project.earlier_curations()[0].n_edits == 2


def test_without_discovery_other_pages_point_here(monkeypatch, tmp_path) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)
    at = open_app(monkeypatch, project)
    for page in ("pages/map.py", "pages/clusters.py", "pages/export.py"):
        at.switch_page(page).run()
        assert not at.exception, page
        assert "run discovery first" in at.info[0].value, page


def test_too_few_images_for_the_categories_is_said_before_run(monkeypatch, tmp_path) -> None:
    project = FakeProject(tmp_path / "images", per_class=4, discovered=False)  # 12 images
    at = open_app(monkeypatch, project, PAGE)
    at.number_input(key=f"k_fixed:{project.folder}").set_value(13).run()
    assert not at.exception
    assert at.button(key="run_discovery").disabled
    assert (
        "Only 12 usable images: too few for 13 categories. Choose at most 12 categories, or add images "
        "to the folder." in [w.value for w in at.warning]
    )
    at.radio(key=f"k_mode:{project.folder}").set_value("Choose automatically").run()
    at.slider(key=f"k_range:{project.folder}").set_value((13, 20)).run()
    assert at.button(key="run_discovery").disabled
    assert "too few for a range starting at 13 categories. Start the range at 12 or fewer" in texts(at)
    at.radio(key=f"k_mode:{project.folder}").set_value("Fixed").run()
    at.number_input(key=f"k_fixed:{project.folder}").set_value(10).run()  # the engine finds 10 among 12
    assert not at.button(key="run_discovery").disabled
    assert "too few" not in texts(at)
    at.button(key="run_discovery").click().run()
    assert wait_for_job(at, project, "discover").state == "done"
    assert project.discover_calls == [10]


def test_a_single_image_cannot_start_a_discovery(monkeypatch, tmp_path) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)
    project.scan_result.images = project.scan_result.images[:1]
    at = open_app(monkeypatch, project, PAGE)
    at.number_input(key=f"k_fixed:{project.folder}").set_value(10).run()
    assert at.button(key="run_discovery").disabled
    assert "Only 1 usable image: discovery needs at least 2 (one per category)." in texts(at)
    assert "images:" not in texts(at)


def test_run_is_usable_again_after_a_failed_discovery(monkeypatch, tmp_path) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)
    works = project.run_discovery
    calls: list[object] = []

    def fails_once(n_clusters, progress=None, cancel=None, **run):
        calls.append(n_clusters)
        if len(calls) == 1:
            raise ValueError("Backbone effnet-lite0 is missing: install its wheel.")
        return works(n_clusters, progress, cancel, **run)

    project.run_discovery = fails_once
    at = open_app(monkeypatch, project, PAGE)
    at.button(key="run_discovery").click().run()
    assert wait_for_job(at, project, "discover").state == "failed"
    assert "Discovery failed" in at.error[0].value
    assert not at.button(key="run_discovery").disabled
    at.button(key="run_discovery").click().run()
    assert wait_for_job(at, project, "discover").state == "done"
    assert calls == [3, 3]
    assert "Categories: 3" in texts(at)


def test_the_engine_refuses_what_the_page_refuses() -> None:
    import pytest

    from turtle_core.operations.checks import checked_cluster_request, cluster_request_problem
    from turtle_core.state.errors import ProjectError

    assert cluster_request_problem(10, 12) is None
    assert checked_cluster_request(10, 12) == 10
    assert checked_cluster_request((20, 5), 12) == (5, 12)  # a range is ordered and clipped
    assert checked_cluster_request((12, 30), 12) == 12
    for request, images in ((10, 1), (13, 12), ((13, 20), 12), (1, 50)):
        problem = cluster_request_problem(request, images)
        assert problem is not None
        with pytest.raises(ProjectError) as raised:
            checked_cluster_request(request, images)
        assert str(raised.value) == problem
