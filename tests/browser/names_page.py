"""A Streamlit page that shows hostile names the way the app does (test_names_render.py reads it)."""

from __future__ import annotations

import streamlit as st

from turtle_core.names import markdown_text

HOSTILE_NAMES = [
    "$E=mc^2$ price.png",
    "$$\\int_0^1 x$$",
    "**bold** _it_ ~~x~~ ~y~",
    "`rm -rf` ``a``",
    "<b>bold</b> <i>x",
    "evil\u202egnp.png",
    ":red[alert] :smile: :material/home: :blue-badge[b]",
    ":small[s] :violet-background[v] :streamlit:",
    "- list",
    "# head",
    "1. one",
    "> quote",
    "&amp; &#36; &lt;b&gt;",
    "[link](http://x.org) www.x.org me@x.org https://y.org",
    "a\\b\\\\c \\*",
    "caf\udce9.png",
    "    four spaces",
    "snake_case_name __dunder__",
    "x | y | z",
    "{curly} !bang ^hat",
]

for index, name in enumerate(HOSTILE_NAMES):
    st.markdown(f"**{markdown_text(name)}**")
    st.caption(markdown_text(name))
    st.checkbox(markdown_text(name), key=f"box{index}")
    st.error(markdown_text(name))
