"""Maps too big to draw point by point: density view, selection of every point inside a shape,
UMAP fitted on a sample with the rest transformed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from test_app_fakes import FakeProject, open_app, texts

from turtle_core.maps.layouts import density_sample, sampled_umap_layout
from turtle_ui import figures
from turtle_ui.selection import points_in_polygon, points_in_selection


def _grid_points(step: float = 0.05) -> np.ndarray:
    ticks = np.arange(-1 + step / 2, 1, step)
    gx, gy = np.meshgrid(ticks, ticks)
    return np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float32)


def test_points_in_polygon_convex_and_concave() -> None:
    xy = _grid_points()
    square = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    inside = points_in_polygon(xy, square)
    expected = np.flatnonzero((np.abs(xy) < 0.5).all(axis=1))
    np.testing.assert_array_equal(inside, expected)

    # An L shape: the square minus its upper-right quarter (a concave polygon).
    ell = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.0], [0.0, 0.0], [0.0, 0.5], [-0.5, 0.5]])
    inside = points_in_polygon(xy, ell)
    in_square = (np.abs(xy) < 0.5).all(axis=1)
    notch = (xy[:, 0] > 0) & (xy[:, 1] > 0)
    np.testing.assert_array_equal(inside, np.flatnonzero(in_square & ~notch))
    assert len(points_in_polygon(xy, square[:2])) == 0  # not a shape


def test_selection_shapes_union_boxes_and_lassos() -> None:
    xy = _grid_points()
    box = {"x": [0.9, 0.6], "y": [0.6, 0.9]}  # corners in any order
    lasso = {"x": [-0.91, -0.58, -0.91], "y": [-0.91, -0.91, -0.58]}  # a triangle, no point on its edges
    chosen = points_in_selection(xy, [box], [lasso])
    in_box = (xy[:, 0] >= 0.6) & (xy[:, 0] <= 0.9) & (xy[:, 1] >= 0.6) & (xy[:, 1] <= 0.9)
    u, v = xy[:, 0] + 0.91, xy[:, 1] + 0.91
    in_triangle = (u > 0) & (v > 0) & (u + v < 0.33)
    np.testing.assert_array_equal(chosen, np.flatnonzero(in_box | in_triangle))
    assert points_in_selection(xy, [], []).size == 0


def test_density_figure_draws_every_point_as_density_and_a_sample_on_top() -> None:
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(100_000, 2)).astype(np.float32)
    assign = rng.integers(0, 5, size=len(xy)).astype(np.int32)
    conf = rng.uniform(size=len(xy)).astype(np.float32)
    sample = density_sample(len(xy), 2_000)
    assert len(sample) == 2_000 and np.all(np.diff(sample) > 0)
    np.testing.assert_array_equal(sample, density_sample(len(xy), 2_000))  # the same every rerun
    grid = figures.density_grid(xy, bins=100)
    assert grid[0].shape == (100, 100) and grid[0].sum() == len(xy)
    fig = figures.density_figure(
        grid, xy[sample], assign[sample], conf[sample], {}, [f"{i}.png" for i in sample]
    )
    assert isinstance(fig.data[0], go.Heatmap) and isinstance(fig.data[1], go.Scattergl)
    assert len(fig.data[1].x) == 2_000  # what the browser draws, not 100,000 points
    assert len(fig.to_json()) < 2_000_000


def test_map_page_density_view_selects_every_point_inside_the_lasso(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = FakeProject(tmp_path / "images", per_class=40)  # 120 points
    monkeypatch.setattr(figures, "DENSITY_ABOVE", 50)
    monkeypatch.setattr(figures, "DENSITY_SAMPLE", 30)
    at = open_app(monkeypatch, project, "pages/map.py")
    assert not at.exception
    xy = project.cached_layout("umap")
    x0, x1 = np.percentile(xy[:, 0], [10, 60])
    y0, y1 = float(xy[:, 1].min()) - 1, float(xy[:, 1].max()) + 1
    lasso = {"x": [x0, x1, x1, x0], "y": [y0, y0, y1, y1]}
    expected = points_in_polygon(xy, np.column_stack([lasso["x"], lasso["y"]]))
    drawn = np.intersect1d(expected, density_sample(len(xy), 30))
    assert len(expected) > len(drawn) > 0

    key = f"map:{project.discovery.discovery_id[:12]}:{at.session_state['edit_nonce']}"
    at.session_state[key] = {"selection": {"points": [], "point_indices": [], "box": [], "lasso": [lasso]}}
    at.run()
    assert not at.exception
    assert f"**{len(expected)} images selected**" in texts(at)
    chart = at.get("plotly_chart")[0]
    assert '"type":"heatmap"' in chart.proto.spec.replace(" ", "")


@pytest.mark.slow
def test_sampled_umap_keeps_transformed_points_with_their_blob() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 24)) * 6
    truth = np.repeat(np.arange(3), 500)
    X = (centres[truth] + rng.normal(size=(len(truth), 24))).astype(np.float32)
    layout = sampled_umap_layout(X, fit_rows=300, n_neighbors=10, pca_dims=10)
    assert layout.shape == (1500, 2) and np.isfinite(layout).all()
    # Every point's nearest layout neighbours belong to its own blob, sampled or transformed alike.
    distances = ((layout[:, None, :] - layout[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :10]
    purity = (truth[nearest] == truth[:, None]).mean()
    assert purity > 0.97
