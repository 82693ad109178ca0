"""A page opened by its URL as the first visit to a freshly started server (a bookmark, or a tab reloaded
after the app restarted) shows the project, inside the app's sidebar and navigation."""

from __future__ import annotations

import urllib.parse

import numpy as np
import pytest
from conftest import AppServer, settle
from PIL import Image
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_a_bookmarked_page_opens_its_project_on_a_fresh_server(browser, tmp_path) -> None:
    folder = tmp_path / "bookmarked photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"img_{i}.png")
    (tmp_path / "server").mkdir()
    server = AppServer(tmp_path / "server")
    try:
        server.wait_healthy()
        page = browser.new_page()
        page.goto(f"{server.url}/clusters?folder={urllib.parse.quote(str(folder))}")  # no visit before it
        settle(page, 60_000)
        sidebar = page.locator("[data-testid='stSidebar']")
        expect(sidebar.get_by_text("bookmarked photos", exact=True)).to_be_visible(timeout=30_000)
        expect(sidebar.get_by_role("link", name="Clusters")).to_be_visible()  # the app's navigation
        expect(page.get_by_text("No project is open yet")).to_have_count(0)
        assert "/clusters" in page.url
        page.close()
    finally:
        server.stop()
