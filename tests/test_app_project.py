"""Project page: opening folders (real `Project` and scan), clear errors, the demo, backbones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_app_fakes import FakeProject, open_app, texts, wait_for_job

from turtle_core.embedding.backbones import PRESETS
from turtle_core.names import markdown_text

PAGES = ["pages/discover.py", "pages/map.py", "pages/clusters.py", "pages/export.py"]


def _open(at, folder: str | Path):
    at.text_input(key="folder_input").set_value(str(folder))
    at.button[0].click()  # the form's "Open folder"
    return at.run()


def _current(at):
    from turtle_ui import session

    return session._open_project(at.session_state["folder"])


def test_every_page_without_a_project_shows_a_hint(monkeypatch) -> None:
    at = open_app(monkeypatch, None)
    assert not at.exception
    assert at.title[0].value == "Project"
    assert at.button(key="demo").label == "Try the demo"
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, page
        assert "No project is open yet" in at.info[0].value, page
        assert at.title[0].value != "Project"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "does not exist"),
        (lambda tmp: (tmp / "a.txt").write_text("x") and tmp / "a.txt", "not a folder"),
        (lambda tmp: "   ", "Type the path"),
    ],
)
def test_unusable_folders_give_clear_messages(monkeypatch, tmp_path: Path, make, message: str) -> None:
    at = open_app(monkeypatch, None)
    _open(at, make(tmp_path))
    assert not at.exception
    assert message in " ".join(e.value for e in at.error)
    assert at.session_state["folder"] is None


def test_unreadable_folder(monkeypatch, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # Permission bits do not stop root (CI runs as root), so deny access the way the OS would report it.
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode, **kw: False if Path(path) == locked else real_access(path, mode, **kw),
    )
    at = _open(open_app(monkeypatch, None), locked)
    assert not at.exception
    assert "cannot be read" in " ".join(e.value for e in at.error)


def test_empty_folder_says_there_are_no_images(monkeypatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    at = _open(open_app(monkeypatch, None), empty)
    wait_for_job(at, _current(at), "scan")
    assert not at.exception
    assert "Usable images: 0" in texts(at)
    assert "No usable images were found" in texts(at)


def test_open_scans_and_lists_skipped_files(monkeypatch, make_image_tree, tmp_path: Path) -> None:
    root = make_image_tree({"cats": 4, "dogs": 3})
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    at = _open(open_app(monkeypatch, None), root)
    assert at.session_state["folder"] == str(root)
    wait_for_job(at, _current(at), "scan")
    assert not at.exception
    page = texts(at)
    assert "Usable images: 7" in page
    assert "Skipped files: 1" in page
    assert "Folder labels: 2" in page
    skipped = at.dataframe[0].value
    assert list(skipped["file"]) == ["cats/broken.png"]
    assert skipped["reason"][0]
    # The sidebar knows the project now, and the other pages no longer show the hint.
    at.switch_page("pages/discover.py").run()
    assert not at.exception
    assert "No project is open yet" not in texts(at)


def test_recent_projects_reopen(monkeypatch, make_image_tree, tmp_path: Path) -> None:
    first = make_image_tree({"a": 2, "b": 2}, root=tmp_path / "first")
    second = make_image_tree({"a": 2, "b": 2}, root=tmp_path / "second")
    at = open_app(monkeypatch, None)
    _open(at, first)
    _open(at, second)
    assert at.session_state["folder"] == str(second)
    recent = [b for b in at.button if b.key and b.key.startswith("recent-")]
    assert [b.label for b in recent] == [markdown_text(first)]  # shown as typed, never as Markdown
    recent[0].click().run()
    assert at.session_state["folder"] == str(first)


def test_demo_writes_and_opens_the_demo_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURTLE_DEMO_PER_CLASS", "3")
    at = open_app(monkeypatch, None)
    at.button(key="demo").click().run()
    assert not at.exception
    folder = Path(at.session_state["folder"])
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 10
    assert len(list(folder.rglob("*.png"))) == 30
    wait_for_job(at, _current(at), "scan")
    assert "Usable images: 30" in texts(at)
    assert "Folder labels: 10" in texts(at)


def test_backbone_presets_and_checkpoints(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project)
    preset = at.segmented_control[0]
    assert preset.value == "offline"
    assert [a.name for a in fake_project.availability()] == list(PRESETS["offline"])
    assert ":green-badge[ready]" in texts(at)

    preset.set_value("fast").run()
    assert not at.exception
    assert fake_project.backbones == list(PRESETS["fast"])
    assert ":red-badge[missing]" in texts(at)
    checkpoint_inputs = [t for t in at.text_input if t.key and t.key.startswith("ckpt:")]
    assert len(checkpoint_inputs) == 2
    checkpoint_inputs[0].set_value("/models/clip.bin").run()
    assert fake_project.checkpoints == {PRESETS["fast"][0]: "/models/clip.bin"}
    assert texts(at).count(":green-badge[ready]") == 1

    at.segmented_control[0].set_value("custom").run()
    at.multiselect[0].set_value(["effnet-lite0"]).run()
    assert fake_project.backbones == ["effnet-lite0"]
    assert not at.exception
