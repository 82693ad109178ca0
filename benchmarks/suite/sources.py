"""Where the suite's images come from: one generator per set, each yielding (class name, PIL image).

Every generator is deterministic for its seed. Sources install offline: the bundled Animal-MNIST,
scikit-learn's digits, Debian's DejaVu and Liberation fonts, the Noto Color Emoji font (Debian
`fonts-noto-color-emoji`) and the sample pictures inside the scikit-image wheel (read from the wheel,
scikit-image itself is not imported or installed).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Sample = tuple[str, Image.Image]

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_PACKAGE = "fonts-noto-color-emoji"
SKIMAGE_WHEEL = "scikit-image==0.26.0"


class SourceUnavailable(RuntimeError):
    """A set's source is not installed and could not be installed; the message says what to do."""


def geometric_counts(largest: int, smallest: int, n_classes: int) -> list[int]:
    """Class sizes falling geometrically from `largest` to `smallest` (the imbalanced sets)."""
    if n_classes == 1:
        return [largest]
    ratio = (smallest / largest) ** (1 / (n_classes - 1))
    return [int(round(largest * ratio**i)) for i in range(n_classes)]


# ---------------------------------------------------------------- Animal-MNIST and digits
def animal_mnist(counts: list[int] | None, seed: int) -> Iterator[Sample]:
    """Bundled Animal-MNIST silhouettes (28×28 grey); `counts` per class, or all 10,000 when None.
    Pixels are written unchanged, so every set drawn from it shares the embedding cache."""
    from turtle_core.ingest.demo import ANIMAL_CLASSES, load_animal_mnist

    images, labels = load_animal_mnist()
    rng = np.random.default_rng(seed)
    for c, name in enumerate(ANIMAL_CLASSES):
        pool = np.flatnonzero(labels == c)
        chosen = pool if counts is None else np.sort(rng.choice(pool, size=counts[c], replace=False))
        for index in chosen:
            yield name, Image.fromarray(images[index])


def sklearn_digits() -> Iterator[Sample]:
    """scikit-learn's 1,797 handwritten digits (8×8, 17 grey levels), upsampled to 32×32."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for pixels, target in zip(digits.images, digits.target, strict=True):
        grey = np.clip(pixels * (255.0 / 16.0), 0, 255).astype(np.uint8)
        yield f"digit_{target}", Image.fromarray(grey).resize((32, 32), Image.Resampling.BILINEAR)


# ---------------------------------------------------------------- glyphs
def font_files() -> list[Path]:
    """The Debian DejaVu and Liberation TrueType fonts present (math font left out: no Latin letters)."""
    fonts = sorted(p for d in FONT_DIRS if d.is_dir() for p in d.glob("*.ttf") if "Math" not in p.name)
    if not fonts:
        raise SourceUnavailable(
            "no DejaVu/Liberation fonts: apt-get install fonts-dejavu-core fonts-liberation"
        )
    return fonts


def glyphs(per_class: int, seed: int, letters: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ") -> Iterator[Sample]:
    """Capital letters (one class each) in random fonts, size, rotation, offset, stroke and ink, 64×64."""
    fonts = font_files()
    rng = np.random.default_rng(seed)
    for letter in letters:
        for _ in range(per_class):
            font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), int(rng.integers(26, 46)))
            stroke = int(rng.integers(0, 3))
            paper, ink = int(rng.integers(200, 256)), int(rng.integers(0, 80))
            canvas = Image.new("L", (96, 96), 255)
            ImageDraw.Draw(canvas).text(
                (48, 48), letter, fill=ink, font=font, anchor="mm", stroke_width=stroke, stroke_fill=ink
            )
            canvas = canvas.rotate(float(rng.uniform(-20, 20)), Image.Resampling.BILINEAR, fillcolor=255)
            dx, dy = rng.integers(-8, 9, 2)
            tile = canvas.crop((16 + dx, 16 + dy, 80 + dx, 80 + dy))
            yield letter, tile.point(lambda v, p=paper: min(v, p))


# ---------------------------------------------------------------- colour emoji
EMOJI_CLASSES: dict[str, str] = {
    "fruit": "🍎🍐🍊🍋🍌🍉🍇🍓🍒🍑",
    "vehicle": "🚗🚕🚙🚌🚎🚓🚑🚒🚐🚚",
    "animal_face": "🐶🐱🐭🐹🐰🦊🐻🐼🐨🐯",
    "smiley": "😀😃😄😁😆😅😂🙂😉😊",
    "heart": "❤🧡💛💚💙💜🖤💔💕💖",
    "weather": "☀🌤⛅🌥☁🌦🌧⛈🌩🌨",
    "ball": "⚽🏀🏈⚾🥎🎾🏐🏉🎱🏓",
    "building": "🏠🏡🏢🏣🏤🏥🏦🏨🏩🏪",
    "plant": "🌵🌲🌳🌴🌱🌿🍀🍁🍂🌾",
    "fast_food": "🍔🍟🍕🌭🥪🌮🌯🥙🥚🍳",
}


def ensure_emoji_font() -> Path:
    """The Noto Color Emoji font, installed with apt-get when missing and allowed (root)."""
    if not EMOJI_FONT.exists() and shutil.which("apt-get"):
        print(f"installing {EMOJI_PACKAGE} with apt-get ...", file=sys.stderr, flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", EMOJI_PACKAGE], check=False)
    if not EMOJI_FONT.exists():
        raise SourceUnavailable(f"{EMOJI_FONT} missing: apt-get install {EMOJI_PACKAGE}")
    return EMOJI_FONT


def render_emoji(font: ImageFont.FreeTypeFont, char: str) -> Image.Image:
    """One emoji as a tight RGBA image (the CBDT bitmaps exist at size 109 only)."""
    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((16, 16), char, font=font, embedded_color=True)
    box = canvas.getbbox()
    if box is None:
        raise SourceUnavailable(f"the emoji font has no picture for {char!r}")
    return canvas.crop(box)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """A random plain, two-colour gradient or noisy background."""
    kind = rng.integers(3)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if kind == 0:
        pixels = np.broadcast_to(a, (size, size, 3))
    elif kind == 1:
        t = np.linspace(0, 1, size)[:, None, None]
        pixels = a * (1 - t) + b * t
        pixels = np.broadcast_to(pixels, (size, size, 3))
    else:
        pixels = a + rng.normal(0, 40, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def emoji(counts: list[int], seed: int) -> Iterator[Sample]:
    """Colour emoji of ten categories (several emoji each), scaled, rotated, placed on random backgrounds."""
    font = ImageFont.truetype(str(ensure_emoji_font()), 109)
    rng = np.random.default_rng(seed)
    for (name, chars), count in zip(EMOJI_CLASSES.items(), counts, strict=True):
        pictures = [render_emoji(font, char) for char in chars]
        for _ in range(count):
            picture = pictures[rng.integers(len(pictures))]
            side = int(rng.integers(44, 88))
            picture = picture.resize((side, side), Image.Resampling.LANCZOS)
            picture = picture.rotate(float(rng.uniform(-30, 30)), Image.Resampling.BICUBIC, expand=True)
            tile = _background(rng, 96)
            x, y = (int(rng.integers(0, max(1, 96 - s + 1))) for s in picture.size)
            tile.paste(picture, (min(x, 96 - 8), min(y, 96 - 8)), picture)
            yield name, tile


# ---------------------------------------------------------------- scikit-image sample pictures
def skimage_wheel(cache: Path) -> Path:
    """The scikit-image wheel, downloaded once into `cache` with pip (no install, no import)."""
    found = sorted(cache.glob("scikit_image-*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        print(
            f"downloading the {SKIMAGE_WHEEL} wheel for its sample pictures ...", file=sys.stderr, flush=True
        )
        subprocess.run(
            [sys.executable, "-m", "pip", "download", SKIMAGE_WHEEL, "--no-deps", "--only-binary=:all:",
             "-d", str(cache), "-q"],
            check=False,
        )  # fmt: skip
        found = sorted(cache.glob("scikit_image-*.whl"))
    if not found:
        raise SourceUnavailable(f"could not download {SKIMAGE_WHEEL}; pip download it into {cache}")
    return found[-1]


def skimage_picture(wheel: Path, name: str) -> Image.Image:
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(f"skimage/data/{name}")
    return Image.open(io.BytesIO(data)).convert("RGB")


def crops(
    pictures: dict[str, str], counts: list[int], wheel: Path, seed: int, grey: bool, min_mean: float = 20.0
) -> Iterator[Sample]:
    """Random crops (side 48–160 px, random quarter turn and flip) of each class's picture, as 96×96
    tiles; crops darker than `min_mean` (empty sky, a retina photo's black border) are drawn again."""
    for name, tile, _ in crop_draws(pictures, counts, wheel, seed, grey, min_mean):
        yield name, tile


def crop_draws(
    pictures: dict[str, str], counts: list[int], wheel: Path, seed: int, grey: bool, min_mean: float = 20.0
) -> Iterator[tuple[str, Image.Image, tuple[int, int, int, int, bool]]]:
    """`crops`' tiles with where each came from: (x, y, side, quarter turns, flipped)."""
    rng = np.random.default_rng(seed)
    for (name, filename), count in zip(pictures.items(), counts, strict=True):
        picture = skimage_picture(wheel, filename)
        if grey:
            picture = picture.convert("L")
        width, height = picture.size
        made = 0
        while made < count:
            side = int(rng.integers(48, min(160, width, height) + 1))
            x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
            tile = picture.crop((x, y, x + side, y + side)).resize((96, 96), Image.Resampling.BILINEAR)
            if np.asarray(tile, dtype=np.float32).mean() < min_mean:
                continue
            turns = int(rng.integers(4))
            tile = tile.rotate(90 * turns)
            flipped = bool(rng.random() < 0.5)
            if flipped:
                tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            made += 1
            yield name, tile, (x, y, side, turns, flipped)
