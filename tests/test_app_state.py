"""State a person expects to keep: the URL carries the open folder (a reload, a bookmark or a second tab opens
it), the Discover form is per project, the result chart shows the current cluster names, and a folder with no
usable images cannot start a discovery."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from streamlit.testing.v1 import AppTest
from test_app_fakes import APP, FakeProject, open_app, texts, wait_for_job

DISCOVER = "pages/discover.py"


def _open(at, folder: str | Path):
    at.text_input(key="folder_input").set_value(str(folder))
    at.button[0].click()  # the form's "Open folder"
    return at.run()


def _project_of(at):
    from turtle_ui import session

    return session._open_project(at.session_state["folder"])


def _chart_frame(at, index: int = 0):
    element = at.get("vega_lite_chart")[index]
    (dataset,) = element.proto.datasets
    return pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()


def test_the_url_carries_the_folder_and_a_new_session_reopens_it(
    monkeypatch, make_image_tree, tmp_path: Path
) -> None:
    root = make_image_tree({"cats": 3, "dogs": 3})
    at = _open(open_app(monkeypatch, None), root)
    assert at.query_params["folder"] == str(root)
    wait_for_job(at, _project_of(at), "scan")
    at.switch_page(DISCOVER).run()
    assert at.query_params["folder"] == str(root), "the URL keeps the folder on every page"

    # A reload (or a bookmark, or a second tab) is a new session that starts from the URL alone.
    second = AppTest.from_file(APP, default_timeout=30)
    second.query_params["folder"] = str(root)
    second.run()
    assert not second.exception
    assert second.session_state["folder"] == str(root)
    assert f"Images in {root.name}" in texts(second)
    assert "Usable images: 6" in texts(second)
    second.switch_page(DISCOVER).run()
    assert "No project is open yet" not in texts(second)
    assert "6 images · backbones" in texts(second)


def test_a_url_folder_that_cannot_be_opened_gives_the_project_page_message(
    monkeypatch, tmp_path: Path
) -> None:
    open_app(monkeypatch, None)  # fresh caches
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["folder"] = str(tmp_path / "gone")
    at.run()
    assert not at.exception
    assert at.session_state["folder"] is None
    errors = " ".join(e.value for e in at.error)
    assert f"Could not open {tmp_path / 'gone'} from the link" in errors and "does not exist" in errors
    assert "folder" not in at.query_params
    at.run()
    assert not at.error, "said once"


def test_the_url_folder_is_scanned_like_an_opened_one(monkeypatch, make_image_tree) -> None:
    root = make_image_tree({"owls": 2, "bats": 2})
    open_app(monkeypatch, None)
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["folder"] = str(root)
    at.run()
    wait_for_job(at, _project_of(at), "scan")
    assert "Usable images: 4" in texts(at)


def test_discover_settings_belong_to_their_project(monkeypatch, tmp_path: Path) -> None:
    from turtle_ui import session

    first = FakeProject(tmp_path / "first" / "images", discovered=False)
    second = FakeProject(tmp_path / "second" / "images", per_class=4, discovered=False)
    projects = {str(first.folder): first, str(second.folder): second}
    at = open_app(monkeypatch, first, DISCOVER)
    monkeypatch.setattr(session, "_open_project_uncached", lambda folder: projects[folder])
    at.number_input(key=f"k_fixed:{first.folder}").set_value(7).run()
    at.radio(key=f"effort:{first.folder}").set_value("quick").run()

    at.switch_page("pages/project.py").run()
    _open(at, second.folder)
    at.switch_page(DISCOVER).run()
    assert not at.exception
    assert at.number_input(key=f"k_fixed:{second.folder}").value == 3  # its own default, not 7
    assert at.radio(key=f"effort:{second.folder}").value == "standard"

    at.switch_page("pages/project.py").run()
    _open(at, first.folder)
    at.switch_page(DISCOVER).run()
    assert at.number_input(key=f"k_fixed:{first.folder}").value == 7, "the first project's choice is kept"


def test_result_chart_shows_the_clusters_with_their_current_names(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    curation = fake_project.curation
    curation.rename(0, "cats")
    curation.merge([1, 2], "pets")
    at = open_app(monkeypatch, fake_project, DISCOVER)
    assert not at.exception
    frame = _chart_frame(at)
    assert dict(zip(frame["cluster"], frame["images"], strict=True)) == {"cats": 12, "pets": 24}
    assert "As they are now, with your edits." in texts(at)


def test_a_folder_without_usable_images_cannot_start_a_discovery(monkeypatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    at = _open(open_app(monkeypatch, None), empty)
    project = _project_of(at)
    wait_for_job(at, project, "scan")
    at.switch_page(DISCOVER).run()
    assert not at.exception
    assert at.button(key="run_discovery").disabled
    assert "no usable images, so there is nothing to discover" in " ".join(w.value for w in at.warning)
    assert at.get("page_link"), "a way back to the Project page"
