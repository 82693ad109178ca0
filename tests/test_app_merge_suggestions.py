"""Clusters page: merge suggestions from the merge tree, one-click merge, the categories slider as a view."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from test_app_fakes import FakeProject, open_app, texts

from turtle_ui import merge_view

PAGE = "pages/clusters.py"


def _overclustered(tmp_path: Path) -> FakeProject:
    """3 classes of 30 images discovered as 6 clusters: each class cut in two (clusters 2c and 2c+1)."""
    project = FakeProject(tmp_path / "images", per_class=30)
    labels = (project._truth * 2 + np.arange(project._truth.size) % 2).astype(np.int32)
    probabilities = np.full((labels.size, 6), 0.02, np.float32)
    probabilities[np.arange(labels.size), labels] = 0.9
    discovery = dataclasses.replace(
        project.discovery, labels=labels, probabilities=probabilities, n_clusters=6
    )
    discovery.discovery_id = "over-clustered"
    project.state.install_discovery(discovery)
    return project


def _slider(at):
    return next(s for s in at.slider if s.key and s.key.startswith("merge_view_n:"))


def test_suggestions_pair_alike_clusters_and_one_click_merges(monkeypatch, tmp_path: Path) -> None:
    project = _overclustered(tmp_path)
    curation = project.curation
    at = open_app(monkeypatch, project, PAGE)
    assert not at.exception
    page = texts(at)
    assert "**Similar clusters**" in page
    assert "suggests **3** categories" in page
    assert not [m for m in at.markdown if " and **" in str(m.value)]  # suggestions open on demand
    at.toggle(key="merge_suggestions_on").set_value(True).run()
    # the three closest pairs are the halves of each class, in some order
    pairs = {f"**Cluster {2 * c}** and **Cluster {2 * c + 1}**" for c in range(3)}
    shown = [m.value for m in at.markdown if " and **" in str(m.value)]
    assert len(shown) == merge_view.SUGGESTIONS
    assert {line.split(" · ")[0] for line in shown[:3]} == pairs

    first = shown[0].split(" · ")[0]
    at.button(key="merge_suggestion:0").click().run()
    assert not at.exception
    assert len(curation.cluster_ids()) == 5
    assert sorted(curation.sizes().values()) == [15, 15, 15, 15, 30]
    assert project.saves == 1
    assert (
        "Merged Cluster" in at.success[0].value
        and first.replace("**", "").split(" and ")[0] in at.success[0].value
    )
    assert "suggests **3** categories" in texts(at)  # the tree is rebuilt for the 5 clusters


def test_slider_previews_the_cut_then_applies_it_as_one_undoable_merge(monkeypatch, tmp_path: Path) -> None:
    project = _overclustered(tmp_path)
    curation = project.curation
    at = open_app(monkeypatch, project, PAGE)
    assert _slider(at).value == 6 and "Overview at" not in texts(at)

    _slider(at).set_value(3).run()
    assert not at.exception
    page = texts(at)
    assert "Previewing 3 categories from 6 clusters" in page
    assert "**Overview at 3 categories**" in page
    for c in range(3):  # each category card joins the two halves of one class
        assert any(
            f"Cluster {2 * c}" in str(m.value) and f"Cluster {2 * c + 1}" in str(m.value) for m in at.markdown
        )
    assert page.count("60 images · 2 clusters") == 0 and page.count("30 images · 2 clusters") == 3
    assert len(curation.cluster_ids()) == 6 and project.saves == 0  # a view, not an edit
    assert "**Cluster 0**" not in page  # the per-cluster cards give way to the groups

    # the map follows the preview: its points carry the groups' names
    at.switch_page("pages/map.py").run()
    assert not at.exception
    spec = at.get("plotly_chart")[0].proto.spec
    assert "Colours show the 3 categories previewed on the Clusters page" in texts(at)
    assert "Cluster 0 + Cluster 1" in spec or "Cluster 1 + Cluster 0" in spec
    at.switch_page(PAGE).run()
    assert _slider(at).value == 3  # the preview is kept across pages

    at.button(key="apply_cut").click().run()
    assert not at.exception
    assert sorted(curation.sizes().values()) == [30, 30, 30]
    assert "Merged 6 clusters into 3 categories" in at.success[0].value
    at.switch_page("pages/map.py").run()
    assert "Cluster 0 + Cluster 1" not in at.get("plotly_chart")[0].proto.spec  # the preview ended
    at.switch_page(PAGE).run()
    at.button(key="undo").click().run()
    assert len(curation.cluster_ids()) == 6  # one undo brings all six back
    assert _slider(at).value == 6


def test_the_halves_of_a_split_just_made_are_not_suggested_back(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images", per_class=20)  # 3 clusters, one per class
    project.curation.rename(0, "reds")
    parts = project.split_cluster(0, 2)  # two halves of one class: the closest pair of the tree
    assert [project.curation.name_of(c) for c in parts] == ["reds · part 1", "reds · part 2"]
    tree = merge_view.current_tree(project, project.curation)
    assert set(tree.steps[0].left + tree.steps[0].right) == set(parts)  # what the tree puts first
    at = open_app(monkeypatch, project, PAGE)
    at.toggle(key="merge_suggestions_on").set_value(True).run()
    assert not at.exception
    shown = [str(m.value) for m in at.markdown if " and **" in str(m.value)]
    assert len(shown) == len(tree.steps) - 1, shown  # every merge of the tree but the split's own
    assert not [
        line
        for line in shown
        if line.startswith(
            ("**reds · part 1** and **reds · part 2**", "**reds · part 2** and **reds · part 1**")
        )
    ]

    at.button(key="undo").click().run()  # undone: the cluster is whole again, nothing to keep apart
    assert not at.exception and "reds" in project.curation.names.values()
    assert project.curation.split_parts() == []
