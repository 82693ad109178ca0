"""Cleaning in the app: the Duplicates view (review, keep one, undo; nothing to report said plainly),
quality-flag filters on the Clusters and Map pages, flag counts on the Project page, flags in the
manifest, and one-click name suggestions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_app_fakes import FakeProject, open_app, texts, wait_for_job

from turtle_core.cleaning.quality import QUALITY_FLAGS
from turtle_core.cleaning.suggest import TopWords
from turtle_core.constants import EXCLUDED
from turtle_core.operations import cleaning

PAGE = "pages/clusters.py"
COPIES = ((2, 3), (14, 15))  # (source, copy) rows: cats 2/3 and dogs 2/3 are near-duplicates


def _duplicates(monkeypatch, project: FakeProject):
    at = open_app(monkeypatch, project, PAGE)
    at.segmented_control(key="clusters_view").set_value("Duplicates").run()
    wait_for_job(at, project, "duplicates")
    assert not at.exception
    return at


def test_review_a_group_keep_one_and_undo(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images", near_copies=COPIES)
    curation = project.curation
    at = _duplicates(monkeypatch, project)
    page = texts(at)
    assert "**2 groups to review** · 2 images beside the ones kept" in page
    assert "Median nearest-neighbour distance" in page
    assert len(at.get("plotly_chart")) == 1  # the histogram with the threshold
    assert at.button(key="dup_keep_all").label == "Keep one of each, exclude 2"
    at.button(key="dup_keep:0").click().run()
    assert not at.exception
    excluded = np.flatnonzero(curation.assignments == EXCLUDED).tolist()
    assert len(excluded) == 1 and excluded[0] in (2, 3, 14, 15)
    assert "Kept one image of a group of near-duplicates, excluded 1" in curation.history()[-1]
    assert "**1 group to review**" in texts(at) and "1 group done" in texts(at)
    at.button(key="undo").click().run()
    assert not (curation.assignments == EXCLUDED).any()
    at.button(key="dup_keep_all").click().run()
    assert int((curation.assignments == EXCLUDED).sum()) == 2
    assert "Every group keeps one image" in texts(at)


def test_threshold_slider_regroups(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images", near_copies=COPIES)
    at = _duplicates(monkeypatch, project)
    slider = at.slider(key=f"dup_threshold:{project.discovery.discovery_id[:12]}")
    slider.set_value(0.0).run()
    assert "No near-duplicates or exact copies among 36 images" in texts(at)
    slider.set_value(slider.max).run()
    assert "groups to review" in texts(at)


def test_a_folder_without_duplicates_says_so(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    at = _duplicates(monkeypatch, project)
    assert "No near-duplicates or exact copies among 36 images at this threshold." in texts(at)
    assert not at.get("button") or all(not (b.key or "").startswith("dup_keep") for b in at.button)


def test_filter_the_gallery_and_the_map_by_a_flag(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, project, PAGE)
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    assert len([b for b in at.checkbox if b.key.startswith("pick:cluster0:")]) == 12
    assert "dark" in at.pills(key="quality_filter:gallery").options[0]
    at.pills(key="quality_filter:gallery").set_value(["dark"]).run()
    boxes = [b for b in at.checkbox if b.key.startswith("pick:cluster0:")]
    assert len(boxes) == 2  # the two dark cats

    at.switch_page("pages/map.py").run()
    key = at.get("plotly_chart")[0].key
    at.session_state[key] = {
        "selection": {"points": [], "point_indices": [0, 1, 5, 13], "box": [], "lasso": []}
    }
    at.run()
    at.pills(key="quality_filter:map").set_value(["dark"]).run()
    assert not at.exception
    assert "2 of the 4 selected images carry the flags." in texts(at)
    assert "**2 images selected**" in texts(at)


def test_project_page_counts_flags_and_the_manifest_carries_them(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, project, "pages/project.py")
    assert "Dark: 2" in texts(at)
    frame = project.manifest_frame()
    assert frame["dark"].sum() == 2 and frame["grayscale"].sum() == 0
    assert list(frame.columns[-7:]) == list(QUALITY_FLAGS)


def test_accept_a_suggested_name(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")

    def words(_project, discovery, extra_words=(), *, compute=True):
        labels = discovery.labels
        indices = np.where(labels[:, None] == 0, [[0, 1]], [[1, 2]])
        probabilities = np.tile(np.asarray([[0.8, 0.1]], np.float32), (len(labels), 1))
        return TopWords(("tabby", "pick", "kite"), indices, probabilities)

    monkeypatch.setattr(cleaning, "top_words", words)
    at = open_app(monkeypatch, project, PAGE)
    assert not at.exception
    assert at.button(key="suggest:0:0").label == "tabby · 100%"
    assert not any((b.key or "").startswith("suggest:1:") for b in at.button)  # "pick": in every cluster
    at.button(key="suggest:0:0").click().run()
    assert project.curation.name_of(0) == "tabby"
    assert "Renamed 'Cluster 0' to 'tabby'." in at.success[0].value
    assert not any((b.key or "").startswith("suggest:0:") for b in at.button)  # its own name is not suggested


def test_no_naming_backbone_is_said_once(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    monkeypatch.setattr(cleaning, "top_words", lambda *args, **kwargs: None)
    at = open_app(monkeypatch, project, PAGE)
    assert "No name suggestions: none of this discovery's backbones knows words" in texts(at)
