"""`benchmarks/first_hour.py --parts browser` reads the Discover page's "Expected time" caption back into
seconds: it must read every duration the page can write (`turtle_ui.fmt.fmt_duration`)."""

from __future__ import annotations

import pytest

from benchmarks.first_hour import shown_seconds
from turtle_ui.fmt import fmt_duration


@pytest.mark.parametrize("seconds", [0, 5, 45, 59, 60, 65, 119.6, 600, 3599, 3600, 7500])
def test_the_caption_s_first_duration_is_read_back(seconds: float) -> None:
    caption = (
        f"Expected time: about {fmt_duration(seconds)} (embedding 2 000 images {fmt_duration(30)}, "
        f"TURTLE {fmt_duration(15)}); about {fmt_duration(20)} if k-means' partition is kept"
    )
    expected = round(seconds) if seconds < 3600 else round(seconds / 60) * 60
    assert shown_seconds(caption) == expected


def test_a_caption_without_a_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="no duration"):
        shown_seconds("Expected time: about – (embeddings cached)")
