"""Export page: real export of the curated labels, explicit confirmation before replacing, manifest download."""

from __future__ import annotations

import csv
from pathlib import Path

from test_app_fakes import FakeProject, open_app, texts, wait_for_job

PAGE = "pages/export.py"


def _export(at, project: FakeProject, dest: Path):
    at.text_input[0].set_value(str(dest))
    at.run()
    at.button(key="export").click().run()
    return wait_for_job(at, project, "export")


def test_export_writes_the_tree_and_manifest(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    curation = fake_project.curation
    curation.rename(0, "cats")
    curation.exclude([12, 13])
    at = open_app(monkeypatch, fake_project, PAGE)
    assert "Images to export: 34" in texts(at) and "Excluded: 2" in texts(at)
    assert at.text_input[0].value == str(fake_project.folder.parent / "images-labeled")
    job = _export(at, fake_project, tmp_path / "out")
    assert job.state == "done", job.error
    assert not at.exception
    assert "Exported 34 images" in at.success[0].value
    out = tmp_path / "out"
    assert len(list((out / "cats").glob("*.png"))) == 12
    with open(out / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 36
    excluded = [r for r in rows if not r["label"]]
    assert len(excluded) == 2
    # The originals are untouched.
    assert len(list(fake_project.folder.rglob("*.png"))) == 36


def test_existing_export_needs_explicit_confirmation(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project, PAGE)
    first = _export(at, fake_project, tmp_path / "out")
    assert first.state == "done"
    # The destination now exists: the button waits for the confirmation box.
    assert "the export you just made" in " ".join(i.value for i in at.info)
    assert at.button(key="export").disabled
    fake_project.curation.exclude([0])
    confirm = [c for c in at.checkbox if c.key and c.key.startswith("export_overwrite")][0]
    confirm.check().run()
    assert not at.button(key="export").disabled
    at.button(key="export").click().run()
    second = wait_for_job(at, fake_project, "export")
    assert second.state == "done" and second.id != first.id
    assert second.result.n_exported == 35
    # A fresh confirmation is needed for the next replacement.
    assert at.button(key="export").disabled


def test_non_export_folder_is_never_replaced(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    (precious / "manifest.csv").write_text("path,label\n")  # looks like an export, is not one
    at = open_app(monkeypatch, fake_project, PAGE)
    at.text_input[0].set_value(str(precious)).run()
    assert not at.exception
    # Why, in words; and no way to ask for a replacement.
    assert "was not made by this app's export" in at.error[0].value
    assert "never replaced" in at.error[0].value
    assert not [c for c in at.checkbox if c.key and c.key.startswith("export_overwrite")]
    assert at.button(key="export").disabled
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_formats_mode_and_manifest_download(monkeypatch, tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project, PAGE)
    assert at.download_button(key="download_manifest").label == "Download manifest (CSV)"
    at.pills(key="export_formats").set_value(["imagefolder", "csv"])
    at.radio(key="export_mode").set_value("symlink")
    job = _export(at, fake_project, tmp_path / "links")
    assert job.state == "done", job.error
    out = tmp_path / "links"
    assert (out / "manifest.csv").is_file()
    assert not (out / "manifest.parquet").exists()
    assert not (out / "metadata.jsonl").exists()
    linked = list(out.glob("*/*.png"))
    assert len(linked) == 36 and all(p.is_symlink() for p in linked)


def test_a_destination_in_the_image_folder_is_refused_as_it_is_typed(monkeypatch, tmp_path: Path) -> None:
    from turtle_ui import jobs as jobs_ui

    fake_project = FakeProject(tmp_path / "images")
    at = open_app(monkeypatch, fake_project, PAGE)
    for dest, said in (
        (fake_project.folder, "is inside the image folder"),
        (fake_project.folder / "cats" / "labeled", "is inside the image folder"),
        (tmp_path, "contains the image folder"),
    ):
        at.text_input[0].set_value(str(dest)).run()
        assert not at.exception
        errors = " ".join(error.value for error in at.error)
        assert said in errors and ("outside it" in errors or "another one" in errors), dest
        assert at.button(key="export").disabled, dest
    assert jobs_ui.project_job(fake_project, "export") is None
    at.text_input[0].set_value(str(tmp_path / "out")).run()
    assert not at.error
    assert not at.button(key="export").disabled
