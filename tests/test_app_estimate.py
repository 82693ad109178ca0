"""Discover page: the expected time before Run, and the demo's first-run effort."""

from __future__ import annotations

from pathlib import Path

from test_app_fakes import FakeProject, open_app

from turtle_core.ingest.demo import MARKER

PAGE = "pages/discover.py"


def _expected(at) -> str:
    lines = [str(c.value) for c in at.caption if str(c.value).startswith("Expected time:")]
    assert len(lines) == 1, [c.value for c in at.caption]
    return lines[0]


def test_expected_time_follows_effort_and_cache(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)
    at = open_app(monkeypatch, project, PAGE)
    assert not at.exception
    assert at.radio(key=f"effort:{project.folder}").value == "standard"
    standard = _expected(at)
    assert "embedding 36 images" in standard and "TURTLE" in standard
    # the standard effort's final runs are skipped when the comparison keeps k-means: a second, shorter time
    assert "if k-means' partition is kept" in standard
    at.radio(key=f"effort:{project.folder}").set_value("quick").run()
    quick = _expected(at)
    assert quick != standard and "embedding 36 images" in quick
    assert "k-means" not in quick  # no final runs to skip

    # once every image's embedding is cached, only TURTLE's time is left
    from turtle_core.embedding import rates

    monkeypatch.setattr(
        rates, "uncached_counts", lambda hashes, names, checkpoints=None: dict.fromkeys(names, 0)
    )
    at.run()
    assert "embeddings cached" in _expected(at)


def test_the_demo_starts_with_the_demo_effort(monkeypatch, tmp_path: Path) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)
    (project.folder / MARKER).write_text("{}")
    at = open_app(monkeypatch, project, PAGE)
    assert not at.exception
    assert at.radio(key=f"effort:{project.folder}").value == "quick"


def test_keeping_turtle_without_the_comparison_shortens_the_expected_time(
    monkeypatch, tmp_path: Path
) -> None:
    project = FakeProject(tmp_path / "images", discovered=False)
    at = open_app(monkeypatch, project, PAGE)
    automatic = _expected(at)
    at.radio(key=f"partition:{project.folder}").set_value("turtle").run()
    assert not at.exception
    assert _expected(at) != automatic and "k-means" not in _expected(at)
