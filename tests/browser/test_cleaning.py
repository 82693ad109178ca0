"""Cleaning in headless Chromium with the real engine: accept a suggested name, review a group of
near-duplicates, keep one and undo, and filter a cluster's gallery by a quality flag.

The folder is drawn so that the offline backbone knows words for it (crossword puzzles and mazes; its
ImageNet head names them with high confidence) and holds one near-duplicate (a crossword, smaller and
brighter) and two dark images; its discovery is made before the server starts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import AppServer, screenshot, settle, step
from PIL import Image, ImageDraw, ImageEnhance
from playwright.sync_api import expect
from test_curation_loop import act, choose, click, nav, segment

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # ~1-2 min: real embedding and discovery of 26 images


def _crossword(rng: np.random.Generator) -> Image.Image:
    cells, size = 15, 16
    image = Image.new("RGB", (cells * size + 1, cells * size + 1), "white")
    draw = ImageDraw.Draw(image)
    for y in range(cells):
        for x in range(cells):
            if rng.random() < 0.18:
                draw.rectangle((x * size, y * size, x * size + size, y * size + size), fill="black")
    for k in range(cells + 1):
        draw.line((k * size, 0, k * size, cells * size), fill="black")
        draw.line((0, k * size, cells * size, k * size), fill="black")
    return image


def _maze(rng: np.random.Generator) -> Image.Image:
    cells, size = 12, 20
    image = Image.new("RGB", (cells * size, cells * size), "white")
    draw = ImageDraw.Draw(image)
    for y in range(cells):
        for x in range(cells):
            corner = (x * size, y * size)
            end = (corner[0] + size, corner[1]) if rng.random() < 0.5 else (corner[0], corner[1] + size)
            draw.line((*corner, *end), fill="black", width=3)
    return image


def _stripes(rng: np.random.Generator, dark: bool = False) -> Image.Image:
    scale = 0.15 if dark else 1.0
    background = tuple(int(v * scale) for v in rng.integers(150, 255, 3))
    image = Image.new("RGB", (240, 240), background)
    draw = ImageDraw.Draw(image)
    left = int(rng.integers(0, 30))
    while left < 240:
        width = int(rng.integers(4, 24))
        draw.rectangle(
            (left, 0, left + width, 240), fill=tuple(int(v * scale) for v in rng.integers(0, 120, 3))
        )
        left += width + int(rng.integers(6, 40))
    return image


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for kind, draw in (("crossword", _crossword), ("maze", _maze), ("stripes", _stripes)):
        (root / kind).mkdir(parents=True)
        for i in range(8):
            draw(rng).save(root / kind / f"{kind}_{i}.png")
    original = Image.open(root / "crossword" / "crossword_3.png")
    copy = ImageEnhance.Brightness(original.resize((180, 180))).enhance(1.2)
    copy.save(root / "crossword" / "crossword_3 small.jpg", quality=80)
    for i in (0, 1):
        _stripes(rng, dark=True).save(root / "stripes" / f"dark_{i}.png")
    return root


def said(page, text: re.Pattern[str]) -> None:
    """A success message with this text is on the page."""
    expect(page.get_by_test_id("stAlertContentSuccess").filter(has_text=text).first).to_be_visible()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory):
    """The app's server, its engine home holding the drawings' discovery (`folder`), and `dark_cluster`:
    the gallery's label of the cluster that holds the dark images."""
    from turtle_core.operations.project import Project
    from turtle_ui.fmt import cluster_options

    home = tmp_path_factory.mktemp("cleaning_app")
    folder = _folder(home / "drawings")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TURTLE_HOME", str(home / "turtle_home"))  # the server's engine home
        project = Project.open(folder, reuse=False)
        project.run_discovery(3, effort="quick", partition="kmeans")
        snap = project.snapshot()
        dark = [row for row, record in enumerate(snap.images) if "dark_" in record.path]
        cluster = int(snap.curation.assignments[dark[0]])
    server = AppServer(home)
    server.folder = folder
    server.dark_cluster = cluster_options(snap.curation)[cluster]
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def test_suggested_name_duplicates_and_a_quality_filter(page, app_server) -> None:
    page.set_default_timeout(60_000)
    page.goto(f"{app_server.url}/?folder={app_server.folder}")
    settle(page, 120_000)
    nav(page, "Clusters")

    with step(page, app_server, "accept-suggestion"):
        suggestion = page.get_by_role("button", name=re.compile(r"crossword puzzle · \d+%"))
        suggestion.first.wait_for(timeout=180_000)  # the images' words are computed in the background
        screenshot(page, "cleaning-suggestions")
        act(page, suggestion.first.click, "accept the suggested name")
        said(page, re.compile(r"Renamed 'Cluster \d+' to 'crossword puzzle'"))

    with step(page, app_server, "duplicates-keep-one-undo"):
        radio = page.get_by_role("radio", name=re.compile("^Duplicates"))
        act(page, radio.click, "open the Duplicates view")
        expect(page.get_by_text(re.compile(r"1 group to review"))).to_be_visible(timeout=120_000)
        screenshot(page, "cleaning-duplicates")
        click(page, re.compile(r"^Keep the first, exclude 1"))
        said(page, re.compile(r"Kept one image of each of 1 group"))
        said(page, re.compile("Every group keeps one image"))
        click(page, "Undo")
        said(page, re.compile(r"Undone: Kept one image of a group"))
        expect(page.get_by_text(re.compile(r"1 group to review"))).to_be_visible()

    with step(page, app_server, "filter-by-flag"):
        segment(page, "Gallery")
        choose(page, "Cluster", app_server.dark_cluster)
        tiles = page.locator("[data-testid='stMain'] [data-testid='stCheckbox']")
        before = tiles.count()
        pill = page.get_by_role("button", name=re.compile(r"^dark \(2\)"))
        act(page, pill.click, "filter by dark")
        expect(tiles).to_have_count(2)
        assert before > 2
        screenshot(page, "cleaning-filter")
    assert not page.runs.external_requests
