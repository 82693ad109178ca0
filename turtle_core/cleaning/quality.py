"""Image-quality flags for a folder: thresholds applied to the scores the scan measured (cleanvision's
for every flag but blurry, whose score is our own sharpness, `ingest.quality`).

Two flags look at the folder too. Odd size: an image whose square-root area lies outside the quartiles
widened by three inter-quartile ranges (cleanvision's rule; when most images share one size, every other
size is odd). Blurry: an image whose sharpness is below the threshold and, when at least 20 measured
images of the folder have its width and height, below half their median sharpness: pictures of one size
mostly come from one source, and a source of soft pictures (small pictures enlarged, say) should not get
every image flagged, only those much softer than the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from turtle_core.ingest.scan import ImageRecord

QUALITY_FLAGS: tuple[str, ...] = (
    "dark",
    "light",
    "blurry",
    "low_information",
    "odd_aspect_ratio",
    "odd_size",
    "grayscale",
)
FLAG_TITLES: dict[str, str] = {
    "dark": "dark",
    "light": "light",
    "blurry": "blurry",
    "low_information": "low information",
    "odd_aspect_ratio": "odd aspect ratio",
    "odd_size": "odd size",
    "grayscale": "grayscale",
}
# A score below its threshold is an issue: cleanvision's defaults, and for blurry the sharpness of a step
# edge under a Gaussian blur of σ ≈ 1.2 px at the measured size ((1 - exp(-1 / 4σ²)) / 2 = 0.08).
THRESHOLDS: dict[str, float] = {
    "dark": 0.32,
    "light": 0.05,
    "blurry": 0.08,
    "low_information": 0.3,
    "odd_aspect_ratio": 0.35,
}
ODD_SIZE_IQR_FACTOR = 3.0
BLUR_PEER_SHARE = 0.5  # blurry also needs a sharpness below this share of the median of its size...
BLUR_PEERS_MIN = 20  # ...where the folder has this many measured images of that size


@dataclass(frozen=True)
class QualityFlags:
    """One row per image, one boolean column per flag (`QUALITY_FLAGS` order); `measured` is False
    for images scanned before quality was measured (only their shape flags can be set)."""

    table: np.ndarray
    measured: np.ndarray

    def column(self, flag: str) -> np.ndarray:
        """The images that carry `flag`."""
        return self.table[:, QUALITY_FLAGS.index(flag)]

    def counts(self) -> dict[str, int]:
        """How many images carry each flag."""
        return {flag: int(count) for flag, count in zip(QUALITY_FLAGS, self.table.sum(0), strict=True)}

    def any_of(self, flags: Sequence[str]) -> np.ndarray:
        """The images that carry at least one of `flags` (none given: none)."""
        if not flags:
            return np.zeros(self.table.shape[0], bool)
        return self.table[:, [QUALITY_FLAGS.index(flag) for flag in flags]].any(1)

    def names_of(self, row: int) -> list[str]:
        """The flags of one image, in `QUALITY_FLAGS` order."""
        return [flag for flag, on in zip(QUALITY_FLAGS, self.table[row], strict=True) if on]

    def columns(self) -> dict[str, list[int]]:
        """Flag → 0/1 per image (for manifests and CSV files)."""
        return {flag: self.table[:, i].astype(int).tolist() for i, flag in enumerate(QUALITY_FLAGS)}


def quality_flags(records: Sequence[ImageRecord]) -> QualityFlags:
    """The flags of `records` (a folder's usable images) from their scan-time scores and sizes."""
    n = len(records)
    table = np.zeros((n, len(QUALITY_FLAGS)), bool)
    if n == 0:
        return QualityFlags(table, np.zeros(0, bool))
    # fromiter: numpy takes 100,000 small tuples from a list several times slower (pages call this)
    qualities = [record.quality for record in records]
    measured = np.fromiter((quality is not None for quality in qualities), bool, n)
    unmeasured = (1.0, 1.0, 1.0, 1.0, 0.0)
    scores = np.fromiter(
        chain.from_iterable(unmeasured if quality is None else quality for quality in qualities),
        np.float64,
        n * len(unmeasured),
    ).reshape(n, len(unmeasured))
    width = np.maximum(1.0, np.fromiter((record.width for record in records), np.float64, n))
    height = np.maximum(1.0, np.fromiter((record.height for record in records), np.float64, n))
    for i, flag in enumerate(("dark", "light", "low_information", "blurry")):
        table[:, QUALITY_FLAGS.index(flag)] = scores[:, i] < THRESHOLDS[flag]
    table[:, QUALITY_FLAGS.index("blurry")] &= scores[:, 3] < BLUR_PEER_SHARE * _peer_sharpness(
        scores[:, 3], measured, width, height
    )
    table[:, QUALITY_FLAGS.index("grayscale")] = scores[:, 4] >= 0.5
    aspect = np.minimum(width / height, height / width)
    table[:, QUALITY_FLAGS.index("odd_aspect_ratio")] = aspect < THRESHOLDS["odd_aspect_ratio"]
    table[:, QUALITY_FLAGS.index("odd_size")] = odd_sizes(np.sqrt(width * height))
    table[~measured] &= np.isin(np.arange(len(QUALITY_FLAGS)), [4, 5])  # shape flags only
    return QualityFlags(table, measured)


def _peer_sharpness(
    sharpness: np.ndarray, measured: np.ndarray, width: np.ndarray, height: np.ndarray
) -> np.ndarray:
    """Per image, the median sharpness of the measured images of its width and height, where there are
    at least BLUR_PEERS_MIN of them (elsewhere infinity: the threshold alone decides)."""
    sizes, group = np.unique(width * 2.0**32 + height, return_inverse=True)
    group = group.reshape(-1)
    values, owners = sharpness[measured], group[measured]
    order = np.lexsort((values, owners))  # by size, then sharpness
    values = values[order]
    counts = np.bincount(owners, minlength=sizes.size)
    starts = np.cumsum(counts) - counts
    enough = counts >= BLUR_PEERS_MIN
    medians = np.full(sizes.size, np.inf)
    middle_low, middle_high = (starts + (counts - 1) // 2)[enough], (starts + counts // 2)[enough]
    medians[enough] = (values[middle_low] + values[middle_high]) / 2
    return medians[group]


def odd_sizes(size: np.ndarray) -> np.ndarray:
    """cleanvision's odd-size rule on square-root areas."""
    q1, q3 = np.percentile(size, [25, 75])
    low, high = q1 - ODD_SIZE_IQR_FACTOR * (q3 - q1), q3 + ODD_SIZE_IQR_FACTOR * (q3 - q1)
    middle, gap = (low + high) / 2, high - low
    if gap > 0:
        return np.abs(size - middle) / gap > 0.5
    return np.abs(size - middle) > 0
