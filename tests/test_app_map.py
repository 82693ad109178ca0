"""Map page and its figure: one WebGL trace, PCA while UMAP computes, selection → move / exclude."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from test_app_fakes import FakeProject, open_app, texts, wait_for_job

from turtle_core.constants import EXCLUDED
from turtle_ui.figures import cluster_colours, scatter_figure

PAGE = "pages/map.py"


def _select(at, indices: list[int]):
    """Seed the chart's selection the way the browser reports a lasso (AppTest cannot draw one)."""
    key = at.get("plotly_chart")[0].key  # map:<discovery id>:<edit nonce>
    at.session_state[key] = {"selection": {"points": [], "point_indices": indices, "box": [], "lasso": []}}
    return at.run()


def test_figure_is_one_webgl_trace_with_row_order() -> None:
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(500, 2))
    assign = np.repeat([0, 1, 2, EXCLUDED], 125).astype(np.int32)
    conf = rng.uniform(size=500).astype(np.float32)
    names = {0: "cats", 1: "dogs", 2: "owls"}
    files = [f"img_{i}.png" for i in range(500)]
    fig = scatter_figure(xy, assign, conf, names, files)
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Scattergl)
    trace = fig.data[0]
    assert np.allclose(np.asarray(trace.x), xy[:, 0].astype(np.float32))
    assert trace.text[0] == f"<b>cats</b> · {conf[0]:.2f}<br>img_0.png"
    assert trace.text[499].startswith("<b>Excluded</b>")
    # Colour per point = the cluster's colour through the step colour scale.
    colours = cluster_colours([EXCLUDED, 0, 1, 2])
    scale = trace.marker.colorscale  # two stops per cluster rank: [r/k, colour], [(r+1)/k, colour]
    rank = np.asarray(trace.marker.color)
    assert (trace.marker.cmin, trace.marker.cmax) == (-0.5, 3.5)
    assert scale[2 * rank[0]][1] == scale[2 * rank[0] + 1][1] == colours[0]
    assert scale[2 * rank[499]][1] == colours[EXCLUDED]
    assert len({scale[2 * r][1] for r in np.unique(rank)}) == 4
    assert [a.text for a in fig.layout.annotations] == [
        f'<span style="color:{colours[c]}">●</span> {name}' for c, name in names.items()
    ]  # each name led by a dot in its cluster's colour

    by_conf = scatter_figure(xy, assign, conf, names, files, colour_by="confidence")
    assert np.allclose(np.asarray(by_conf.data[0].marker.color), conf)
    assert by_conf.data[0].marker.showscale


def test_page_draws_the_map_with_umap_when_cached(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project, PAGE)
    assert not at.exception
    assert at.get("plotly_chart")[0].key == f"map:{fake_project.discovery.discovery_id[:12]}:0"
    assert "36 images · 3 clusters" in texts(at)
    assert "Draw a lasso" in at.info[0].value
    assert "Showing the PCA layout" not in texts(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [trace["type"] for trace in spec["data"]] == ["scattergl"]
    assert spec["layout"]["dragmode"] == "lasso"
    at.segmented_control(key="map_tool").set_value("Click").run()
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["dragmode"] == "pan"


def test_pca_is_shown_while_umap_computes_in_the_background(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    cached: dict[str, np.ndarray] = {}
    monkeypatch.setattr(fake_project, "cached_layout", lambda method: cached.get(method))

    def slow_umap(method, progress=None, cancel=None):
        if method == "pca":
            return fake_project._xy
        cached["umap"] = fake_project._xy * 2
        return cached["umap"]

    monkeypatch.setattr(fake_project, "layout", slow_umap)
    at = open_app(monkeypatch, fake_project, PAGE)
    assert not at.exception
    assert "Showing the PCA layout while UMAP" in texts(at)
    wait_for_job(at, fake_project, "umap")
    assert "Showing the PCA layout" not in texts(at)  # swapped in once the job finished
    at.segmented_control(key="map_layout").set_value("PCA").run()
    assert not at.exception


def test_stop_umap_cancels_it_and_it_stays_cancelled_until_asked_again(monkeypatch, tmp_path: Path) -> None:
    import threading

    from turtle_core.progress import check_cancel
    from turtle_ui import jobs as jobs_ui

    fake_project = FakeProject(tmp_path / "images")
    cached: dict[str, np.ndarray] = {}
    monkeypatch.setattr(fake_project, "cached_layout", lambda method: cached.get(method))
    started, release = threading.Event(), threading.Event()

    def umap_until_cancelled(method, progress=None, cancel=None):
        if method == "pca":
            return fake_project._xy
        started.set()
        while not release.is_set():  # UMAP's epochs, stopped by the watch when cancelled
            check_cancel(cancel)
            release.wait(0.01)
        cached["umap"] = fake_project._xy * 2
        return cached["umap"]

    monkeypatch.setattr(fake_project, "layout", umap_until_cancelled)
    at = open_app(monkeypatch, fake_project, PAGE)
    assert started.wait(10)
    first = jobs_ui.project_job(fake_project, "umap")
    at.button(key="stop_umap").click().run()
    assert first.wait(10) and first.state == "cancelled"
    at.run()
    assert not at.exception
    assert "UMAP was cancelled; showing PCA." in texts(at)
    at.run()
    assert jobs_ui.project_job(fake_project, "umap") is first  # not started again behind the curator's back

    release.set()
    at.button(key="restart_umap").click().run()
    again = wait_for_job(at, fake_project, "umap")
    assert again is not first and again.state == "done"
    assert "cancelled" not in texts(at) and "Showing the PCA layout" not in texts(at)


def test_lasso_selection_moves_to_a_new_cluster(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    curation = fake_project.curation
    at = open_app(monkeypatch, fake_project, PAGE)
    _select(at, [0, 1, 13])
    assert not at.exception
    assert "**3 images selected**" in texts(at)
    assert "Cluster 0: 2" in texts(at)
    assert len(at.get("image")) == 3  # the gallery of the selection
    assert at.selectbox[0].value == -2  # "New cluster" by default on the map
    at.text_input[0].set_value("odd ones")
    at.button(key="map:move").click().run()
    assert not at.exception
    cid = next(c for c in curation.cluster_ids() if curation.name_of(c) == "odd ones")
    assert curation.members(cid).tolist() == [0, 1, 13]
    assert fake_project.saves == 1
    assert "new cluster 'odd ones'" in at.success[0].value
    # The chart was re-keyed, so the old selection is gone.
    discovery_id = fake_project.discovery.discovery_id[:12]
    assert at.get("plotly_chart")[0].key == f"map:{discovery_id}:{at.session_state['edit_nonce']}"
    assert "Draw a lasso" in at.info[0].value


def test_an_image_un_ticked_in_the_selection_is_left_out_of_the_move(monkeypatch, tmp_path: Path) -> None:
    from turtle_ui.gallery import image_token

    fake_project = FakeProject(tmp_path / "images")
    curation = fake_project.curation
    at = open_app(monkeypatch, fake_project, PAGE)
    _select(at, [0, 1, 13])
    boxes = at.get("checkbox")
    assert len(boxes) == 3 and all(box.value for box in boxes)  # every selected image starts ticked
    token = image_token(fake_project.images[13].path)
    next(box for box in at.checkbox if box.key.endswith(token)).uncheck().run()
    assert not at.exception
    assert "**2 of 3 selected images** · 1 un-ticked" in texts(at)
    at.text_input[0].set_value("two of them")
    at.button(key="map:move").click().run()
    assert not at.exception
    cid = next(c for c in curation.cluster_ids() if curation.name_of(c) == "two of them")
    assert curation.members(cid).tolist() == [0, 1]  # the un-ticked image stayed where it was
    assert curation.assignments[13] != cid


def test_click_on_one_point_shows_the_image_and_exclude(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    curation = fake_project.curation
    at = open_app(monkeypatch, fake_project, PAGE)
    _select(at, [5])
    assert not at.exception
    page = texts(at)
    assert "**cats_005.png**" in page
    assert "Cluster 0 · confidence" in page
    assert len(at.get("image")) == 1
    at.button(key="map:exclude").click().run()
    assert curation.assignments[5] == EXCLUDED


@pytest.mark.parametrize("n", [50_000])
def test_figure_at_50k_points_is_one_compact_trace(n: int) -> None:
    # Its build time is measured by benchmarks/app_speed.py, not asserted here (the machines are noisy).
    rng = np.random.default_rng(0)
    fig = scatter_figure(
        rng.normal(size=(n, 2)),
        rng.integers(0, 20, n).astype(np.int32),
        rng.uniform(size=n).astype(np.float32),
        {},
        [f"{i}.jpg" for i in range(n)],
    )
    payload = fig.to_json()
    assert len(fig.data) == 1
    assert len(payload) < 8_000_000


def test_cluster_names_never_cover_each_other_and_leave_the_points_visible() -> None:
    from turtle_ui.figures import label_box_px, place_labels

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [0.05, 0.0], [0.0, 0.05], [0.04, 0.04], [5.0, 5.0]])  # four crowded
    labels = np.repeat(np.arange(5), 40)
    xy = centres[labels] + 0.01 * rng.normal(size=(labels.size, 2))
    names = {c: f"a long cluster name {c}" for c in range(5)}
    figure = scatter_figure(xy, labels, np.full(labels.size, 0.5), names, ["x.png"] * labels.size, height=500)
    notes = figure.layout.annotations
    assert len(notes) == 5 and all(note.bgcolor is None for note in notes)  # text with a halo, no box
    assert figure.layout.yaxis.scaleanchor is None  # the points fill the plot

    per_px = np.ptp(xy, axis=0) / np.array([500 * 1.4, 500])
    boxes = [(np.array([n.x, n.y]), np.array(label_box_px(names[i])) * per_px) for i, n in enumerate(notes)]
    for i, (a, size_a) in enumerate(boxes):
        for b, size_b in boxes[i + 1 :]:
            assert np.any(np.abs(a - b) >= (size_a + size_b) / 2 - 1e-9)  # apart in x or in y
    far = np.array([notes[4].x, notes[4].y])
    assert np.allclose(far, np.median(xy[labels == 4], axis=0))  # a name with room stays at its median
    spots = place_labels(np.zeros((1, 2)), ["solo"], np.array([1]), xy, 500)
    assert np.allclose(spots, 0.0)
