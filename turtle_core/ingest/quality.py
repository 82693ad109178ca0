"""Image-quality scores and pixel signatures, measured at scan time from the decoded pixels.

Each score is "lower is worse" and is compared with a threshold by `turtle_core.cleaning.quality`. dark,
light, low information and grayscale follow cleanvision's definitions: dark is the 99th percentile of
perceived brightness, light 1 - its 5th percentile, low information PIL's entropy x 0.1 (capped at 1),
grayscale 1 when the file is a grey image or its colour channels are equal everywhere. They are read from
every n-th row, about 1,024 pixels, which keeps the pixels' distribution (cleanvision reads them all).

blurry is a sharpness of our own (cleanvision's blur score barely moves under a Gaussian blur of a small
picture). With ρ the correlation of each difference between neighbouring pixels (green channel, or grey
level) with the next difference along the same axis, both axes pooled, the score is (1 - ρ) / 2: the mean
of sin²(ω/2) over the image's spatial frequencies ω, weighted by their edge energy. It does not depend on
contrast: about 0.5 for a sharp step, 0.75 for pixel noise, near 0 when every edge is spread over several
pixels; an image with almost no edges scores 1 (low information covers it). It is measured on the image
reduced by an integer box factor to at most 128 px a side (JPEGs are decoded near that scale): a blur of a
couple of pixels vanishes at cleanvision's 64 px.

All scores come from one read of the pixels at that size, and each thread of a scan scores the images it read
together (`QualityScorer`): a few array operations per batch of same-size images instead of some twenty per
image. Aspect ratio and size come from the image's width and height, which the scan records anyway.
"""

from __future__ import annotations

import base64
import functools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image

# Decoding a JPEG at a reduced scale is what makes the scan cheap; the sharpness needs about this many pixels
# on the longer side, and is measured on the image box-reduced to at most this size.
QUALITY_SIDE = 128
SAMPLE_PIXELS = 1024  # brightness, colour and entropy read every n-th row, about this many pixels
BATCH_PIXELS = 1 << 16  # images of one size scored together, up to this many pixels in all
KEPT_SIZES = 8  # pictures and arrays kept for this many sizes of batch at most
GREY_TOLERANCE = 3  # JPEG leaves colour channels of a grey picture a few levels apart
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
ENTROPY_NORMALISER = 0.1
# 8-bit pixels are rounded to whole levels: noise of variance 1/12 per pixel, removed from the differences.
QUANTISATION_NOISE = 1.0 / 12.0
# Below this mean squared difference between neighbours (levels²) an image has no edges to judge.
MIN_EDGE_ENERGY = 0.25
SIGNATURE_SIDE = 16  # the pixel signature: the image averaged down to 16 × 16 RGB
PLAIN_SIDE = 8  # signatures are looked up and compared as a whole at 8 × 8


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


class QualityInput(NamedTuple):
    """A decoded image ready to be scored: 8-bit RGB, or L for a grey file, at most QUALITY_SIDE px a
    side, and how to turn its signature as the image is displayed (EXIF orientation)."""

    pixels: Image.Image
    transpose: Image.Transpose | None = None


def quality_input(
    image: Image.Image, pixels: Image.Image, transpose: Image.Transpose | None = None
) -> QualityInput:
    """`image` as the file holds it (its mode tells grey files apart), `pixels` the same pixels as 8-bit
    RGB (alpha composited on white) or, for a grey file, 8-bit L; reduced here by an integer factor to at
    most QUALITY_SIDE px a side. The scores do not depend on `transpose`."""
    grey_file = image.mode in GREY_MODES or (image.mode == "P" and _grey_palette(image))
    if grey_file and pixels.mode != "L":
        pixels = pixels.convert("L")
    elif not grey_file and pixels.mode != "RGB":
        pixels = pixels.convert("RGB")
    factor = -(-max(pixels.size) // QUALITY_SIDE)
    return QualityInput(pixels.reduce(factor) if factor > 1 else pixels, transpose)


def measure_quality(
    image: Image.Image, pixels: Image.Image, transpose: Image.Transpose | None = None
) -> tuple[QualityScores, str]:
    """Scores and pixel signature of one decoded image (arguments as `quality_input`)."""
    return QualityScorer().measure([quality_input(image, pixels, transpose)])[0]


# Perceived brightness squared: (.241 R² + .691 G² + .068 B²) / 255²; for a grey value v, (v / 255)².
_BRIGHTNESS_WEIGHTS = np.asarray([0.241, 0.691, 0.068], np.float32) / np.float32(255.0**2)
_GREY_SQUARES = (np.arange(256, dtype=np.float32) / np.float32(255.0)) ** 2
_CHANNEL_STEPS = np.asarray([[1, 0], [-1, 1], [0, -1]], np.float32)  # R - G and G - B


class QualityScorer:
    """Scores and pixel signatures of many images. Images of one size are scored together, a few array
    operations per batch rather than per image, in arrays kept from one batch to the next: fresh arrays
    of a few hundred kilobytes cost more in page faults than the arithmetic done in them."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self._pictures: dict[tuple[str, int, int], Image.Image] = {}
        self._offsets_by_shape: dict[tuple[int, ...], np.ndarray] = {}

    def measure(self, inputs: Sequence[QualityInput]) -> list[tuple[QualityScores, str]]:
        """(scores, signature) per input, in order."""
        groups: dict[tuple[int, int, str], list[int]] = defaultdict(list)
        for index, item in enumerate(inputs):
            width, height = item.pixels.size
            groups[(height, width, item.pixels.mode)].append(index)
        scores: list[QualityScores] = [_UNMEASURED] * len(inputs)
        signatures = [""] * len(inputs)
        for (height, width, mode), members in groups.items():
            per_batch = max(1, BATCH_PIXELS // (height * width))
            channels = len(mode)
            for start in range(0, len(members), per_batch):
                batch = members[start : start + per_batch]
                if len(batch) == 1:
                    tall = inputs[batch[0]].pixels
                else:  # the batch pasted into one kept picture, read out once
                    tall = self._picture(mode, width, height * min(per_batch, len(members)))
                    for row, index in enumerate(batch):
                        tall.paste(inputs[index].pixels, (0, row * height))
                pixels = np.frombuffer(tall.tobytes(), np.uint8)[: len(batch) * height * width * channels]
                measured = self._score(pixels.reshape(len(batch), height, width, channels))
                for index, score in zip(batch, measured, strict=True):
                    scores[index] = score
                if width % SIGNATURE_SIDE == 0 and height % SIGNATURE_SIDE == 0:
                    # one reduction averages the blocks of every image in the picture
                    small = tall.reduce((width // SIGNATURE_SIDE, height // SIGNATURE_SIDE))
                    averaged = small.convert("RGB").tobytes() if channels == 1 else small.tobytes()
                    size = SIGNATURE_SIDE * SIGNATURE_SIDE * 3
                    for row, index in enumerate(batch):
                        signatures[index] = _encode(
                            averaged[row * size : (row + 1) * size], inputs[index].transpose
                        )
                else:
                    for index in batch:
                        signatures[index] = pixel_signature(inputs[index].pixels, inputs[index].transpose)
        return list(zip(scores, signatures, strict=True))

    def _picture(self, mode: str, width: int, height: int) -> Image.Image:
        """A kept picture of this mode and size (its contents are whatever was left in it)."""
        key = (mode, width, height)
        if key not in self._pictures:
            if len(self._pictures) >= KEPT_SIZES:
                self._pictures.clear()
            self._pictures[key] = Image.new(mode, (width, height))
        return self._pictures[key]

    def _array(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A kept array of `shape` (its contents are whatever was left in it)."""
        size = math.prod(shape)
        kept = self._arrays.get(name)
        if kept is None or kept.size < size:
            kept = self._arrays[name] = np.empty(size, dtype)
        return kept[:size].reshape(shape)

    def _score(self, pixels: np.ndarray) -> list[QualityScores]:
        """The scores of `pixels` (images, height, width, channels): the sharpness on every pixel of the
        green (or grey) level, the rest on every n-th row, about SAMPLE_PIXELS pixels per image."""
        count, height, width, channels = pixels.shape
        sharpness = self._sharpness(pixels[..., channels // 2])
        rows = pixels[:, :: -(-height // -(-SAMPLE_PIXELS // width))]
        sampled = rows.shape[1] * width
        # one histogram of 256 bins per image and channel (PIL's entropy of a colour image: its three
        # channels' histograms as one), from a single count over codes value + 256 × (image, channel)
        codes = self._array("codes", rows.shape, np.intp)
        np.add(rows, self._offsets(rows.shape), out=codes)
        counts = np.bincount(codes.ravel(), minlength=codes.size // sampled * 256)
        total = sampled * channels
        entropy = math.log2(total) - _c_log_c(total)[counts.reshape(count, -1)].sum(axis=1) / total
        if channels == 1:
            squared = _GREY_SQUARES[rows[..., 0]].reshape(count, sampled)
            grey = np.ones(count, bool)
        else:
            colour = self._array("colour", (count * sampled, 3), np.float32)
            np.copyto(colour.reshape(rows.shape), rows)
            steps = np.abs(colour @ _CHANNEL_STEPS).reshape(count, -1)
            grey = steps.max(axis=1) <= GREY_TOLERANCE
            np.multiply(colour, colour, out=colour)
            squared = (colour @ _BRIGHTNESS_WEIGHTS).reshape(count, sampled)
        high, low = _brightness_percentiles(squared)
        information = np.minimum(1.0, ENTROPY_NORMALISER * entropy)
        table = np.round(np.stack([high, 1.0 - low, information, sharpness, grey]), 4).T.tolist()
        return [QualityScores(*row) for row in table]

    def _offsets(self, shape: tuple[int, ...]) -> np.ndarray:
        """256 × (image, channel) for every value of a (images, rows, width, channels) sample."""
        if shape not in self._offsets_by_shape:
            if len(self._offsets_by_shape) >= KEPT_SIZES:
                self._offsets_by_shape.clear()
            count, channels = shape[0], shape[-1]
            per_band = np.arange(count * channels, dtype=np.intp).reshape(count, 1, 1, channels) * 256
            self._offsets_by_shape[shape] = np.broadcast_to(per_band, shape).copy()
        return self._offsets_by_shape[shape]

    def _sharpness(self, level: np.ndarray) -> np.ndarray:
        """Per image of `level` (images, height, width): (1 - ρ) / 2 for ρ the correlation of each
        difference between neighbouring pixels with the next one along the same axis, both axes pooled;
        1.0 where an image has too few edges to judge."""
        count, height, width = level.shape
        if height < 3 or width < 3:
            return np.ones(count)
        grid = self._array("level", level.shape, np.float32)
        np.copyto(grid, level)
        flat = grid.reshape(count, -1)
        down = self._array("down", (count, flat.shape[1] - width), np.float32)
        np.subtract(flat[:, width:], flat[:, :-width], out=down)  # vertical differences, row after row
        across = self._array("across", (count, height, width - 1), np.float32)
        np.subtract(grid[:, :, 1:], grid[:, :, :-1], out=across)  # horizontal, row after row
        across = across.reshape(count, -1)
        size = down.shape[1] + across.shape[1]
        energy = np.vecdot(down, down) + np.vecdot(across, across) - 2 * QUANTISATION_NOISE * size
        # neighbouring differences share a pixel, whose rounding enters them with opposite signs; the
        # last difference of a row and the first of the next are not neighbours: their products average out
        pairs = down.shape[1] - width + across.shape[1] - 1
        follow = np.vecdot(down[:, width:], down[:, :-width]) + np.vecdot(across[:, 1:], across[:, :-1])
        follow += QUANTISATION_NOISE * pairs
        judged = energy > MIN_EDGE_ENERGY * size
        sharp = 0.5 * (1.0 - follow / np.where(judged, energy, 1.0))
        return np.where(judged, np.clip(sharp, 0.0, 1.0), 1.0)


_UNMEASURED = QualityScores(1.0, 1.0, 1.0, 1.0, 0.0)


def _brightness_percentiles(squared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the 99th and 5th percentiles of perceived brightness (numpy's linear interpolation),
    found on squared brightness (same order) so that only the values used are rooted."""
    n = squared.shape[1]
    ordered = np.sort(squared, axis=1)
    out = []
    for q in (99, 5):
        position = (n - 1) * q / 100
        below = int(math.floor(position))
        lower, upper = np.sqrt(ordered[:, below]), np.sqrt(ordered[:, min(below + 1, n - 1)])
        out.append(lower + (upper - lower) * (position - below))
    return out[0], out[1]


@functools.cache
def _c_log_c(largest: int) -> np.ndarray:
    """c log2 c for every count c from 0 to `largest` (0 for c = 0)."""
    counts = np.arange(largest + 1, dtype=np.float64)
    return counts * np.log2(np.maximum(counts, 1.0))


def _grey_palette(image: Image.Image) -> bool:
    palette = image.getpalette() or []
    triples = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
    return bool(triples.size) and bool((np.ptp(triples, axis=1) == 0).all())


def pixel_signature(image: Image.Image, transpose: Image.Transpose | None = None) -> str:
    """The image averaged down to 16 × 16 RGB, base64 (1,024 characters): near-duplicates of one picture
    (resized, re-compressed, slightly cropped, brightened or turned) keep almost the same signature.
    `transpose` turns it as the image is displayed."""
    width, height = image.size
    if width % SIGNATURE_SIDE == 0 and height % SIGNATURE_SIDE == 0:
        small = image.reduce((width // SIGNATURE_SIDE, height // SIGNATURE_SIDE))
        return _encode(small.convert("RGB").tobytes() if small.mode != "RGB" else small.tobytes(), transpose)
    # Pillow's box filter takes whole pixels in or out: at a fractional ratio two sizes of one picture
    # would average different spans
    planes = np.asarray(image if image.mode in ("RGB", "L") else image.convert("RGB"), np.float32)
    planes = planes[None] if planes.ndim == 2 else planes.transpose(2, 0, 1)  # channel × down × across
    down = area_weights(height, SIGNATURE_SIDE, 0.0, 1.0)
    across = area_weights(width, SIGNATURE_SIDE, 0.0, 1.0)
    averaged = np.broadcast_to(down @ (planes @ across.T), (3, SIGNATURE_SIDE, SIGNATURE_SIDE))
    return _encode(np.round(averaged.transpose(1, 2, 0)).astype(np.uint8).tobytes(), transpose)


@functools.cache
def area_weights(cells: int, side: int, start: float, size: float) -> np.ndarray:
    """`side` × `cells` weights averaging the span [start, start + size] of a row of `cells` cells
    (in fractions of the row) into `side` equal parts, each cell weighed by how much of it a part covers."""
    weights = np.zeros((side, cells), np.float32)
    for part in range(side):
        low, high = (start + size * part / side) * cells, (start + size * (part + 1) / side) * cells
        for cell in range(int(np.floor(low)), min(cells, int(np.ceil(high)))):
            weights[part, cell] = max(0.0, min(high, cell + 1) - max(low, cell))
        weights[part] /= weights[part].sum()
    weights.flags.writeable = False
    return weights


def _encode(averaged: bytes, transpose: Image.Transpose | None) -> str:
    if transpose is not None:
        side = (SIGNATURE_SIDE, SIGNATURE_SIDE)
        averaged = Image.frombytes("RGB", side, averaged).transpose(transpose).tobytes()
    return base64.b64encode(averaged).decode("ascii")


def current_signature(text: str | None) -> bool:
    """Whether `text` is a pixel signature of this program's size (older ones were smaller)."""
    return bool(text) and len(text) == 4 * SIGNATURE_SIDE * SIGNATURE_SIDE


def signature_pixels(signatures: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Signatures as pixels (images × SIGNATURE_SIDE × SIGNATURE_SIDE × RGB, uint8; zero where there is
    none or it has another size), and which exist."""
    side = SIGNATURE_SIDE
    pixels = np.zeros((len(signatures), side, side, 3), np.uint8)
    present = np.zeros(len(signatures), bool)
    for row, text in enumerate(signatures):
        if not text:
            continue
        raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
        if raw.size == side * side * 3:
            pixels[row] = raw.reshape(side, side, 3)
            present[row] = True
    return pixels, present


def plain_vectors(pixels: np.ndarray) -> np.ndarray:
    """Signature pixels averaged to PLAIN_SIDE × PLAIN_SIDE, as unit vectors with each colour channel
    centred on its own mean (so their dot product is a correlation of the picture's layout, which a
    picture's overall tint does not inflate); zero for a flat picture."""
    step = SIGNATURE_SIDE // PLAIN_SIDE
    vectors = np.empty((len(pixels), PLAIN_SIDE * PLAIN_SIDE * 3), np.float32)
    for start in range(0, len(pixels), 65_536):
        block = pixels[start : start + 65_536].astype(np.float32)
        block = block.reshape(len(block), PLAIN_SIDE, step, PLAIN_SIDE, step, 3).mean(axis=(2, 4))
        block -= block.mean(axis=(1, 2), keepdims=True)
        flat = block.reshape(len(block), -1)
        norms = np.linalg.norm(flat, axis=1, keepdims=True)
        vectors[start : start + len(block)] = flat / np.where(norms > 0, norms, 1.0)  # a flat one stays 0
    return vectors


def signature_vectors(signatures: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Signatures as `plain_vectors`, and which exist."""
    pixels, present = signature_pixels(signatures)
    return plain_vectors(pixels), present
