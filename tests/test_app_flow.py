"""The whole loop through the app with the real engine (real scan, offline backbones, TURTLE, export)
on a tiny generated folder, with the app's "quick" discovery effort to keep the test fast."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from test_app_fakes import open_app, texts, wait_for_job


def _project(at):
    from turtle_ui import session

    return session._open_project(at.session_state["folder"])


def test_real_engine_loop(monkeypatch: pytest.MonkeyPatch, make_image_tree, tmp_path: Path) -> None:
    root = make_image_tree({"red": 6, "green": 6, "blue": 6})
    at = open_app(monkeypatch, None)
    at.text_input(key="folder_input").set_value(str(root))
    at.button[0].click().run()
    project = _project(at)
    project.set_backbones(["effnet-lite0"])  # one real backbone is enough here; the browser test uses two
    wait_for_job(at, project, "scan")
    assert "Usable images: 18" in texts(at)

    at.switch_page("pages/discover.py").run()
    assert at.number_input(key=f"k_fixed:{project.folder}").value == 3
    at.radio(key=f"effort:{project.folder}").set_value("quick").run()
    at.button(key="run_discovery").click().run()
    job = wait_for_job(at, project, "discover", timeout=300)
    assert job.state == "done", job.error and job.error.traceback
    assert not at.exception
    assert "Categories: 3" in texts(at) and "Images: 18" in texts(at)
    assert "Accuracy:" in texts(at)  # folder labels exist, so the result is scored
    kept = project.discovery.params["method"]
    assert kept in ("turtle", "kmeans")
    assert f"Partition: {'TURTLE' if kept == 'turtle' else 'k-means'}" in texts(at)
    assert project.curation is not None and project.curation.n_images == 18

    at.session_state["map_layout"] = "PCA"  # UMAP is covered by the engine's own tests
    at.switch_page("pages/map.py").run()
    assert not at.exception
    assert at.get("plotly_chart")
    key = at.get("plotly_chart")[0].key  # map:<discovery id>:<edit nonce>
    at.session_state[key] = {"selection": {"points": [], "point_indices": [0, 1, 2], "box": [], "lasso": []}}
    at.run()
    at.text_input[0].set_value("hand picked")
    at.button(key="map:move").click().run()
    assert not at.exception
    assert "hand picked" in project.curation.names.values()

    at.switch_page("pages/clusters.py").run()
    assert not at.exception
    assert "**hand picked**" in texts(at)
    assert (
        len(at.get("image")) == 4
    )  # 3 discovered clusters + the new one, each with a strip of real thumbnails

    at.switch_page("pages/export.py").run()
    at.text_input[0].set_value(str(tmp_path / "dataset")).run()
    at.button(key="export").click().run()
    export = wait_for_job(at, project, "export", timeout=60)
    assert export.state == "done", export.error and export.error.traceback
    with open(tmp_path / "dataset" / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 18
    assert sorted(r["path"] for r in rows if r["label"] == "hand picked") == sorted(
        project.images[i].path for i in (0, 1, 2)
    )
    assert len(list((tmp_path / "dataset" / "hand picked").iterdir())) == 3
