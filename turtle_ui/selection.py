"""The map's selection: which points a Plotly box or lasso (as Streamlit reports it) holds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Row ids of the points of `xy` (N × 2) inside `polygon` (M × 2 vertices, closed implicitly),
    by the even-odd rule; vectorised over points, one pass per edge, bounding box first."""
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(poly) < 3:
        return np.empty(0, dtype=np.int64)
    x, y = xy[:, 0], xy[:, 1]
    low, high = poly.min(axis=0), poly.max(axis=0)
    candidates = np.flatnonzero((x >= low[0]) & (x <= high[0]) & (y >= low[1]) & (y <= high[1]))
    px, py = x[candidates].astype(np.float64), y[candidates].astype(np.float64)
    inside = np.zeros(len(candidates), dtype=bool)
    for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        if y1 == y2:
            continue
        crosses = (y1 > py) != (y2 > py)
        x_at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (px < x_at)
    return candidates[inside]


def points_in_selection(xy: np.ndarray, boxes: Sequence[dict], lassos: Sequence[dict]) -> np.ndarray:
    """Row ids of every point inside any selection shape, as Streamlit's Plotly selection state
    reports them: boxes `{"x": [x0, x1], "y": [y0, y1]}`, lassos `{"x": [...], "y": [...]}`."""
    found: list[np.ndarray] = []
    for box in boxes:
        (x0, x1), (y0, y1) = sorted(box["x"][:2]), sorted(box["y"][:2])
        found.append(
            np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
        )
    for lasso in lassos:
        found.append(points_in_polygon(xy, np.column_stack([lasso["x"], lasso["y"]])))
    return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)
