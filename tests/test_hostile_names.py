"""Hostile file and cluster names through the names rule, export, the CLI and every page.

Names with bytes that are not UTF-8, Markdown and LaTeX syntax, HTML, a right-to-left override, `../`
and backslashes: every file we write reads back with pandas / pyarrow / json and gives the original
path back (decode our escape → the exact original bytes → the file opens), and nothing crashes.
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_app_fakes import FakeProject, open_app, texts, wait_for_job

from benchmarks.fault_harness.hostile import BROKEN, COPY, HOSTILE_FILES, write_hostile_tree
from turtle_core.export.dataset import export_dataset
from turtle_core.ingest.scan import scan_folder
from turtle_core.names import (
    MARKDOWN_SPECIALS,
    WORD_JOINER,
    display_name,
    escape_name,
    html_text,
    markdown_text,
    name_bytes,
    open_path,
    unescape_name,
)
from turtle_ui.figures import scatter_figure

CLUSTER_NAMES = ["$x$ **bold**", "`code` <b>html</b> :red[r]", "evil\u202egnp.exe ../../etc"]


@pytest.fixture
def hostile_root(tmp_path: Path) -> Path:
    return tmp_path / os.fsdecode(b"images \xe9 $x$ **b**")


# ------------------------------------------------------------------------------------------ the rule


def test_escape_round_trips_every_byte_string() -> None:
    rng = random.Random(0)
    alphabet = [bytes([b]) for b in range(1, 256) if b != ord("/")]
    names = [b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    names += [b"\\", b"\\\\", b"\\xe9", b"\\x41", b"\\udce9", b"\\\xe9", b"\xe9\\", *HOSTILE_FILES]
    for raw in names:
        name = os.fsdecode(raw)
        text = escape_name(name)
        text.encode("utf-8")  # valid UTF-8: no surrogates left
        assert unescape_name(text) == name
        assert name_bytes(text) == raw
        if b"\\" not in raw and not re.search(rb"[\x80-\xff]", raw):
            assert text == name  # ASCII names without backslashes are written as they are


def test_escape_keeps_valid_unicode_names_and_escapes_bytes_readably() -> None:
    assert escape_name("Über 🐢 \u202e.png") == "Über 🐢 \u202e.png"
    assert escape_name(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"
    assert escape_name("a\\b") == "a\\\\b"
    assert unescape_name("typed \\q stays") == "typed \\q stays"


def _markdown_source_is_literal(source: str) -> str:
    """Check that `source` has no unescaped Markdown syntax; return the text it shows."""
    i, shown = 0, []
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            assert i + 1 < len(source), source
            shown.append(source[i + 1])
            i += 2
            continue
        if source.startswith("&#32;", i):
            shown.append(" ")
            i += 5
            continue
        if ch == "_":
            before, after = source[i - 1 : i], source[i + 1 : i + 2]
            assert before.isalnum() and after.isalnum(), f"bare underscore in {source!r}"
        else:
            assert ch not in MARKDOWN_SPECIALS, f"unescaped {ch!r} in {source!r}"
        if ch == ":":
            assert not re.match(r"[\w+/-]", source[i + 1 : i + 2]), f"shortcode or directive in {source!r}"
        shown.append(ch)
        i += 1
    block = r" *([#>+=-]( |$)|\d+[.)]( |$))"  # a heading, quote or list if it started the source
    assert not re.match(block, source), source
    return "".join(shown)


@pytest.mark.parametrize(
    "name",
    [os.fsdecode(raw) for raw in HOSTILE_FILES + [BROKEN]]
    + CLUSTER_NAMES
    + ["    indented", "1. first", "# title", "mail me@example.org or www.example.org", "snake_case_name"],
)
def test_display_markdown_and_html_show_the_name_as_it_is(name: str) -> None:
    shown = display_name(name)
    shown.encode("utf-8")
    assert "\u202e" not in shown and "\n" not in shown
    markdown = markdown_text(name)
    markdown.encode("utf-8")
    assert _markdown_source_is_literal(markdown).replace(WORD_JOINER, "") == shown
    hover = html_text(name)
    assert "<" not in hover and ">" not in hover
    assert html.unescape(hover) == shown


def test_display_makes_hidden_characters_visible() -> None:
    assert display_name(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"
    assert display_name("evil\u202egnp.exe") == "evil\\u202egnp.exe"
    assert display_name("a\nb\tc") == "a\\x0ab\\x09c"
    assert display_name("a\nb", multiline=True) == "a\nb"
    assert display_name("family 👨\u200d👩\u200d👧") == "family 👨\u200d👩\u200d👧"  # joiners stay


def test_plotly_hover_and_labels_are_escaped() -> None:
    names = {0: "<b>x</b>", 1: "evil\u202eexe"}
    files = [os.fsdecode(b"caf\xe9.png"), "<i>y</i>.png"]
    fig = scatter_figure(np.zeros((2, 2)), np.array([0, 1]), np.array([0.5, 0.9]), names, files)
    assert fig.data[0].text[0] == "<b>&lt;b&gt;x&lt;/b&gt;</b> · 0.50<br>caf\\xe9.png"
    assert fig.data[0].text[1] == "<b>evil\\u202eexe</b> · 0.90<br>&lt;i&gt;y&lt;/i&gt;.png"
    labels = [a.text.split("</span> ", 1) for a in fig.layout.annotations]  # a coloured dot, then the name
    assert [name for _, name in labels] == ["&lt;b&gt;x&lt;/b&gt;", "evil\\u202eexe"]
    assert all(dot.startswith('<span style="color:#') for dot, _ in labels)
    fig.to_json().encode("utf-8")


# ------------------------------------------------------------------------------------------ export


def test_export_writes_readable_files_that_lead_back_to_the_originals(hostile_root: Path, tmp_path) -> None:
    written = write_hostile_tree(hostile_root)
    scan = scan_folder(hostile_root)
    assert {os.fsencode(r.path) for r in scan.images} == set(written)
    assert [os.fsencode(s.path) for s in scan.skipped] == [BROKEN]
    paths = [r.path for r in scan.images]
    n = len(paths)
    labels = [CLUSTER_NAMES[i % 3] if i % 5 else None for i in range(n)]
    dest = tmp_path / os.fsdecode(b"out \xe9 <b>")
    report = export_dataset(
        hostile_root, paths, labels, [i % 3 for i in range(n)], [0.5] * n, [False] * n, dest
    )
    assert any("not valid UTF-8" in w for w in report.warnings)
    for warning in report.warnings:
        display_name(warning).encode("utf-8")
    for folder in report.label_folders.values():
        assert (dest / folder).resolve().parent == dest.resolve()
        assert "\u202e" not in folder and "/" not in folder

    def check(source_paths: list[str], label_values: list[object], exported: list[str]) -> None:
        assert sorted(name_bytes(p) for p in source_paths) == sorted(written)
        for p, label, out in zip(source_paths, label_values, exported, strict=True):
            assert open_path(hostile_root, p).read_bytes() == written[name_bytes(p)]
            if out:
                assert (dest / out).read_bytes() == written[name_bytes(p)]
                assert label in CLUSTER_NAMES

    csv = pd.read_csv(dest / "manifest.csv", keep_default_na=False, dtype=str)
    check(csv["path"].tolist(), csv["label"].tolist(), csv["exported_path"].tolist())
    with open(dest / "manifest.parquet", "rb") as handle:  # pyarrow cannot open a non-UTF-8 path
        parquet = pq.read_table(handle).to_pandas()
    check(parquet["path"].tolist(), parquet["label"].tolist(), parquet["exported_path"].tolist())
    assert parquet["label"].isna().sum() == labels.count(None)

    lines = (dest / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == n - labels.count(None)
    for rec in records:
        assert (
            open_path(hostile_root, rec["source_path"]).read_bytes() == (dest / rec["file_name"]).read_bytes()
        )
        assert rec["label"] in CLUSTER_NAMES
    tasks = json.loads((dest / "labelstudio_tasks.json").read_text(encoding="utf-8"))
    assert len(tasks) == len(records)
    for task in tasks:
        assert open_path(hostile_root, task["data"]["source_path"]).is_file()
        assert task["predictions"][0]["result"][0]["value"]["choices"][0] in CLUSTER_NAMES
    # Every file we wrote is valid UTF-8 text (or Parquet).
    for file in report.files:
        if not file.endswith(".parquet"):
            (dest / file).read_bytes().decode("utf-8")


# ------------------------------------------------------------------------------------------ CLI


def test_cli_labels_and_skip_report_read_back_with_pandas(hostile_root: Path, tmp_path, turtle_home) -> None:
    written = write_hostile_tree(hostile_root)
    out = tmp_path / "out" / "labels.csv"
    env = {**os.environ, "TURTLE_HOME": str(turtle_home), "TURTLE_OFFLINE": "1"}
    command = [sys.executable, "-m", "turtle_core", "discover", os.fsencode(hostile_root), "-k", "2"]
    command += ["-o", str(out), "--backbones", "effnet-lite0", "--effort", "quick", "--quiet"]
    done = subprocess.run(command, capture_output=True, env=env, timeout=900)
    stderr = done.stderr.decode("utf-8")  # valid UTF-8 too
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "skipped: broken \\xe9 $x$.png" in stderr

    labels = pd.read_csv(out, keep_default_na=False, dtype={"path": str})
    assert list(labels.columns) == ["path", "cluster", "confidence"]
    assert sorted(name_bytes(p) for p in labels["path"]) == sorted(written)
    for p in labels["path"]:
        assert open_path(hostile_root, p).read_bytes() == written[name_bytes(p)]
    assert set(labels["cluster"]) <= {0, 1}
    skipped = pd.read_csv(out.with_name("labels.skipped.csv"), keep_default_na=False)
    assert [name_bytes(p) for p in skipped["path"]] == [BROKEN]
    assert open_path(hostile_root, skipped["path"][0]).read_bytes().startswith(b"\x89PNG")


# ------------------------------------------------------------------------------------------ the app


class HostileProject(FakeProject):
    """The UI fake, on a real scan of the hostile tree, with hostile cluster names."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, per_class=2, discovered=False)
        write_hostile_tree(folder)
        self.scan_result = scan_folder(folder)
        self._records = list(self.scan_result.images)
        n = len(self._records)
        self._truth = np.arange(n) % 3
        self._xy = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
        self._set_discovery(3)
        for cid, name in enumerate(CLUSTER_NAMES):
            self.curation.rename(cid, name)

    def index_of(self, raw: bytes) -> int:
        return next(i for i, r in enumerate(self._records) if os.fsencode(r.path) == raw)


def _every_text_is_valid(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    texts(at).encode("utf-8")


def test_every_page_shows_hostile_names_without_crashing(monkeypatch, hostile_root: Path, tmp_path) -> None:
    project = HostileProject(hostile_root)
    at = open_app(monkeypatch, project)  # the Project page: scan summary, skipped and duplicates
    _every_text_is_valid(at)
    assert f"Images in {markdown_text(hostile_root.name)}" in texts(at)
    assert f"**{markdown_text(hostile_root.name)}**" in texts(at)  # the sidebar names the folder
    skipped, duplicates = (frame.value for frame in at.dataframe)
    assert display_name(os.fsdecode(BROKEN)) in skipped["file"].tolist()
    assert display_name(os.fsdecode(COPY)) in duplicates["paths"][0]

    at.switch_page("pages/discover.py").run()
    _every_text_is_valid(at)

    at.switch_page("pages/map.py").run()
    _every_text_is_valid(at)
    for raw in (HOSTILE_FILES[0], HOSTILE_FILES[6], HOSTILE_FILES[9]):
        index = project.index_of(raw)
        key = f"map:{project.discovery.discovery_id[:12]}:{at.session_state['edit_nonce']}"
        at.session_state[key] = {"selection": {"points": [], "point_indices": [index], "box": []}}
        at.run()
        _every_text_is_valid(at)
        file_name = os.fsdecode(raw).rsplit("/", 1)[-1]
        assert f"**{markdown_text(file_name)}**" in texts(at)
        assert len(at.get("image")) == 1  # the preview opened the file
    at.session_state[key] = {"selection": {"points": [], "point_indices": [0, 1, 2, 3], "box": []}}
    at.run()
    _every_text_is_valid(at)

    at.switch_page("pages/clusters.py").run()
    _every_text_is_valid(at)
    page = texts(at)
    for name in CLUSTER_NAMES:
        assert f"**{markdown_text(name)}**" in page
    options = at.selectbox(key=[k for k in _keys(at, "selectbox") if k.startswith("rename_cid")][0]).options
    assert any(display_name(CLUSTER_NAMES[2]) in option for option in options)
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    _every_text_is_valid(at)
    at.segmented_control(key="clusters_view").set_value("Review queue").run()
    _every_text_is_valid(at)
    review_labels = [box.label for box in at.checkbox if box.key and box.key.startswith("pick:review:")]
    assert any(label.startswith(markdown_text(CLUSTER_NAMES[0] + " · ")) for label in review_labels)
    # A hostile rename through the page, then the flash message and the history quoting it.
    at.segmented_control(key="clusters_view").set_value("Overview").run()
    rename = [k for k in _keys(at, "text_input") if k.startswith("rename_name")][0]
    at.text_input(key=rename).set_value("$$\\int$$ :blue[x] <script>")
    at.button(key="rename").click().run()
    _every_text_is_valid(at)
    assert markdown_text("$$\\int$$ :blue[x] <script>") in at.success[0].value

    at.switch_page("pages/export.py").run()
    _every_text_is_valid(at)
    dest_input = at.text_input[0]
    assert dest_input.value == escape_name(hostile_root.parent / f"{hostile_root.name}-labeled")
    at.button(key="export").click().run()
    job = wait_for_job(at, project, "export")
    assert job.state == "done", job.error
    _every_text_is_valid(at)
    dest = hostile_root.parent / f"{hostile_root.name}-labeled"  # the escaped default led to the real name
    assert (dest / "manifest.csv").is_file()
    assert any("not valid UTF" in w.value for w in at.warning)


def _keys(at, kind: str) -> list[str]:
    return [element.key for element in getattr(at, kind) if element.key]


def test_a_non_utf8_folder_typed_as_our_escape_opens_and_scans(monkeypatch, hostile_root: Path) -> None:
    from turtle_ui import session

    write_hostile_tree(hostile_root)
    at = open_app(monkeypatch, None)  # the real engine
    at.text_input(key="folder_input").set_value(escape_name(hostile_root))  # as our CSV files write it
    at.button[0].click().run()
    assert at.session_state["folder"] == str(hostile_root)
    project = session._open_project(str(hostile_root))
    job = wait_for_job(at, project, "scan")
    assert job.state == "done", job.error
    assert display_name(job.progress.message).encode("utf-8")  # the progress text was drawable
    _every_text_is_valid(at)
    assert "Usable images: 15" in texts(at) and "Skipped files: 1" in texts(at)
    skipped = at.dataframe[0].value
    assert skipped["file"].tolist() == [display_name(os.fsdecode(BROKEN))]
    at.switch_page("pages/discover.py").run()
    _every_text_is_valid(at)
