"""The whole curator loop in headless Chromium against `streamlit run app.py`, with the real engine:
demo → discover → lasso on the map → move to a new cluster → rename → merge → undo → export."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from conftest import IDLE, screenshot, settle

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # ~2-7 min: real embedding of 200 images

DISCOVERY_TIMEOUT_MS = 420_000  # offline backbones + TURTLE on 200 images, 2 shared CPU cores


def nav(page, title: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title).click()
    settle(page)
    page.get_by_role("heading", name=re.compile(title)).first.wait_for()


def choose(page, label: str, option: str) -> None:
    """Pick the option starting with `option` in the select box labelled `label`."""
    page.get_by_role("combobox", name=label, exact=True).first.click()
    page.get_by_role("option", name=re.compile("^" + re.escape(option))).first.click()
    settle(page)


def choose_many(page, label: str, options: list[str]) -> None:
    """Pick, one after the other, the options matching these regular expressions in a multiselect."""
    for option in options:
        page.get_by_role("combobox", name=label, exact=True).first.click()
        page.get_by_role("option", name=re.compile(option)).first.click()
        page.keyboard.press("Escape")
        settle(page)


def fill(page, label: str, text: str) -> None:
    field = page.get_by_label(label, exact=True).first
    field.fill(text)
    field.press("Enter")
    settle(page)


def click(page, name: str | re.Pattern[str]) -> None:
    page.get_by_role("button", name=name).first.click()
    settle(page)


def lasso(page) -> None:
    """Draw a closed lasso around the middle of the plot."""
    area = page.locator(".js-plotly-plot .nsewdrag").first
    area.wait_for()
    box = area.bounding_box()
    cx, cy = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5
    rx, ry = box["width"] * 0.22, box["height"] * 0.22
    import math

    points = [
        (cx + rx * math.cos(2 * math.pi * t / 24), cy + ry * math.sin(2 * math.pi * t / 24))
        for t in range(25)
    ]
    page.mouse.move(*points[0])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x, y, steps=3)
    page.mouse.up()
    settle(page)


def segment(page, option: str) -> None:
    """Click an option of a segmented control."""
    page.get_by_role("radio", name=option, exact=True).click()
    settle(page)


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    settle(page)
    assert page.get_by_role("tab", name=name).get_attribute("aria-selected") == "true"


def charts_drawn(page) -> None:
    """Wait until every chart on the page has drawn (before a screenshot)."""
    page.wait_for_function(
        """() => [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
                  .every(c => c.querySelector("canvas, svg"))"""
    )


def step_project(page) -> None:
    click(page, "Try the demo")
    page.get_by_text("Usable images").wait_for(timeout=120_000)
    settle(page)
    assert page.locator("[data-testid='stMetricValue']").first.inner_text() == "200"
    screenshot(page, "02-project")


def step_discover(page) -> None:
    nav(page, "Discover")
    assert page.get_by_label("Categories", exact=True).input_value() == "10"
    click(page, "Run discovery")
    page.get_by_role("heading", name="Result").wait_for(timeout=DISCOVERY_TIMEOUT_MS)
    settle(page)
    charts_drawn(page)
    screenshot(page, "03-discover")


def click_point(page, index: int) -> None:
    """Click the map's point `index`, located through Plotly's own axis conversions."""
    page.wait_for_selector(".js-plotly-plot .nsewdrag")
    x, y = page.evaluate(
        """(i) => {
            const gd = document.querySelector(".js-plotly-plot");
            const layout = gd._fullLayout, trace = gd._fullData[0], box = gd.getBoundingClientRect();
            return [box.left + layout.xaxis._offset + layout.xaxis.l2p(trace.x[i]),
                    box.top + layout.yaxis._offset + layout.yaxis.l2p(trace.y[i])];
        }""",
        index,
    )
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    settle(page)


def step_map(page) -> int:
    """Click one point to see its image, then lasso part of the PCA map and move it to a new cluster;
    returns how many images moved."""
    nav(page, "Map")
    segment(page, "PCA")  # a stable layout while UMAP is computed in the background
    segment(page, "Click")
    click_point(page, 0)
    page.get_by_text(re.compile(r"· confidence \d\.\d\d ·")).wait_for()
    assert page.locator("[data-testid='stImage']").count() == 1
    screenshot(page, "04-map-point")
    segment(page, "Lasso")
    lasso(page)
    selected = page.get_by_text(re.compile(r"^\d+ images selected$"))
    selected.wait_for()
    n_selected = int(selected.inner_text().split()[0])
    assert n_selected > 1
    screenshot(page, "05-map-selection")
    fill(page, "New cluster name", "lasso group")
    click(page, re.compile(r"^Move \d+ images$"))
    page.get_by_text("to the new cluster 'lasso group'").wait_for()
    screenshot(page, "06-map-moved")
    return n_selected


def step_clusters(page) -> None:
    """Rename the new cluster, merge it into another, then undo the merge."""
    nav(page, "Clusters")
    tab(page, "Rename")
    choose(page, "Cluster", "lasso group")
    fill(page, "New name", "picked")
    click(page, "Rename")
    page.get_by_text("Renamed 'lasso group' to 'picked'.").wait_for()

    tab(page, "Merge")
    choose_many(page, "Clusters to merge", [r"^picked \(", r"^Cluster \d+ \("])
    fill(page, "Name of the merged cluster", "merged")
    click(page, "Merge")
    page.get_by_text(re.compile("Merged 2 clusters into 'merged'")).wait_for()
    screenshot(page, "07-clusters-merged")

    click(page, "Undo")
    page.get_by_text(re.compile("Undone: Merged")).wait_for()
    assert page.get_by_text("picked", exact=True).first.is_visible()
    screenshot(page, "08-clusters-undone")

    segment(page, "Gallery")
    screenshot(page, "09-clusters-gallery")


def step_export(page, dest: Path) -> None:
    nav(page, "Export")
    fill(page, "Destination folder", str(dest))
    click(page, "Export")
    page.get_by_text(re.compile(r"Exported \d+ images")).wait_for(timeout=120_000)
    settle(page)
    screenshot(page, "10-export")


def test_curator_loop(page, app_server, tmp_path: Path) -> None:
    page.goto(app_server.url)
    settle(page)
    screenshot(page, "01-start")
    step_project(page)
    step_discover(page)
    n_selected = step_map(page)
    step_clusters(page)
    dest = tmp_path / "exported"
    step_export(page, dest)

    # The dataset on disk: every image once; the lassoed ones under their new name; the merge undone.
    with open(dest / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 200
    assert len([row for row in rows if row["label"] == "picked"]) == n_selected
    assert not [row for row in rows if row["label"] == "merged"]
    assert len(list((dest / "picked").iterdir())) == n_selected
    assert sum(1 for _ in dest.rglob("*.png")) == 200
    assert page.locator(IDLE).count() == 1
