"""Hostile names rendered by Streamlit in real Chromium: shown as their characters, never interpreted."""

from __future__ import annotations

import pytest
from conftest import ROOT, AppServer, settle

from turtle_core.names import WORD_JOINER, display_name

pytestmark = pytest.mark.browser

SHOWN = ", ".join(
    "[data-testid='stMain'] " + part
    for part in (
        "[data-testid='stMarkdown']",
        "[data-testid='stCaptionContainer']",
        "[data-testid='stCheckbox'] label",
    )
)


def test_markdown_text_shows_every_hostile_name_literally(browser, tmp_path) -> None:
    # Beside this file; importing it outside Streamlit draws nothing.
    from names_page import CLUSTER_NAMES, HOSTILE_NAMES

    server = AppServer(tmp_path, script=ROOT / "tests" / "browser" / "names_page.py")
    try:
        server.wait_healthy()
        page = browser.new_page()
        page.goto(server.url)
        settle(page, 60_000)
        page.wait_for_selector("[data-testid='stAlertContentError']")
        main = page.locator("[data-testid='stMain']")
        shown = [text.replace(WORD_JOINER, "").strip() for text in page.locator(SHOWN).all_inner_texts()]
        shown += [
            t.replace(WORD_JOINER, "").strip()
            for t in main.locator("[data-testid='stAlertContentError']").all_inner_texts()
        ]
        for name in HOSTILE_NAMES:
            # Bold header, caption, checkbox label and error box each show exactly the name.
            assert shown.count(display_name(name).strip()) >= 4, (name, shown)
        # Nothing was interpreted: no LaTeX, links, code, colours, emoji or icons; bold only where we asked.
        assert main.locator(".katex").count() == 0
        assert main.locator("a").count() == 0
        assert main.locator("code").count() == 0
        assert main.locator("img").count() == 0
        assert main.locator("[data-testid='stIconMaterial']").count() == 0
        assert main.locator("strong").count() == len(HOSTILE_NAMES)
        styled = "[data-testid='stMarkdownContainer'] :is([style*='color'], [style*='background'])"
        assert main.locator(styled).count() == 0  # :red[…], :blue-background[…], badges
        # Plotly: the cluster names on the map read as typed, with no tags or entities applied.
        page.wait_for_selector(".annotation-text")
        labels = sorted(page.locator(".annotation-text").all_text_contents())
        assert labels == sorted(f"● {display_name(name)}" for name in CLUSTER_NAMES.values())  # dot, name
        page.close()
    finally:
        server.stop()
