"""Map page (AppTest, no browser): when the background UMAP job finishes while the user has a selection
on the PCA stand-in, the map is not redrawn under them (a new figure is a new chart in Streamlit, so the
selection would be dropped); the UMAP layout is offered instead and shown when asked for."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from test_app_fakes import FakeProject, open_app, texts, wait_for_job

PAGE = "pages/map.py"


def _x_of_chart(at) -> object:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["x"]


def _gated_umap(monkeypatch, project: FakeProject) -> threading.Event:
    """UMAP that finishes only when the returned event is set; PCA at once."""
    cached: dict[str, np.ndarray] = {}
    gate = threading.Event()
    monkeypatch.setattr(project, "cached_layout", lambda method: cached.get(method))

    def layout(method, progress=None, cancel=None):
        if method == "pca":
            return project._xy
        assert gate.wait(20)
        cached["umap"] = project._xy * 2 + 5
        return cached["umap"]

    monkeypatch.setattr(project, "layout", layout)
    return gate


def test_finished_umap_waits_while_points_are_selected(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    gate = _gated_umap(monkeypatch, project)
    at = open_app(monkeypatch, project, PAGE)
    assert "Showing the PCA layout while UMAP" in texts(at)
    pca_x = _x_of_chart(at)

    key = at.get("plotly_chart")[0].key  # map:<discovery id>:<edit nonce>
    at.session_state[key] = {"selection": {"points": [], "point_indices": [0, 1, 13], "box": [], "lasso": []}}
    at.run()
    gate.set()
    wait_for_job(at, project, "umap")
    assert not at.exception
    assert _x_of_chart(at) == pca_x  # the same chart: the selection stays
    assert "**3 images selected**" in texts(at)
    assert "The UMAP layout is ready." in texts(at)

    at.button(key="show_umap").click().run()
    assert not at.exception
    assert _x_of_chart(at) != pca_x
    assert "The UMAP layout is ready." not in texts(at)


def test_finished_umap_is_shown_when_nothing_is_selected(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    gate = _gated_umap(monkeypatch, project)
    at = open_app(monkeypatch, project, PAGE)
    pca_x = _x_of_chart(at)
    gate.set()
    wait_for_job(at, project, "umap")
    assert not at.exception
    assert _x_of_chart(at) != pca_x
    assert "Showing the PCA layout" not in texts(at)
    assert "The UMAP layout is ready." not in texts(at)


def test_choosing_umap_shows_it_even_with_a_selection(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    gate = _gated_umap(monkeypatch, project)
    at = open_app(monkeypatch, project, PAGE)
    at.segmented_control(key="map_layout").set_value("PCA").run()
    gate.set()
    wait_for_job(at, project, "umap")
    pca_x = _x_of_chart(at)
    key = at.get("plotly_chart")[0].key  # map:<discovery id>:<edit nonce>
    at.session_state[key] = {"selection": {"points": [], "point_indices": [2, 3], "box": [], "lasso": []}}
    at.run()
    assert _x_of_chart(at) == pca_x  # the user's PCA choice is kept although UMAP is ready

    at.segmented_control(key="map_layout").set_value("UMAP").run()  # asked for: shown at once
    assert not at.exception
    assert _x_of_chart(at) != pca_x
    assert "The UMAP layout is ready." not in texts(at)
