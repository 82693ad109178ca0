"""Seeing the images: file names on gallery and review tiles (shortened in the middle, the full path on
hover), cluster colours that stay distinct and stable past the palette, and the Export page's nudge while
classes are still called "Cluster N"."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
from test_app_fakes import FakeProject, open_app, texts

from turtle_ui.figures import EXCLUDED_COLOUR, MIN_DELTA_E, PALETTE, cluster_colours, hex_to_lab

LONG = "cats/IMG_20240517_holiday_beach_0042_final_version.png"


def _tile_names(at) -> list[str]:
    return [m.value for m in at.markdown if 'class="tile-name"' in m.value]


def _with_a_long_file_name(tmp_path: Path) -> FakeProject:
    project = FakeProject(tmp_path / "images")
    shutil.copy(project.folder / project.images[0].path, project.folder / LONG)
    project.discovery.images[0] = dataclasses.replace(project.discovery.images[0], path=LONG)
    return project


def test_gallery_tiles_show_file_names_with_the_full_path_on_hover(monkeypatch, tmp_path: Path) -> None:
    project = _with_a_long_file_name(tmp_path)
    project.discovery.confidence[0] = 0.01  # first in "Least sure" order
    at = open_app(monkeypatch, project, "pages/clusters.py")
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    assert not at.exception
    names = _tile_names(at)
    assert len(names) == 12  # one per tile of cluster 0
    assert f'title="{LONG}"' in names[0]
    assert ">IMG_2024051…ersion.png<" in names[0]  # 22 characters, cut in the middle
    assert any(">cats_005.png<" in n and 'title="cats/cats_005.png"' in n for n in names)

    at.segmented_control(key="clusters_view").set_value("Review queue").run()
    review = _tile_names(at)
    assert review and f'title="{LONG}"' in review[0]


def test_file_names_are_escaped(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    odd = 'cats/<b>"quoted" & bold</b>.png'
    shutil.copy(project.folder / project.images[0].path, project.folder / "cats" / Path(odd).name)
    project.discovery.images[0] = dataclasses.replace(project.discovery.images[0], path=odd)
    project.discovery.confidence[0] = 0.01
    at = open_app(monkeypatch, project, "pages/clusters.py")
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    first = _tile_names(at)[0]
    assert "<b>" not in first and "&lt;b&gt;" in first and "&quot;quoted&quot;" in first


def test_palette_colours_are_far_apart_and_never_the_excluded_grey() -> None:
    assert len(PALETTE) >= 24
    labs = [hex_to_lab(c) for c in PALETTE]
    closest = min(np.linalg.norm(a - b) for a, b in itertools.combinations(labs, 2))
    assert closest >= 15  # Kelly's own closest pair; the added colours keep MIN_DELTA_E
    assert MIN_DELTA_E >= 20
    assert min(np.linalg.norm(lab - hex_to_lab(EXCLUDED_COLOUR)) for lab in labs) >= 20
    colours = cluster_colours(range(-1, 2000))
    assert len(set(colours.values())) == 2001, "no two clusters share a colour, past the palette too"
    assert colours[-1] == EXCLUDED_COLOUR
    assert cluster_colours([3, 70, 900]) == {3: colours[3], 70: colours[70], 900: colours[900]}, "by id"


def _map_colours(at) -> dict[str, str]:
    """Cluster name → colour, read from the map figure the page sent (each name is led by a dot in its colour)."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    labels = [
        re.fullmatch(r'<span style="color:(#\w+)">●</span> (.*)', a["text"])
        for a in spec["layout"]["annotations"]
    ]
    return {label.group(2): label.group(1) for label in labels if label is not None}


def test_new_clusters_never_take_an_existing_clusters_colour(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images", per_class=12)
    curation = project.curation
    at = open_app(monkeypatch, project, "pages/map.py")
    before = _map_colours(at)
    assert len(before) == 3
    # 30 new clusters, one image each (beyond ten clusters, and with the palette's neighbours in use).
    for index in range(30):
        curation.move_to_new_cluster([index], f"new {index}")
    at.run()
    assert not at.exception
    after = _map_colours(at)
    assert len(after) == len(curation.cluster_ids())
    assert len(set(after.values())) == len(after), "every cluster its own colour"
    for name, colour in before.items():
        if name in after:
            assert after[name] == colour, "existing clusters keep their colour"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["height"] >= 760, "the larger map"


def test_export_nudges_while_classes_have_automatic_names(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    curation = project.curation
    curation.rename(0, "cats")
    at = open_app(monkeypatch, project, "pages/export.py")
    nudge = " ".join(i.value for i in at.info)
    assert "2 of 3 classes still have their automatic names ('Cluster 1', 'Cluster 2')" in nudge
    assert any(link.label == "Name the clusters" for link in at.get("page_link"))
    curation.rename(1, "dogs")
    curation.rename(2, "Cluster of owls")  # a chosen name, even if it starts with "Cluster"
    at.run()
    assert "automatic names" not in texts(at)


def test_map_progress_line_does_not_repeat_its_title(monkeypatch, tmp_path: Path) -> None:
    import threading

    from turtle_core.progress import Progress, check_cancel

    project = FakeProject(tmp_path / "images")
    monkeypatch.setattr(project, "cached_layout", lambda method: None)
    gate = threading.Event()

    def slow_umap(method, progress=None, cancel=None):
        if method == "pca":
            return project._xy
        progress(Progress("layout", 0, 36, message="UMAP: loading the library"))
        while not gate.wait(0.02):
            check_cancel(cancel)
        return project._xy * 2

    monkeypatch.setattr(project, "layout", slow_umap)
    at = open_app(monkeypatch, project, "pages/map.py")
    try:
        for _ in range(100):
            at.run()
            bars = [bar.proto.text for bar in at.get("progress")]
            if any("loading" in text for text in bars):
                break
        assert any(text.startswith("UMAP: loading the library · ") for text in bars), bars
        assert not any("UMAP: UMAP" in text for text in bars)
    finally:
        gate.set()
