"""Select boxes over clusters whose labels carry counts ("cats (12)"), kept on their cluster as counts change.

A browser sends a select box's choice back as the label it was last given. After an edit changes a count,
that old label ("cats (12)" where it is now "cats (11)") matches no option and Streamlit falls back to the
first one: the gallery jumped to another cluster on the next click, and the box went on showing the old
count. So the cluster shown is remembered, an unknown label brings it back, and whenever its label changes
the app hands the browser the new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st


def cluster_selectbox(
    container: Any,
    label: str,
    choices: Sequence[int],
    format_func: Callable[[int], str],
    *,
    key: str,
    **kwargs: Any,
) -> int:
    """`container.selectbox(label, choices, format_func=..., key=key)` that stays on the cluster it showed
    when the labels change, and shows the current label; returns the cluster id."""
    shown_key = f"{key}:shown"  # (cluster id, label) the browser was last given
    shown = st.session_state.get(shown_key)
    value = st.session_state.get(key)
    if value not in choices:  # an out-of-date label, or the widget's first draw
        value = shown[0] if shown is not None and shown[0] in choices else choices[0]
    current = (value, format_func(value))
    if shown is None or tuple(shown) != current or st.session_state.get(key) != value:
        st.session_state[key] = value  # hands the browser the current label
    st.session_state[shown_key] = current
    return container.selectbox(label, list(choices), format_func=format_func, key=key, **kwargs)
