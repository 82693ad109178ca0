"""Plotly figures for the pages (no Streamlit here, so benchmarks can build them alone)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from turtle_core.names import html_text

EXCLUDED_COLOUR = "#b0b0b0"
# Kelly's colours of maximum contrast (without white, black, buff and grey, which reads as "excluded"):
# any first N of them are far apart. Then the colours of Plotly's large qualitative palettes that differ
# clearly (CIELAB ΔE ≥ 20) from every colour before them, from the excluded grey and from white: 44 in
# all. Past those, generated colours (`generated_colour`).
KELLY = [
    "#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#008856", "#E68FAC", "#0067A5", "#F99379",
    "#604E97", "#F6A600", "#B3446C", "#DCD300", "#882D17", "#8DB600", "#654522", "#E25822", "#2B3D26",
]  # fmt: skip
_PALE_OR_GREY = {"#565656", "#E2E2E2", "#F7E1A0", "#16FF32", "#1CFFCE", "#FBE426", "#F8A19F", "#DEA0FD"}
MIN_DELTA_E = 20.0
DENSITY_ABOVE = 50_000  # points; above, the map is a density view (WebGL cannot draw a million in a browser)
DENSITY_SAMPLE = 20_000  # points drawn (and clickable) on top of the density view


def cluster_colours(cluster_ids: Sequence[int]) -> dict[int, str]:
    """A stable colour per cluster id (by id, so a cluster keeps its colour across edits, and a new cluster,
    which gets a new id, never takes an existing cluster's colour): the palette, then generated colours.
    Two generated colours that round to the same sRGB value (rare, far past the palette) are told apart by
    nudging the later one's lightness."""
    colours: dict[int, str] = {}
    used: set[str] = set()
    for cid in sorted({int(c) for c in cluster_ids}):
        colour = colour_of(cid)
        nudge = 0
        while cid >= 0 and colour in used:
            nudge += 1
            colour = generated_colour(cid - len(PALETTE), lightness_shift=nudge)
        colours[cid] = colour
        used.add(colour)
    return colours


def colour_of(cluster_id: int) -> str:
    if cluster_id < 0:
        return EXCLUDED_COLOUR
    if cluster_id < len(PALETTE):
        return PALETTE[cluster_id]
    return generated_colour(cluster_id - len(PALETTE))


def generated_colour(n: int, lightness_shift: float = 0.0) -> str:
    """The n-th colour past the palette: hues a golden angle apart (consecutive ones far apart), three
    lightness and three chroma levels that stay inside the sRGB gamut, in CIELCh so equal steps look equal."""
    hue = np.deg2rad((n * 137.508 + 20.0) % 360.0)
    lightness = (60.0, 47.0, 72.0)[n % 3] + lightness_shift
    chroma = (45.0, 38.0, 31.0)[(n // 3) % 3]
    return lab_to_hex(lightness, chroma * float(np.cos(hue)), chroma * float(np.sin(hue)))


_WHITE = np.array([0.95047, 1.0, 1.08883])  # D65
_XYZ_TO_RGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


def lab_to_hex(lightness: float, a: float, b: float) -> str:
    """CIELAB (D65) to an sRGB hex colour, clipped into the gamut."""
    fy = (lightness + 16.0) / 116.0
    f = np.array([fy + a / 500.0, fy, fy - b / 200.0])
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    linear = np.clip(_XYZ_TO_RGB @ xyz, 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    r, g, b_ = (int(round(float(v) * 255)) for v in srgb)
    return f"#{r:02X}{g:02X}{b_:02X}"


def hex_to_lab(colour: str) -> np.ndarray:
    """An sRGB hex colour in CIELAB (D65): distances there follow perceived differences (ΔE)."""
    srgb = np.array([int(colour.lstrip("#")[i : i + 2], 16) / 255.0 for i in (0, 2, 4)])
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    t = (np.linalg.inv(_XYZ_TO_RGB) @ linear) / _WHITE
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def scatter_figure(
    xy: np.ndarray,
    assignments: np.ndarray,
    confidence: np.ndarray,
    names: Mapping[int, str],
    file_names: Sequence[str],
    *,
    colour_by: Literal["cluster", "confidence"] = "cluster",
    height: int = 760,
    label_clusters: bool = True,
    dragmode: Literal["lasso", "select", "pan"] = "lasso",
) -> go.Figure:
    """One WebGL trace (so selections come back as row indices) coloured by cluster or confidence.

    Hover shows cluster name, confidence and file name; cluster names sit at the cluster medians.
    `dragmode` is the initial tool; Streamlit lets a click select a point only with "pan"."""
    assignments = np.asarray(assignments)
    n = len(assignments)
    marker_size = 7 if n <= 2_000 else 5 if n <= 20_000 else 3
    trace, ids, name_of, colours = _points_trace(
        xy, assignments, confidence, names, file_names, colour_by, marker_size, 0.85
    )
    annotations = (
        _cluster_annotations(xy, assignments, ids, name_of, colours, height)
        if label_clusters and colour_by == "cluster" and len(ids) <= 60
        else []
    )
    return go.Figure(data=[trace], layout=_map_layout(height, dragmode, annotations))


def _points_trace(
    xy: np.ndarray,
    assignments: np.ndarray,
    confidence: np.ndarray,
    names: Mapping[int, str],
    file_names: Sequence[str],
    colour_by: str,
    marker_size: int,
    opacity: float,
) -> tuple[go.Scattergl, list[int], dict[int, str], dict[int, str]]:
    """The points' WebGL trace, and the cluster ids, names and colours it uses."""
    ids = sorted({int(c) for c in np.unique(assignments)})
    name_of = {cid: names.get(cid, "Excluded" if cid < 0 else f"Cluster {cid}") for cid in ids}
    # Per-point hover text: the only per-point strings we send; everything numeric travels as typed arrays.
    # Names go through html_text: Plotly reads its HTML subset (<b>, <br>, entities) in hover text.
    lookup = [f"<b>{html_text(name_of[c])}</b> · " for c in ids]
    position = np.searchsorted(np.asarray(ids), assignments)
    hover = [
        f"{lookup[p]}{conf:.2f}<br>{html_text(fname)}"
        for p, conf, fname in zip(position.tolist(), np.asarray(confidence).tolist(), file_names, strict=True)
    ]

    colours = cluster_colours(ids)
    if colour_by == "cluster":
        # Discrete colours as a step colour scale over the cluster's rank: compact numeric payload.
        k = len(ids)
        scale: list[list[float | str]] = []
        for rank, cid in enumerate(ids):
            scale.append([rank / k, colours[cid]])
            scale.append([(rank + 1) / k, colours[cid]])
        marker = {
            "color": position.astype(np.int32),
            "colorscale": scale,
            "cmin": -0.5,
            "cmax": k - 0.5,
            "showscale": False,
            "size": marker_size,
            "opacity": opacity,
        }
        # With a single cluster the scale collapses; fall back to its one colour.
        if k == 1:
            marker = {"color": colours[ids[0]], "size": marker_size, "opacity": opacity}
    else:
        marker = {
            "color": np.asarray(confidence, dtype=np.float32),
            "colorscale": "Viridis",
            "cmin": 0.0,
            "cmax": 1.0,
            "showscale": True,
            "colorbar": {"title": {"text": "confidence"}, "thickness": 12},
            "size": marker_size,
            "opacity": opacity,
        }
    trace = go.Scattergl(
        x=np.asarray(xy[:, 0], dtype=np.float32),
        y=np.asarray(xy[:, 1], dtype=np.float32),
        mode="markers",
        marker=marker,
        text=hover,
        hovertemplate="%{text}<extra></extra>",
        showlegend=False,
    )
    return trace, ids, name_of, colours


# The plot's assumed width over its height (the map sits in a wide column; Streamlit sizes it, Plotly does not
# tell): label boxes are placed in pixels, so a wrong guess only makes them a little too far apart or close.
PLOT_ASPECT = 1.4
LABEL_FONT_PX = 12


def _cluster_annotations(
    xy: np.ndarray,
    assignments: np.ndarray,
    ids: Sequence[int],
    name_of: Mapping[int, str],
    colours: Mapping[int, str],
    height: int,
) -> list[dict]:
    """Cluster names near their members' medians, as plain dicts set in one go (`add_annotation` one by
    one re-validates every annotation before it: a third of a big map's build time). Each name is text
    with a halo, no box, so the points stay visible through it, and names never cover each other: the
    largest clusters are placed first, each at the first spot near its median that no name holds
    (`place_labels`). A dot in the cluster's colour leads the name."""
    order = np.argsort(assignments, kind="stable")
    sorted_ids = assignments[order]
    wanted, texts, sizes, shown = [], [], [], []
    for cid in ids:
        if cid < 0:
            continue
        lo, hi = np.searchsorted(sorted_ids, [cid, cid + 1])
        members = order[lo:hi]
        wanted.append(np.median(xy[members], axis=0))
        texts.append(name_of[cid])
        sizes.append(hi - lo)
        shown.append(cid)
    if not shown:
        return []
    places = place_labels(np.asarray(wanted, float), texts, np.asarray(sizes), xy, height)
    return [
        {
            "x": float(x),
            "y": float(y),
            "text": f'<span style="color:{colours[cid]}">●</span> {html_text(name)}',
            "showarrow": False,
            "font": {"size": LABEL_FONT_PX, "color": "#1f1f1f", "shadow": "auto", "weight": "bold"},
        }
        for cid, name, (x, y) in zip(shown, texts, places, strict=True)
    ]


def label_box_px(text: str) -> tuple[float, float]:
    """A label's width and height in pixels, estimated from its length (bold 12 px text and its dot)."""
    return 0.62 * LABEL_FONT_PX * (len(text) + 2) + 6, LABEL_FONT_PX + 6


def place_labels(
    wanted: np.ndarray, texts: Sequence[str], sizes: np.ndarray, xy: np.ndarray, height: int
) -> np.ndarray:
    """Where each label goes (data units): largest cluster first, each at the nearest of a ring of spots
    around its wanted place whose box overlaps no label placed before it (its wanted place when every spot
    is taken). Boxes are sized in pixels and turned into data units with the points' extent, the plot's
    `height` and `PLOT_ASPECT`."""
    span = np.maximum(np.ptp(xy, axis=0), 1e-9) if len(xy) else np.ones(2)
    per_px = span / np.array([height * PLOT_ASPECT, height])
    boxes = np.array([label_box_px(t) for t in texts]) * per_px  # (w, h) in data units
    steps = [(0.0, 0.0)] + [
        (dx, dy)
        for ring in (1, 2, 3)
        for dx, dy in (
            (0, ring),
            (0, -ring),
            (ring, 0),
            (-ring, 0),
            (ring, ring),
            (-ring, -ring),
            (ring, -ring),
            (-ring, ring),
        )
    ]
    placed: list[tuple[np.ndarray, np.ndarray]] = []
    result = np.array(wanted, dtype=float)
    for i in np.argsort(-np.asarray(sizes), kind="stable"):
        size = boxes[i]
        for dx, dy in steps:
            spot = wanted[i] + np.array([dx * 0.6 * size[0], dy * 1.1 * size[1]])
            if all(np.any(np.abs(spot - centre) >= (size + other) / 2) for centre, other in placed):
                result[i] = spot
                break
        placed.append((result[i], size))
    return result


def _map_layout(height: int, dragmode: str, annotations: list[dict]) -> dict:
    """No fixed aspect ratio: a map's two axes carry no units, so the points fill the plot."""
    return {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "dragmode": dragmode,
        "xaxis": {"visible": False},
        "yaxis": {"visible": False},
        "hovermode": "closest",
        "plot_bgcolor": "white",
        "uirevision": "map",
        "annotations": annotations,
    }


def _distinct_palette() -> list[str]:
    candidates = [c for c in qualitative.Alphabet if c.upper() not in _PALE_OR_GREY]
    candidates += qualitative.Dark24 + qualitative.Light24
    palette = list(KELLY)
    avoid = [hex_to_lab(EXCLUDED_COLOUR)] + [hex_to_lab(c) for c in palette]
    white = hex_to_lab("#FFFFFF")
    for colour in candidates:
        lab = hex_to_lab(colour)
        if (
            min(np.linalg.norm(lab - other) for other in avoid) >= MIN_DELTA_E
            and np.linalg.norm(lab - white) >= 25
        ):
            palette.append(colour.upper())
            avoid.append(lab)
    return palette


PALETTE: list[str] = _distinct_palette()


def density_grid(xy: np.ndarray, bins: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point counts on a `bins` × `bins` grid over the layout: (counts[y, x], x centres, y centres)."""
    counts, x_edges, y_edges = np.histogram2d(xy[:, 0], xy[:, 1], bins=bins)
    return counts.T, (x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2


def density_figure(
    grid: tuple[np.ndarray, np.ndarray, np.ndarray],
    xy_sample: np.ndarray,
    assignments: np.ndarray,
    confidence: np.ndarray,
    names: Mapping[int, str],
    file_names: Sequence[str],
    *,
    colour_by: Literal["cluster", "confidence"] = "cluster",
    height: int = 620,
    dragmode: Literal["lasso", "select", "pan"] = "lasso",
) -> go.Figure:
    """A map too big to draw point by point: a heatmap of every point's density (log scale) under
    the sampled points (`xy_sample` with their cluster, confidence and file name), which can be
    lassoed as usual; the page then selects every point inside the shape, not only the drawn ones.
    The sampled points are trace 1 (the heatmap is trace 0)."""
    counts, x_centres, y_centres = grid
    heat = go.Heatmap(
        z=np.where(counts > 0, np.log10(np.maximum(counts, 1)) + 0.3, np.nan).astype(np.float32),
        x=x_centres.astype(np.float32),
        y=y_centres.astype(np.float32),
        colorscale="Greys",
        showscale=False,
        hoverinfo="skip",
        opacity=0.6,
    )
    assignments = np.asarray(assignments)
    trace, ids, name_of, colours = _points_trace(
        xy_sample, assignments, confidence, names, file_names, colour_by, 3, 0.7
    )
    annotations = (
        _cluster_annotations(xy_sample, assignments, ids, name_of, colours, height)
        if colour_by == "cluster" and len(ids) <= 60
        else []
    )
    return go.Figure(data=[heat, trace], layout=_map_layout(height, dragmode, annotations))
