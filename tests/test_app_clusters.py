"""Clusters page: overview, rename/merge/split, gallery selection edits, review queue, undo/redo."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from test_app_fakes import FakeProject, open_app, texts, wait_for_job

from turtle_core.constants import EXCLUDED

PAGE = "pages/clusters.py"


def _by_key(at, kind: str, prefix: str):
    return [w for w in getattr(at, kind) if w.key and w.key.startswith(prefix)]


def _row(project, checkbox_key: str) -> int:
    """The image row a gallery tick box stands for (tick boxes are keyed by image identity)."""
    from turtle_ui.gallery import image_token

    token = checkbox_key.rsplit(":", 1)[1]
    (row,) = [i for i, record in enumerate(project.images) if image_token(record.path) == token]
    return row


def test_overview_lists_every_cluster_with_typical_images(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project, PAGE)
    assert not at.exception
    page = texts(at)
    for cid in range(3):
        assert f"**Cluster {cid}**" in page
    assert page.count("12 images · mean confidence") == 3
    assert "Clusters: 3" in page and "Accuracy vs folders: 95.0%" in page
    strips = at.get("image")
    assert len(strips) == 3  # one strip of typical images per cluster
    assert [len(strip.value) for strip in strips] == [5, 5, 5]


def test_rename_merge_and_sidebar_undo_redo(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    curation = fake_project.curation
    at = open_app(monkeypatch, fake_project, PAGE)
    _by_key(at, "selectbox", "rename_cid")[0].set_value(1)
    _by_key(at, "text_input", "rename_name")[0].set_value("  dogs ")
    at.button(key="rename").click().run()
    assert not at.exception
    assert curation.name_of(1) == "dogs"
    assert fake_project.saves == 1
    assert "Renamed 'Cluster 1' to 'dogs'." in at.success[0].value
    assert "**dogs**" in texts(at)

    _by_key(at, "multiselect", "merge_cids")[0].set_value([1, 2]).run()
    _by_key(at, "text_input", "merge_name")[0].set_value("pets")
    at.button(key="merge").click().run()
    assert not at.exception
    assert curation.sizes() == {0: 12, 1: 24}
    assert curation.name_of(1) == "pets"

    at.button(key="undo").click().run()
    assert curation.sizes() == {0: 12, 1: 12, 2: 12}
    assert curation.name_of(1) == "dogs"
    assert "Undone: Merged" in at.success[0].value
    at.button(key="redo").click().run()
    assert curation.sizes() == {0: 12, 1: 24}
    assert fake_project.saves == 4
    assert not at.exception


def test_bad_edit_shows_the_engine_message(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project, PAGE)
    _by_key(at, "selectbox", "rename_cid")[0].set_value(0)
    _by_key(at, "text_input", "rename_name")[0].set_value("Cluster 2")  # taken
    at.button(key="rename").click().run()
    assert not at.exception
    assert "already named 'Cluster 2'" in at.error[0].value
    assert fake_project.curation.name_of(0) == "Cluster 0"


def test_gallery_selection_moves_images_to_a_new_cluster(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    curation = fake_project.curation
    at = open_app(monkeypatch, fake_project, PAGE)
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    assert not at.exception
    assert at.selectbox(key="gallery_cluster").value == 0
    boxes = _by_key(at, "checkbox", "pick:cluster0:")
    assert len(boxes) == 12
    # Least sure first: the first cell holds the lowest confidence (captions are confidences).
    confidences = [float(b.label) for b in boxes]
    assert confidences[0] == min(confidences)
    at.segmented_control(key="gallery_sort").set_value("Most typical").run()
    assert float(_by_key(at, "checkbox", "pick:cluster0:")[0].label) == max(confidences)
    boxes = _by_key(at, "checkbox", "pick:cluster0:")
    picked = [_row(fake_project, b.key) for b in boxes[:2]]
    boxes[0].check()
    boxes[1].check().run()
    assert "**2 selected**" in texts(at)
    _by_key(at, "selectbox", "cluster0:target")[0].set_value(-2)  # new cluster
    at.run()
    _by_key(at, "text_input", "cluster0:name")[0].set_value("unsure")
    at.button(key="cluster0:move").click().run()
    assert not at.exception
    new = [cid for cid in curation.cluster_ids() if curation.name_of(cid) == "unsure"]
    assert len(new) == 1
    assert sorted(curation.members(new[0]).tolist()) == sorted(picked)
    assert curation.checked[picked].all()
    # Selections are reset after an edit.
    assert not any(b.value for b in _by_key(at, "checkbox", "pick:"))


def test_gallery_pages_keep_their_ticks(monkeypatch, tmp_path) -> None:
    project = FakeProject(tmp_path / "images", per_class=60)
    at = open_app(monkeypatch, project, PAGE)
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    assert len(_by_key(at, "checkbox", "pick:cluster0:")) == 48
    at.button(key="cluster0:all").click().run()
    assert "**48 selected**" in texts(at)
    at.number_input(key="page:cluster0").set_value(2).run()
    assert len(_by_key(at, "checkbox", "pick:cluster0:")) == 12
    _by_key(at, "checkbox", "pick:cluster0:")[0].check().run()
    assert "**49 selected**" in texts(at)
    at.button(key="cluster0:exclude").click().run()
    assert int((project.curation.assignments == EXCLUDED).sum()) == 49


def _review_queue(monkeypatch, tmp_path: Path, below: float):
    """The Clusters page on the review queue of the images less sure than `below`."""
    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project, PAGE)
    at.segmented_control(key="clusters_view").set_value("Review queue").run()
    at.slider(key="review_threshold").set_value(below).run()
    return at, fake_project, fake_project.curation, fake_project.discovery.confidence


def test_review_queue_and_restore_from_excluded(monkeypatch, tmp_path: Path) -> None:
    at, fake_project, curation, confidence = _review_queue(monkeypatch, tmp_path, 0.5)
    expected = int((confidence < 0.5).sum())
    assert f"{expected} images to review" in texts(at)
    boxes = _by_key(at, "checkbox", "pick:review:")
    assert len(boxes) == expected
    lowest = int(np.argmin(confidence))
    assert _row(fake_project, boxes[0].key) == lowest
    boxes[0].check().run()
    at.button(key="review:exclude").click().run()
    assert curation.assignments[lowest] == EXCLUDED
    assert f"{expected - 1} images to review" in texts(at)

    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    at.selectbox(key="gallery_cluster").set_value(EXCLUDED).run()
    boxes = _by_key(at, "checkbox", f"pick:cluster{EXCLUDED}:")
    assert len(boxes) == 1
    boxes[0].check().run()
    at.button(key=f"cluster{EXCLUDED}:restore").click().run()
    assert not at.exception
    assert curation.assignments[lowest] == fake_project.discovery.labels[lowest]


def test_one_at_a_time_review_confirms_moves_and_skips_with_keyboard_buttons(
    monkeypatch, tmp_path: Path
) -> None:
    at, fake_project, curation, confidence = _review_queue(monkeypatch, tmp_path, 0.9)
    at.segmented_control(key="review_layout").set_value("One at a time").run()
    assert not at.exception
    queue = np.argsort(confidence, kind="stable")
    queue = queue[confidence[queue] < 0.9]
    first, second, third = (int(i) for i in queue[:3])
    assert f"**1 of {queue.size} images**" in texts(at)
    assert not at.get("checkbox")  # one image, no gallery of tick boxes

    at.button(key="review:at:confirm").click().run()  # Y: its label is right
    assert curation.checked[first] and curation.assignments[first] == fake_project.discovery.labels[first]
    assert f"**1 of {queue.size - 1} images**" in texts(at)  # it left the queue; the next one shows

    at.button(key="review:at:skip").click().run()  # →
    assert f"**2 of {queue.size - 1} images**" in texts(at)
    at.button(key="review:at:back").click().run()  # ←
    assert f"**1 of {queue.size - 1} images**" in texts(at)

    target = next(c for c in curation.cluster_ids() if c != curation.assignments[second])
    at.button(key=f"review:at:move:{target}").click().run()  # a digit key: wrong, it belongs there
    assert not at.exception
    assert curation.assignments[second] == target and curation.checked[second]
    assert f"**1 of {queue.size - 2} images**" in texts(at)
    assert not curation.checked[third]


def test_edits_pause_while_discovery_runs(monkeypatch, tmp_path: Path) -> None:
    import threading

    fake_project = FakeProject(tmp_path / "images")
    fake_project.discover_gate = threading.Event()
    at = open_app(monkeypatch, fake_project, "pages/discover.py")
    at.button(key="run_discovery").click().run()
    at.switch_page(PAGE).run()
    assert "editing is paused" in at.warning[0].value
    assert at.button(key="rename").disabled and at.button(key="split").disabled
    assert at.button(key="undo").disabled
    fake_project.discover_gate.set()
    wait_for_job(at, fake_project, "discover")
    assert not at.warning
    assert not at.button(key="rename").disabled


def test_ticks_follow_the_images_not_the_rows_after_a_rescan(monkeypatch, tmp_path: Path) -> None:
    """Defect 5: a rescan that finds a new file shifts every row; Exclude still acts on the ticked image."""
    from dataclasses import replace

    from PIL import Image

    from turtle_core.ingest.scan import ImageRecord

    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project, PAGE)
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    box = _by_key(at, "checkbox", "pick:cluster0:")[0]
    ticked = fake_project.images[_row(fake_project, box.key)].path
    box.check().run()

    Image.new("RGB", (40, 40), (1, 2, 3)).save(fake_project.folder / "cats" / "aaa_new.png")
    old = fake_project.discovery
    record = ImageRecord("cats/aaa_new.png", 1, 0, "new-hash", 40, 40, "cats")
    fake_project.state.install_discovery(  # a rescan + rediscovery finished meanwhile: rows moved by one
        replace(
            old,
            images=[record, *old.images],
            labels=np.concatenate([[0], old.labels]).astype(np.int32),
            probabilities=np.concatenate([old.probabilities[:1], old.probabilities]),
            confidence=np.concatenate([[0.5], old.confidence]).astype(np.float32),
            discovery_id="rediscovered",
        )
    )
    at.run()
    assert "**1 selected**" in texts(at)
    at.button(key="cluster0:exclude").click().run()
    assert not at.exception
    curation = fake_project.curation
    assert [fake_project.images[row].path for row in curation.excluded()] == [ticked]


def test_undo_says_whose_edit_it_reverts_and_never_undoes_one_it_did_not_show(
    monkeypatch, tmp_path: Path
) -> None:
    from turtle_core.state import edits

    fake_project = FakeProject(tmp_path / "images")
    curation = fake_project.curation
    snap = fake_project.snapshot()
    fake_project.apply(
        edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name="cats", origin="tab:other")
    )
    at = open_app(monkeypatch, fake_project, PAGE)
    assert at.button(key="undo").label == "Undo theirs"
    assert "Last edit, by another tab: Renamed 'Cluster 0' to 'cats'" in texts(at)

    # This tab's own edit: a plain Undo again.
    _by_key(at, "selectbox", "rename_cid")[0].set_value(1)
    _by_key(at, "text_input", "rename_name")[0].set_value("dogs")
    at.button(key="rename").click().run()
    assert at.button(key="undo").label == "Undo"

    # The command line edits after the page was drawn: the tab's Undo meant "dogs", so nothing is undone.
    fake_project.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=2, name="owls", origin="cli"))
    at.button(key="undo").click().run()
    assert not at.exception
    assert curation.name_of(2) == "owls" and curation.name_of(1) == "dogs"
    assert "nothing was undone" in at.warning[0].value
    assert "Last edit, by the command line" in texts(at)


def test_counts_say_1_image_not_1_images(monkeypatch, tmp_path: Path) -> None:
    from turtle_ui.fmt import fmt_count

    assert [fmt_count(n, "image") for n in (0, 1, 2, 1234)] == [
        "0 images",
        "1 image",
        "2 images",
        "1\u202f234 images",
    ]
    assert fmt_count(1, "category", "categories") == "1 category"
    assert fmt_count(3, "category", "categories") == "3 categories"

    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project, PAGE)
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    _by_key(at, "checkbox", "pick:cluster0:")[0].check().run()
    assert at.button(key="cluster0:move").label == "Move 1 image"
    _by_key(at, "selectbox", "cluster0:target")[0].set_value(1).run()
    at.button(key="cluster0:move").click().run()
    assert not at.exception
    assert at.success[0].value == "Moved 1 image to 'Cluster 1'."
    at.segmented_control(key="clusters_view").set_value("Overview").run()
    fake_project.curation.move(fake_project.curation.members(2)[1:], 0)  # a cluster of a single image
    at.run()
    page = texts(at)
    assert "1 image · mean confidence" in page
    assert not re.search(r"\b1 images", page)


def _browser_keeps_labels(monkeypatch) -> None:
    """Make AppTest send back what a browser sends for a select box: the label of the option picked, as the
    browser was last given it. AppTest re-formats the value with the current labels; a browser keeps the
    old label (say "Cluster 1 (12)" after a move made it 11) until the app sends it a new value."""
    from streamlit.testing.v1.element_tree import InitialValue, Selectbox

    given: dict[str, str] = {}
    formatted = Selectbox._widget_state.fget

    def sent(self):
        state = formatted(self)
        if not isinstance(self._value, InitialValue) or self.key not in given:  # picked now, or first drawn
            given[self.key] = state.string_value
        elif self.proto.set_value:  # the app gave the browser a value: its label as of that run
            given[self.key] = self.proto.raw_value
        state.string_value = given[self.key]
        return state

    monkeypatch.setattr(Selectbox, "_widget_state", property(sent))


def _move_one(at, project, cid: int, target: int) -> None:
    _by_key(at, "checkbox", f"pick:cluster{cid}:")[0].check().run()
    _by_key(at, "selectbox", f"cluster{cid}:target")[0].set_value(target).run()
    at.button(key=f"cluster{cid}:move").click().run()
    assert not at.exception


def _gallery_after_a_move(monkeypatch, tmp_path: Path):
    """The Clusters gallery on cluster 1, after one of its images moved to cluster 2 (labels sent back as a
    browser sends them)."""
    _browser_keeps_labels(monkeypatch)
    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project, PAGE)
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    at.selectbox(key="gallery_cluster").set_value(1).run()
    _move_one(at, fake_project, 1, 2)
    return at


def test_the_gallery_stays_on_its_cluster_after_a_move_and_an_undo(monkeypatch, tmp_path: Path) -> None:
    at = _gallery_after_a_move(monkeypatch, tmp_path)
    at.segmented_control(key="gallery_sort").set_value("File name").run()  # the next click, any click
    assert at.selectbox(key="gallery_cluster").value == 1
    assert len(_by_key(at, "checkbox", "pick:cluster1:")) == 11
    at.button(key="undo").click().run()
    at.segmented_control(key="gallery_sort").set_value("Least sure").run()
    assert not at.exception
    assert at.selectbox(key="gallery_cluster").value == 1
    assert len(_by_key(at, "checkbox", "pick:cluster1:")) == 12


def test_the_cluster_pickers_show_the_counts_after_an_edit(monkeypatch, tmp_path: Path) -> None:
    at = _gallery_after_a_move(monkeypatch, tmp_path)
    box = at.selectbox(key="gallery_cluster")
    assert list(box.options) == ["Cluster 2 (13)", "Cluster 0 (12)", "Cluster 1 (11)"]
    assert box.proto.set_value and box.proto.raw_value == "Cluster 1 (11)"  # the label shown, not "(12)"
    at.segmented_control(key="clusters_view").set_value("Overview").run()
    for key in ("rename_cid", "split_cid"):
        assert _by_key(at, "selectbox", key)[0].options[0] == "Cluster 2 (13)"
