"""A curation over time, in headless Chromium against `streamlit run app.py` with the real engine: open a
folder of three colours, discover, name the clusters and confirm an image; add images to the folder and
rescan (the names survive, the new images are labelled and come first in the review queue); delete images
and rescan (nothing breaks, every page counts the same images); import a CSV of labels; export the classifier.

Every interaction waits for the app run it caused (`page.runs.act`, see conftest). A failed step leaves
test-artifacts/screenshots/FAILED-<step>.png and FAILED-<step>.log."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import IDLE, screenshot, settle, step
from PIL import Image, ImageDraw
from playwright.sync_api import expect
from test_curation_loop import act, choose, click, fill, nav, radio_option, segment, tab, type_only

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # ~2-5 min: real embedding and discovery of 30 images

SCAN_TIMEOUT_MS = 180_000
DISCOVERY_TIMEOUT_MS = 420_000  # offline backbone + quick TURTLE on 30 images, 2 shared CPU cores
RESCAN_TIMEOUT_MS = 240_000  # embeds the added images, learns the categories
JOB_TIMEOUT_MS = 240_000  # labels import, classifier export

COLOURS = {"red": (215, 35, 30), "green": (35, 190, 45), "blue": (30, 45, 215)}
PER_KIND = 10
MAIN = "[data-testid='stMain']"


def paint(path: Path, colour: tuple[int, int, int], shade: int, x: int, y: int) -> None:
    """A 48×48 image of `colour` (darkened by `shade`) with a white disc at (x, y)."""
    image = Image.new("RGB", (48, 48), tuple(max(0, c - shade) for c in colour))
    ImageDraw.Draw(image).ellipse((x, y, x + 16, y + 16), fill=(250, 250, 250))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def colour_folder(root: Path) -> Path:
    """`PER_KIND` distinct images of each colour, in one sub-folder per colour."""
    for name, colour in COLOURS.items():
        for i in range(PER_KIND):
            paint(root / name / f"{name}_{i}.png", colour, 4 * i, 4 + 2 * i, 4 + (i % 3) * 4)
    return root


def metric(page, label: str):
    """The value of the metric labelled `label` in the page's main area."""
    return (
        page.locator(f"{MAIN} [data-testid='stMetric']")
        .filter(has=page.get_by_test_id("stMetricLabel").filter(has_text=re.compile(f"^{re.escape(label)}")))
        .first.get_by_test_id("stMetricValue")
    )


def said(page, text: str | re.Pattern[str], timeout_ms: float = 30_000) -> None:
    """A success message with this text is on the page."""
    message = page.get_by_test_id("stAlertContentSuccess").filter(has_text=text).first
    expect(message).to_be_visible(timeout=timeout_ms)


def no_exception(page) -> None:
    expect(page.locator("[data-testid='stException']")).to_have_count(0)


def tile_paths(page) -> list[str]:
    """The folder paths of the gallery tiles on the page (each tile's name holds its path on hover)."""
    return page.locator(f"{MAIN} .tile-name").evaluate_all("tiles => tiles.map(t => t.title)")


def cluster_choices(page) -> list[str]:
    """The options of the gallery's "Cluster" select box ("Cluster 0 (10)", …)."""
    box = page.get_by_role("combobox", name="Cluster", exact=True).first
    box.click()
    options = page.get_by_role("option")
    options.first.wait_for()
    texts = options.all_inner_texts()
    page.keyboard.press("Escape")
    return texts


# ------------------------------------------------------------------------------------------ steps
def step_open(page, url: str, folder: Path) -> None:
    page.goto(url)
    page.get_by_label("Image folder", exact=True).wait_for()
    settle(page)
    type_only(page, "Image folder", str(folder))
    click(page, "Open folder")
    expect(metric(page, "Usable images")).to_have_text(str(3 * PER_KIND), timeout=SCAN_TIMEOUT_MS)
    settle(page)
    no_exception(page)
    screenshot(page, "grows-01-project")


def step_discover(page) -> None:
    nav(page, "Discover")
    # The colour sub-folders are folder labels: the number of categories defaults to their count.
    assert page.get_by_label("Categories", exact=True).input_value() == "3"
    radio_option(page, "Effort", "Quick")
    click(page, "Run discovery")
    page.get_by_role("heading", name="Result").wait_for(timeout=DISCOVERY_TIMEOUT_MS)
    settle(page)
    no_exception(page)
    expect(metric(page, "Categories")).to_have_text("3")
    screenshot(page, "grows-02-discover")


def step_name_clusters(page) -> tuple[dict[str, str], str]:
    """Look at each cluster's images in the gallery, name it after its colour, confirm one image.
    Returns colour → cluster name and the path of the confirmed image."""
    nav(page, "Clusters")
    segment(page, "Gallery")
    naming: dict[str, str] = {}  # "Cluster 0 (" → name
    for choice in cluster_choices(page):
        prefix = choice[: choice.rindex("(") + 1]
        choose(page, "Cluster", prefix)
        paths = tile_paths(page)
        assert paths, f"no images shown for {choice}"
        colour = Counter(path.split("/")[0] for path in paths).most_common(1)[0][0]
        name = colour if colour not in naming.values() else f"{colour} {len(naming) + 1}"
        naming[prefix] = name
    assert len(naming) == 3

    # Confirm the first image of the cluster on show: its label is right.
    confirmed = tile_paths(page)[0]
    checkbox = page.locator(f"{MAIN} [data-testid='stCheckbox']").first
    act(page, checkbox.click, "tick the first image")
    click(page, re.compile(r"Confirm 1$"))
    said(page, re.compile(r"Confirmed 1 image\b"))
    screenshot(page, "grows-03-gallery-confirmed")

    segment(page, "Overview")
    tab(page, "Rename")
    for prefix, name in naming.items():
        choose(page, "Cluster", prefix)
        fill(page, "New name", name)
        click(page, re.compile(r"^Rename$"))
        said(page, f"Renamed '{prefix[:-2]}' to '{name}'.")
    for name in naming.values():
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    expect(metric(page, "Checked images")).to_have_text("1")
    no_exception(page)
    screenshot(page, "grows-04-clusters-named")
    return {name.split()[0]: name for name in naming.values()}, confirmed


def rescan(page) -> None:
    nav(page, "Project")
    click(page, "Rescan")


def step_add_and_rescan(page, folder: Path, names: dict[str, str]) -> list[str]:
    """Three new red images join the folder; the rescan labels them; they come first in the review queue."""
    added = []
    for i in range(3):
        # Shades and places between the originals': typical of their colour, yet distinct files.
        paint(folder / "red" / f"red_new_{i}.png", COLOURS["red"], 2 + 8 * i, 5 + 6 * i, 30)
        added.append(f"red/red_new_{i}.png")
    rescan(page)
    said(page, "3 new images were labelled with your 3 categories", RESCAN_TIMEOUT_MS)
    settle(page)
    no_exception(page)
    expect(metric(page, "Usable images")).to_have_text(str(3 * PER_KIND + 3))
    screenshot(page, "grows-05-project-rescanned")

    nav(page, "Clusters")
    for name in names.values():  # the names survive the rescan
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    expect(metric(page, "Images")).to_have_text(str(3 * PER_KIND + 3))
    segment(page, "Review queue")
    new_group = page.get_by_role("radio", name="New images (3)", exact=True)
    expect(new_group).to_have_attribute("aria-checked", "true")  # the new images' group is first, chosen
    groups = page.get_by_role("radiogroup").filter(has=new_group).get_by_role("radio").all_inner_texts()
    assert groups[0].startswith("New images"), groups
    expect(page.get_by_text("3 images to review", exact=True)).to_be_visible()
    assert sorted(tile_paths(page)) == added
    captions = page.locator(f"{MAIN} [data-testid='stCheckbox']").all_inner_texts()
    assert len(captions) == 3 and all(caption.strip().endswith("· new") for caption in captions), captions
    # Labelled with the curated categories: red images go to the cluster named red.
    assert all(caption.startswith(f"{names['red']} · ") for caption in captions), captions
    no_exception(page)
    screenshot(page, "grows-06-review-new-first")
    return added


def step_delete_and_rescan(page, folder: Path, gone: list[str]) -> None:
    for path in gone:
        (folder / path).unlink()
    rescan(page)
    said(page, "2 images left the curation (removed from the folder)", RESCAN_TIMEOUT_MS)
    settle(page)
    no_exception(page)
    n_images = str(3 * PER_KIND + 3 - len(gone))
    expect(metric(page, "Usable images")).to_have_text(n_images)
    # The folder and the curation hold the same images: no "Rescan to bring the curation up to date".
    expect(page.get_by_text(re.compile("bring the curation up to date"))).to_have_count(0)
    screenshot(page, "grows-07-project-after-delete")

    nav(page, "Clusters")
    no_exception(page)
    expect(metric(page, "Images")).to_have_text(n_images)
    sizes = [
        int(text.split()[0])
        for text in page.get_by_text(re.compile(r"^\d+ images · mean confidence")).all_inner_texts()
    ]
    assert sum(sizes) == int(n_images), sizes
    screenshot(page, "grows-08-clusters-after-delete")
    nav(page, "Discover")
    no_exception(page)
    expect(metric(page, "Images")).to_have_text(n_images)
    nav(page, "Map")
    no_exception(page)


def step_import(page, csv_path: Path, rows: list[tuple[str, str]], n_checked: int) -> None:
    csv_path.write_text("path,label\n" + "".join(f"{path},{label}\n" for path, label in rows))
    nav(page, "Project")
    page.get_by_text("Import labels made elsewhere").click()
    upload = page.locator(f"{MAIN} [data-testid='stFileUploaderDropzoneInput']").first
    act(page, lambda: upload.set_input_files(str(csv_path)), "upload the labels CSV")
    expect(page.get_by_text(csv_path.name).first).to_be_visible()
    click(page, re.compile(r"Import labels$"))
    said(page, re.compile(rf"Imported {len(rows) - 1} label\(s\) in 2 categories"), JOB_TIMEOUT_MS)
    said(page, re.compile(r"1 row\(s\) skipped"))  # the row naming a deleted image
    settle(page)
    no_exception(page)
    screenshot(page, "grows-09-labels-imported")

    nav(page, "Clusters")
    expect(metric(page, "Checked images")).to_have_text(str(n_checked))
    no_exception(page)


def step_export_classifier(page, dest: Path) -> None:
    nav(page, "Export")
    fill(page, "Classifier folder", str(dest))
    click(page, re.compile(r"Export classifier$"))
    said(page, re.compile(r"Wrote .*classifier\.safetensors, .*card\.json"), JOB_TIMEOUT_MS)
    settle(page)
    no_exception(page)
    screenshot(page, "grows-10-classifier-exported")


def test_curation_grows(page, app_server, tmp_path: Path) -> None:
    page.set_default_timeout(60_000)
    folder = colour_folder(tmp_path / "colours")
    with step(page, app_server, "grows-open"):
        step_open(page, app_server.url, folder)
    with step(page, app_server, "grows-discover"):
        step_discover(page)
    with step(page, app_server, "grows-name"):
        names, confirmed = step_name_clusters(page)
    with step(page, app_server, "grows-add"):
        step_add_and_rescan(page, folder, names)
    originals = [f"{colour}/{colour}_{i}.png" for colour in ("green", "blue") for i in range(PER_KIND)]
    gone = [path for path in originals if path != confirmed][:2]
    with step(page, app_server, "grows-delete"):
        step_delete_and_rescan(page, folder, gone)
    kept = [path for path in originals if path not in gone and path != confirmed]
    green, blue = [p for p in kept if p.startswith("green/")], [p for p in kept if p.startswith("blue/")]
    # Two labels of each kind for images still there, and one for an image deleted above (skipped).
    rows = [
        (green[-1], "green"),
        (green[-2], "green"),
        (blue[-1], "blue"),
        (blue[-2], "blue"),
        (gone[0], "green"),
    ]
    with step(page, app_server, "grows-import"):
        step_import(page, tmp_path / "labels.csv", rows, n_checked=1 + len(rows) - 1)
    dest = tmp_path / "classifier"
    with step(page, app_server, "grows-export"):
        step_export_classifier(page, dest)

    assert (dest / "classifier.safetensors").is_file()
    card = json.loads((dest / "card.json").read_text())
    assert set(names.values()) <= set(card["classes"]), card["classes"]
    expect(page.locator(IDLE)).to_have_count(1)
    assert page.runs.external_requests == []  # offline: every asset came from the app's own server
