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

# The map's figure: cluster names as annotations, file names in the hover text (Plotly's HTML subset).
import numpy as np  # noqa: E402

from turtle_ui.figures import scatter_figure  # noqa: E402

CLUSTER_NAMES = {0: "<b>bold</b> &amp; <br>x", 1: "evil\u202egnp $x$", 2: "<a href='http://x.org'>link</a>"}
points = np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]])
st.plotly_chart(
    scatter_figure(points, np.array([0, 1, 2]), np.array([0.5, 0.6, 0.7]), CLUSTER_NAMES, HOSTILE_NAMES[:3]),
    key="map",
)
