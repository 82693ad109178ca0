"""Numbers, durations and cluster labels formatted the way every page shows them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from turtle_core.workspace.curation import Curation

def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def fmt_int(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def cluster_options(curation: Curation) -> dict[int, str]:
    """Cluster id → "name (size)" for select boxes, largest first."""
    sizes = curation.sizes()
    order = sorted(sizes, key=lambda cid: (-sizes[cid], cid))
    return {cid: f"{curation.name_of(cid)} ({fmt_int(sizes[cid])})" for cid in order}
