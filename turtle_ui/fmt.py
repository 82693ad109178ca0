"""Numbers, durations, rates and cluster labels formatted the way every page shows them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from turtle_core.names import display_name

if TYPE_CHECKING:
    from turtle_core.progress import Progress
    from turtle_core.state.curation import Curation

THIN_SPACE = (
    "\u202f"  # groups thousands: "22 800" (never a comma, which reads as a decimal mark in much of Europe)
)

# What each engine stage counts, for reports that do not name their unit.
STAGE_UNITS = {
    "scan": "files",
    "embed": "images",
    "turtle": "steps",
    "select": "steps",
    "split": "steps",
    "layout": "points",
    "export": "images",
    "thumbnails": "images",
    "demo": "images",
}


def fmt_duration(seconds: float | None) -> str:
    """ "45 s", "2 min 05 s", "1 h 03 min"; rounded once, so 119.6 s reads "2 min 00 s", never "1 min 60 s"."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    whole = round(max(0.0, seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    minutes = round(whole / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def fmt_int(n: int) -> str:
    return f"{int(n):,}".replace(",", THIN_SPACE)


def fmt_count(n: int, noun: str, plural: str | None = None) -> str:
    """A count with its noun, singular for exactly one: "1 image", "2 images", "1 category" /
    "3 categories" (pass `plural` where adding "s" is wrong), thousands grouped like `fmt_int`."""
    return f"{fmt_int(n)} {noun if int(n) == 1 else plural or noun + 's'}"


def fmt_number(value: float, decimals: int = 1) -> str:
    """A number with thin-space thousands and a point as the decimal mark: "85 916.6"."""
    return f"{value:,.{decimals}f}".replace(",", THIN_SPACE)


def stage_unit(progress: Progress) -> str:
    return progress.unit or STAGE_UNITS.get(progress.stage, "items")


def fmt_rate(rate: float, unit: str) -> str:
    """A rate in its own unit: "85 917 images/s", "4.2 steps/s", or "12 s per start" when slow."""
    if not math.isfinite(rate) or rate <= 0:
        return ""
    if rate >= 100:
        return f"{fmt_int(round(rate))} {unit}/s"
    if rate >= 1:
        return f"{rate:.1f} {unit}/s"
    singular = unit[:-1] if unit.endswith("s") else unit
    return f"{fmt_duration(1.0 / rate)} per {singular}"


def fmt_eta(progress: Progress) -> str:
    """The time left, never "0 s" while work remains: "finishing…" once the counted work is done."""
    if not progress.remaining:
        return "finishing…"
    if progress.eta_s is None or not math.isfinite(progress.eta_s):
        return "estimating the time left…"
    return f"about {fmt_duration(max(1.0, math.ceil(progress.eta_s)))} left"


def cluster_options(curation: Curation) -> dict[int, str]:
    """Cluster id → "name (size)" for select boxes, largest first."""
    sizes = curation.sizes()
    order = sorted(sizes, key=lambda cid: (-sizes[cid], cid))
    return {cid: f"{display_name(curation.name_of(cid))} ({fmt_int(sizes[cid])})" for cid in order}


def middle_ellipsis(text: str, max_chars: int = 22) -> str:
    """`text` shortened in the middle ("IMG_2024_0…_final.jpg") so both its start and its extension show."""
    if len(text) <= max_chars:
        return text
    keep = max_chars - 1
    head = (keep + 1) // 2
    tail = keep - head
    return f"{text[:head]}…{text[-tail:]}" if tail else f"{text[:head]}…"
