"""An edit is one run of the page: its button's callback applies it before the script runs, so the run the
click starts draws the new state (no second run through `st.rerun`), and it acts on the values the widgets
hold at the click (a name typed, a target picked, images ticked just before it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_app_fakes import FakeProject, open_app, texts

from turtle_core.constants import EXCLUDED
from turtle_ui.edits import NEW_CLUSTER

CLUSTERS, MAP = "pages/clusters.py", "pages/map.py"


class PageRuns:
    """Counts the page script's runs: every page calls `session.through_app` first."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from turtle_ui import session

        self.count = 0
        through_app = session.through_app

        def counted() -> None:
            self.count += 1
            through_app()

        monkeypatch.setattr(session, "through_app", counted)

    def of(self, at, action: Callable[[], object]) -> int:
        """The runs `action` (a click's `.run()`) takes; the page must not have failed."""
        before = self.count
        action()
        assert not at.exception, at.exception
        return self.count - before


def _by_key(at, kind: str, prefix: str):
    return [w for w in getattr(at, kind) if w.key and w.key.startswith(prefix)]


def test_overview_edits_undo_and_redo_are_one_run_each(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    curation = project.curation
    runs = PageRuns(monkeypatch)
    at = open_app(monkeypatch, project, CLUSTERS)

    # The cluster and the name are chosen in the click's own interaction, as a browser sends a typed name.
    _by_key(at, "selectbox", "rename_cid")[0].set_value(2)
    _by_key(at, "text_input", "rename_name")[0].set_value("owls")
    assert runs.of(at, at.button(key="rename").click().run) == 1
    assert curation.name_of(2) == "owls"
    assert "Renamed 'Cluster 2' to 'owls'." in at.success[0].value
    assert "**owls**" in texts(at)
    assert "Last edit: Renamed 'Cluster 2' to 'owls'" in texts(at)  # the undo bar above the button

    _by_key(at, "multiselect", "merge_cids")[0].set_value([0, 1]).run()
    _by_key(at, "text_input", "merge_name")[0].set_value("pets")
    assert runs.of(at, at.button(key="merge").click().run) == 1
    assert curation.sizes() == {0: 24, 2: 12} and curation.name_of(0) == "pets"
    assert "Merged 2 clusters into 'pets'." in at.success[0].value

    assert runs.of(at, at.button(key="undo").click().run) == 1
    assert curation.sizes() == {0: 12, 1: 12, 2: 12}
    assert "Undone: Merged 'Cluster 0', 'Cluster 1' into 'pets'" in at.success[0].value
    assert runs.of(at, at.button(key="redo").click().run) == 1
    assert curation.sizes() == {0: 24, 2: 12}


def test_a_refused_edit_is_one_run_says_why_and_keeps_what_was_typed(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    runs = PageRuns(monkeypatch)
    at = open_app(monkeypatch, project, CLUSTERS)
    _by_key(at, "selectbox", "rename_cid")[0].set_value(0)
    _by_key(at, "text_input", "rename_name")[0].set_value("Cluster 2")  # another cluster's name
    assert runs.of(at, at.button(key="rename").click().run) == 1
    assert "already named 'Cluster 2'" in at.error[0].value
    assert project.curation.name_of(0) == "Cluster 0" and project.saves == 0
    assert _by_key(at, "text_input", "rename_name")[0].value == "Cluster 2"  # to correct, not to type again


def test_gallery_edits_are_one_run_and_take_the_ticks_at_the_click(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    curation = project.curation
    runs = PageRuns(monkeypatch)
    at = open_app(monkeypatch, project, CLUSTERS)
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    _by_key(at, "selectbox", "cluster0:target")[0].set_value(NEW_CLUSTER).run()
    boxes = _by_key(at, "checkbox", "pick:cluster0:")
    boxes[0].check().run()
    # A second tick, the new name and the click arrive together: the move takes both ticks and the name.
    _by_key(at, "checkbox", "pick:cluster0:")[1].check()
    _by_key(at, "text_input", "cluster0:name")[0].set_value("unsure")
    assert runs.of(at, at.button(key="cluster0:move").click().run) == 1
    (new,) = [c for c in curation.cluster_ids() if curation.name_of(c) == "unsure"]
    assert curation.sizes()[new] == 2
    assert "Moved 2 images to the new cluster 'unsure'." in at.success[0].value
    assert not any(box.value for box in _by_key(at, "checkbox", "pick:"))  # selections reset

    _by_key(at, "checkbox", "pick:cluster0:")[0].check().run()
    assert runs.of(at, at.button(key="cluster0:confirm").click().run) == 1
    assert int(curation.checked.sum()) == 3
    _by_key(at, "checkbox", "pick:cluster0:")[0].check().run()
    assert runs.of(at, at.button(key="cluster0:exclude").click().run) == 1
    assert int((curation.assignments == EXCLUDED).sum()) == 1


def test_a_keyboard_review_answer_is_one_run(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    runs = PageRuns(monkeypatch)
    at = open_app(monkeypatch, project, CLUSTERS)
    at.segmented_control(key="clusters_view").set_value("Review queue").run()
    at.slider(key="review_threshold").set_value(0.9).run()
    at.segmented_control(key="review_layout").set_value("One at a time").run()
    queue = int(texts(at).split(" of ")[1].split()[0])
    assert runs.of(at, at.button(key="review:at:confirm").click().run) == 1
    assert int(project.curation.checked.sum()) == 1
    assert f"**1 of {queue - 1} images**" in texts(at)
    assert runs.of(at, at.button(key="review:at:skip").click().run) == 1
    assert f"**2 of {queue - 1} images**" in texts(at)


def test_a_map_move_is_one_run(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images")
    curation = project.curation
    runs = PageRuns(monkeypatch)
    at = open_app(monkeypatch, project, MAP)
    key = at.get("plotly_chart")[0].key
    at.session_state[key] = {"selection": {"points": [], "point_indices": [0, 1, 13], "box": [], "lasso": []}}
    at.run()
    at.text_input[0].set_value("odd ones")
    assert runs.of(at, at.button(key="map:move").click().run) == 1
    (new,) = [c for c in curation.cluster_ids() if curation.name_of(c) == "odd ones"]
    assert np.array_equal(curation.members(new), [0, 1, 13])
    assert "new cluster 'odd ones'" in at.success[0].value
    assert "Draw a lasso" in at.info[0].value  # the chart was re-keyed: its selection is gone
