"""Categories out: `classify` on another folder, the classifier files, and the README's snippet that loads them."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pandas as pd
from colour_folder import COLOURS, paint

from turtle_core.cli.main import main
from turtle_core.operations.classifier import Classifier

README = Path(__file__).resolve().parent.parent / "README.md"


def _snippet() -> str:
    text = README.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- classifier-snippet -->\n```python\n(.*?)```\n<!-- /classifier-snippet -->", text, re.S
    )
    assert block, "the README's classifier snippet is missing"
    return block.group(1)


def test_classify_labels_another_folder_and_the_readme_snippet_agrees(curated, tmp_path: Path) -> None:
    project, root = curated
    other = tmp_path / "other"
    for i, colour in enumerate(["red", "blue", "green", "blue"]):
        paint(other / f"photo_{i}.png", COLOURS[colour], i + 2)
    (other / "notes.txt").write_text("not an image")
    out = tmp_path / "classified.csv"

    assert main(["classify", str(other), "--project", str(root), "--out", str(out), "--quiet"]) == 0

    table = pd.read_csv(out)
    assert list(table.columns) == ["path", "label", "confidence"]
    assert table["label"].tolist() == ["red", "blue", "green", "blue"]
    assert (table["confidence"] > 0.5).all()
    assert not list(other.glob("*.csv"))  # OTHER is only read

    folder = tmp_path / "my-classifier"
    written = project.classifier().save(folder)
    assert sorted(path.name for path in written) == ["card.json", "classifier.safetensors"]
    loaded = Classifier.load(folder)
    assert loaded.class_names == ("red", "green", "blue") and loaded.card["trained_on"]["images"] == 24
    assert loaded.card["backbones"][0]["weights"]

    code = _snippet().replace('"my-classifier"', repr(str(folder)))
    for row in table.itertuples():
        shutil.copy(other / row.path, tmp_path / "new_photo.jpg")
        printed = io.StringIO()
        with contextlib.chdir(tmp_path), contextlib.redirect_stdout(printed):
            exec(compile(code, "README snippet", "exec"), {})  # noqa: S102 - the README's own code
        label, probability = printed.getvalue().split()
        assert label == row.label
        assert abs(float(probability) - row.confidence) < 1e-3


def test_the_export_page_writes_the_classifier_and_never_into_the_image_folder(
    curated, monkeypatch, tmp_path
) -> None:
    from test_app_fakes import open_app, texts, wait_for_job

    project, root = curated
    at = open_app(monkeypatch, project, "pages/export.py")
    key = f"classifier_dest:{root}"
    at.text_input(key=key).set_value(str(root / "model")).run()
    assert "inside the image folder" in " ".join(error.value for error in at.error)
    assert at.button(key="export_classifier").disabled

    at.text_input(key=key).set_value(str(tmp_path / "model")).run()
    at.button(key="export_classifier").click().run()
    wait_for_job(at, project, "classifier", timeout=120)
    assert not at.exception
    assert "classifier.safetensors" in texts(at)
    assert Classifier.load(tmp_path / "model").class_names == ("red", "green", "blue")
    assert not (root / "model").exists()
