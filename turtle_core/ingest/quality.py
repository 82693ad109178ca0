"""Image-quality scores measured while an image is decoded at scan time (cleanvision's definitions).

Each score is "lower is worse" and is compared with a fixed threshold by `turtle_core.cleaning.quality`:
dark (99th percentile of perceived brightness), light (1 - its 5th percentile), low information
(PIL entropy x 0.1, capped at 1), blurry (spread of the edges of the image shrunk to 64 px, plus
cleanvision's grey-histogram term so that flat images do not count as blurry) and grayscale (1 when the
file is a grey image, or when its colour channels are equal everywhere). Aspect ratio and size come from
the image's width and height, which the scan records anyway.
"""

from __future__ import annotations

import base64
import math
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

# Decoding a JPEG at a reduced scale is what makes the scan cheap; the scores need at least this many
# pixels on the longer side (blur is measured at 64 px, as cleanvision does).
QUALITY_SIDE = 128
BLUR_SIDE = 64
SAMPLE_SIDE = 64  # brightness percentiles and the grey check read every n-th pixel, about this many a side
GREY_TOLERANCE = 3  # JPEG leaves colour channels of a grey picture a few levels apart
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
BLUR_NORMALISER = 0.01
BLUR_COLOUR_THRESHOLD = 0.18
ENTROPY_NORMALISER = 0.1
SIGNATURE_SIDE = 8  # the pixel signature: the image averaged down to 8 × 8 RGB


class QualityScores(NamedTuple):
    """Per-image scores in [0, 1], lower = worse (grayscale: 1.0 grey, 0.0 colour)."""

    dark: float
    light: float
    low_information: float
    blurry: float
    grayscale: float


def draft_size(width: int, height: int) -> tuple[int, int]:
    """The size to ask a JPEG decoder for: an eighth of the image, but enough pixels to score it."""
    longest = max(width, height, 1)
    scale = max(1 / 8, min(1.0, QUALITY_SIDE / longest))
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def measure_quality(image: Image.Image, rgb: Image.Image) -> tuple[QualityScores, str]:
    """Scores and pixel signature of a decoded image: `image` as the file holds it (its mode tells grey
    files apart), `rgb` the same pixels as 8-bit RGB (alpha composited on white)."""
    pixels = np.asarray(rgb)
    step = max(1, math.ceil(max(pixels.shape[:2]) / SAMPLE_SIDE))
    sample = pixels[::step, ::step].reshape(-1, 3)
    high, low = _brightness_percentiles(sample)
    blur, small = _blur_score(rgb)
    grey_file = image.mode in GREY_MODES or (image.mode == "P" and _grey_palette(image))
    if grey_file:
        entropy = rgb.convert("L").entropy()
        grey = True
    else:
        entropy = rgb.entropy()
        wide = sample.astype(np.int16)
        grey = bool(sample.size) and int(np.abs(wide[:, :2] - wide[:, 1:]).max()) <= GREY_TOLERANCE
    return QualityScores(
        dark=round(high, 4),
        light=round(1.0 - low, 4),
        low_information=round(min(1.0, ENTROPY_NORMALISER * float(entropy)), 4),
        blurry=round(blur, 4),
        grayscale=1.0 if grey else 0.0,
    ), pixel_signature(small)


# Perceived brightness squared, per channel value: √(.241 R² + .691 G² + .068 B²) / 255 from three lookups.
_SQUARES = np.arange(256, dtype=np.float32) ** 2 / 255.0**2
_WEIGHTED = (0.241 * _SQUARES, 0.691 * _SQUARES, 0.068 * _SQUARES)


def _brightness_percentiles(sample: np.ndarray) -> tuple[float, float]:
    """The 99th and 5th percentiles of perceived brightness (numpy's linear interpolation), computed
    on squared brightness (same order) so that only four square roots are taken."""
    if not sample.size:
        return 0.0, 0.0
    squared = _WEIGHTED[0][sample[:, 0]] + _WEIGHTED[1][sample[:, 1]] + _WEIGHTED[2][sample[:, 2]]
    n = squared.size
    positions = [(n - 1) * q / 100 for q in (99, 5)]
    ranks = sorted({min(int(math.floor(p)) + k, n - 1) for p in positions for k in (0, 1)})
    ordered = dict(zip(ranks, np.partition(squared, ranks)[ranks].tolist(), strict=True))
    out = []
    for position in positions:
        below = int(math.floor(position))
        lower, upper = math.sqrt(ordered[below]), math.sqrt(ordered[min(below + 1, n - 1)])
        out.append(lower + (upper - lower) * (position - below))
    return out[0], out[1]


def _grey_palette(image: Image.Image) -> bool:
    palette = image.getpalette() or []
    triples = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
    return bool(triples.size) and bool((np.ptp(triples, axis=1) == 0).all())


def _blur_score(rgb: Image.Image) -> tuple[float, Image.Image]:
    """cleanvision's blur score, and the image shrunk to at most 64 px that it was measured on."""
    width, height = rgb.size
    ratio = max(width, height) / BLUR_SIDE
    small = rgb.resize((max(int(width // ratio), 1), max(int(height // ratio), 1))) if ratio > 1 else rgb
    grey = small.convert("L")
    edges = _histogram_std(grey.filter(ImageFilter.FIND_EDGES).histogram())
    blur = 1.0 - math.exp(-BLUR_NORMALISER * edges)
    spread = 1.0 - math.exp(-BLUR_NORMALISER * float(np.std(grey.histogram())))
    return min(1.0, blur + (spread if spread > BLUR_COLOUR_THRESHOLD else 0.0)), small


_LEVELS = np.arange(256, dtype=np.float64)


def _histogram_std(histogram: list[int]) -> float:
    """Standard deviation of the pixel values of a grey image, from its histogram."""
    counts = np.asarray(histogram, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    mean = counts @ _LEVELS / total
    return math.sqrt(max(0.0, counts @ (_LEVELS - mean) ** 2 / total))


def pixel_signature(rgb: Image.Image) -> str:
    """The image averaged down to 8 × 8 RGB, base64 (256 characters): near-duplicates of one picture
    (resized, re-compressed, slightly cropped, brightened or turned) keep almost the same signature.
    `measure_quality` takes it from the image already shrunk for the blur score."""
    small = rgb.resize((SIGNATURE_SIDE, SIGNATURE_SIDE), Image.Resampling.BOX)
    return base64.b64encode(np.asarray(small, dtype=np.uint8).tobytes()).decode("ascii")


def signature_vectors(signatures: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Signatures as zero-mean unit vectors (so their dot product is a correlation), and which exist."""
    size = SIGNATURE_SIDE * SIGNATURE_SIDE * 3
    vectors = np.zeros((len(signatures), size), np.float32)
    present = np.zeros(len(signatures), bool)
    for row, text in enumerate(signatures):
        if not text:
            continue
        raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
        if raw.size != size:
            continue
        centred = raw.astype(np.float32) - raw.mean()
        norm = float(np.linalg.norm(centred))
        vectors[row] = centred / norm if norm > 0 else 0.0
        present[row] = True
    return vectors, present
