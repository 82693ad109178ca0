"""Find the usable images in a folder, report the unusable ones, and decode images robustly."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import os
import re
import stat
import threading
import warnings
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from turtle_core.constants import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS
from turtle_core.ingest.quality import QualityInput, QualityScorer, QualityScores, draft_size, quality_input
from turtle_core.names import display_name
from turtle_core.paths import OUTSIDE_REASON, OutsideReadRoots, ReadRoots, is_within, open_within
from turtle_core.progress import ProgressCallback, ProgressMeter, check_cancel

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# Oversized images are refused explicitly with a reason (see _check_pixels); Pillow's own warning
# would only repeat it. (warnings.catch_warnings is not thread-safe, hence a global filter.)
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# 2: quality scores and pixel signatures per record (format 1: read without them); 3: the blurry score is
# the sharpness of `ingest.quality` (format 2's records are read without their scores, measured again);
# 4: pixel signatures of 16 × 16 (format 3's 8 × 8 ones are dropped, measured again)
SCAN_FORMAT_VERSION = 4
_SWAPPED_ORIENTATIONS = {5, 6, 7, 8}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Images a thread of the scan reads, then scores together. A task per image cost a future and a thread
# switch each: 1,000 context switches in a scan of 250 small PNGs without scores, 160 in shares.
_SHARE = 32


class ScanError(ValueError):
    """The folder itself cannot be scanned (missing, not a folder, unreadable)."""


class UnusableImage(Exception):
    """An image file cannot be decoded; `reason` is a short human sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageRecord:
    """One usable image. `path` is relative to the scan root with "/" separators; `width`/`height`
    are as displayed (EXIF orientation applied); `label` is the first-level sub-folder or None;
    `quality` the image-quality scores measured at scan time and `signature` its pixel signature
    (`ingest.quality.pixel_signature`), both None when not measured."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    width: int
    height: int
    label: str | None
    quality: QualityScores | None = None
    signature: str | None = None

    def __post_init__(self) -> None:
        if self.quality is not None and not isinstance(self.quality, QualityScores):
            object.__setattr__(self, "quality", QualityScores(*self.quality))  # read back from JSON


@dataclass(frozen=True)
class SkippedFile:
    """A file that looked like an image but cannot be used, and why."""

    path: str
    reason: str


@dataclass
class ScanResult:
    """Usable images (sorted by path), skipped files, and groups of paths with identical content."""

    root: str
    images: list[ImageRecord]
    skipped: list[SkippedFile]
    duplicates: list[list[str]]
    ignored: int = 0  # files without an image extension
    reused: int = 0  # records taken unchanged from the previous scan

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe representation (non-UTF-8 names stay as surrogate-escaped strings)."""
        return {
            "version": SCAN_FORMAT_VERSION,
            "root": self.root,
            "images": [asdict(r) for r in self.images],
            "skipped": [asdict(s) for s in self.skipped],
            "duplicates": [list(g) for g in self.duplicates],
            "ignored": self.ignored,
            "reused": self.reused,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanResult:
        """Read `to_dict`'s output (any format up to `SCAN_FORMAT_VERSION`)."""
        version = int(data.get("version", 1))
        if version > SCAN_FORMAT_VERSION:
            raise ValueError(f"scan format {data.get('version')} is newer than this program reads")
        images = [ImageRecord(**r) for r in data["images"]]
        if version < 3:  # scores measured with another blur score: measured again at the next scan
            images = [dataclasses.replace(r, quality=None) for r in images]
        if version < 4:  # smaller signatures: measured again at the next scan
            images = [dataclasses.replace(r, signature=None) for r in images]
        return cls(
            root=data["root"],
            images=images,
            skipped=[SkippedFile(**s) for s in data["skipped"]],
            duplicates=[list(g) for g in data["duplicates"]],
            ignored=int(data.get("ignored", 0)),
            reused=int(data.get("reused", 0)),
        )

    def folder_labels(self) -> list[str] | None:
        """Per-image sub-folder names when every image sits in a class sub-folder and there are at
        least two classes (usable as ground truth for evaluation only), else None."""
        labels = [r.label for r in self.images]
        if not labels or any(label is None for label in labels) or len(set(labels)) < 2:
            return None
        return [str(label) for label in labels]

    def summary(self) -> dict[str, int]:
        """Counts for display: images, skipped, ignored, duplicate groups and extra copies, classes."""
        return {
            "images": len(self.images),
            "skipped": len(self.skipped),
            "ignored": self.ignored,
            "duplicate_groups": len(self.duplicates),
            "duplicate_files": sum(len(g) - 1 for g in self.duplicates),
            "folder_labels": len({r.label for r in self.images if r.label is not None}),
            "reused": self.reused,
        }


def hash_bytes(data: bytes) -> str:
    """Content hash used as the identity of an image everywhere (embedding cache, thumbnails)."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


# ---------------------------------------------------------------- decoding


def _pixel_limit() -> int:
    return int(Image.MAX_IMAGE_PIXELS or MAX_IMAGE_PIXELS)


def _check_pixels(image: Image.Image) -> None:
    width, height = image.size
    limit = _pixel_limit()
    if width * height > limit:
        raise UnusableImage(_too_large(width * height, limit))


def _too_large(pixels: int, limit: int) -> str:
    return f"too large: {pixels:,} pixels exceeds the {limit:,} limit (possible decompression bomb)"


def _reason_for(exc: BaseException) -> str:
    if isinstance(exc, UnusableImage):
        return exc.reason
    if isinstance(exc, Image.DecompressionBombError):
        numbers = [int(n) for n in re.findall(r"\d+", str(exc))]
        if numbers:  # Pillow's message names its hard limit (2× ours); report the limit we apply
            return _too_large(numbers[0], _pixel_limit())
        return "too large (possible decompression bomb)"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (format not recognised)"
    if isinstance(exc, OutsideReadRoots):
        return OUTSIDE_REASON
    if isinstance(exc, PermissionError):
        return "unreadable: permission denied"
    if isinstance(exc, MemoryError):
        return "too large to decode in memory"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"unreadable: {(exc.strerror or str(exc)).lower()}"
    return "corrupt or truncated image data"


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image)
        if mode == "F":
            array = np.nan_to_num(array.astype(np.float64))
            peak = float(array.max()) if array.size else 0.0
            scaled = array * 255.0 if peak <= 1.0 else array
            eight = np.clip(scaled, 0, 255).astype(np.uint8)
        else:
            array = array.astype(np.int64)
            peak = int(array.max()) if array.size else 0
            if mode.startswith("I;16") or 255 < peak <= 65535:
                eight = (np.clip(array, 0, 65535) >> 8).astype(np.uint8)
            elif peak <= 255:
                eight = np.clip(array, 0, 255).astype(np.uint8)
            else:
                eight = (np.clip(array, 0, None) * (255.0 / peak)).astype(np.uint8)
        return Image.fromarray(eight).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBa", "La"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(
    path: str | os.PathLike[str] | bytes, *, min_size: int | None = None, within: ReadRoots = None
) -> Image.Image:
    """Decode an image file to 8-bit RGB: EXIF orientation applied, first frame only, alpha
    composited on white, greyscale and 16-bit converted. `min_size` lets JPEG decode at a reduced
    scale whose shorter side is still at least `min_size` pixels. With `within`, a file that lies
    (through a link) outside those folders is refused. Raises `UnusableImage`."""
    try:
        with open_within(path, within) as handle:
            return _decode(handle, min_size)
    except UnusableImage:
        raise
    except Exception as exc:
        raise UnusableImage(_reason_for(exc)) from exc


def decode_image(data: bytes, *, min_size: int | None = None) -> Image.Image:
    """`load_image` for encoded bytes already in memory."""
    try:
        return _decode(io.BytesIO(data), min_size)
    except UnusableImage:
        raise
    except Exception as exc:
        raise UnusableImage(_reason_for(exc)) from exc


def _decode(handle: BinaryIO, min_size: int | None) -> Image.Image:
    image = Image.open(handle)
    _check_pixels(image)
    if min_size is not None and image.format == "JPEG":
        image.draft("RGB", (min_size, min_size))
    image.load()
    with contextlib.suppress(Exception):  # a broken EXIF block should not cost the image
        image = ImageOps.exif_transpose(image)
    return _to_rgb(image)


def _inspect(data: bytes, quality: bool = True) -> tuple[int, int, QualityInput | None]:
    """Fully check encoded image bytes; return the displayed (width, height) and, with `quality`,
    what the quality scores and the pixel signature are measured from (`ingest.quality.quality_input`)."""
    with Image.open(io.BytesIO(data)) as image:
        _check_pixels(image)
        width, height = image.size
        image.verify()
    # verify() does not decode everything (JPEG, GIF...); a real decode catches truncated data.
    # Reduced-scale JPEG decoding still reads every byte, at a fraction of the cost.
    with Image.open(io.BytesIO(data)) as image:
        try:
            orientation = image.getexif().get(0x0112)
        except Exception:
            orientation = None
        if image.format == "JPEG":
            image.draft(image.mode, draft_size(width, height) if quality else (width // 8, height // 8))
        image.load()
        sample = None
        if quality:
            # 8-bit RGB and L are measured as decoded; the signature is turned as the image is displayed
            pixels = image if image.mode in ("RGB", "L") else _to_rgb(image)
            turn = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
            sample = quality_input(image, pixels, turn)
    if orientation in _SWAPPED_ORIENTATIONS:
        width, height = height, width
    return width, height, sample


# ---------------------------------------------------------------- walking


@dataclass
class _Candidate:
    rel: str
    abs: str
    label: str | None
    within: ReadRoots = None


@dataclass
class _Walk:
    candidates: list[_Candidate] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    ignored: int = 0


def _walk(root: str, cancel: threading.Event | None, within: ReadRoots = None) -> _Walk:
    result = _Walk()
    root_stat = os.stat(root)
    visited = {(root_stat.st_dev, root_stat.st_ino)}
    stack: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while stack:  # depth-first, entries in sorted order, without recursion limits
        folder, rel_parts = stack.pop()
        check_cancel(cancel)
        try:
            with os.scandir(folder) as iterator:
                entries = sorted(iterator, key=lambda e: e.name)
        except OSError as exc:
            if not rel_parts:
                raise
            result.skipped.append(SkippedFile("/".join(rel_parts) + "/", f"folder {_reason_for(exc)}"))
            continue
        subfolders: list[tuple[str, tuple[str, ...]]] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = (*rel_parts, entry.name)
            if within is not None and entry.is_symlink() and not is_within(entry.path, within):
                result.skipped.append(SkippedFile("/".join(rel), OUTSIDE_REASON))
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = not is_dir and entry.is_file(follow_symlinks=True)
            except OSError:
                is_dir = is_file = False
            if is_dir:
                try:
                    st = os.stat(entry.path)
                except OSError as exc:
                    result.skipped.append(SkippedFile("/".join(rel) + "/", f"folder {_reason_for(exc)}"))
                    continue
                key = (st.st_dev, st.st_ino)
                if key in visited:  # symlink loop, or a folder reachable twice
                    continue
                visited.add(key)
                subfolders.append((entry.path, rel))
            elif is_file:
                if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    label = rel[0] if len(rel) > 1 else None
                    result.candidates.append(_Candidate("/".join(rel), entry.path, label, within))
                else:
                    result.ignored += 1
            elif entry.is_symlink():
                result.skipped.append(SkippedFile("/".join(rel), "broken link (target missing)"))
        stack.extend(reversed(subfolders))
    result.candidates.sort(key=lambda c: c.rel)
    return result


_Examined = tuple[ImageRecord | SkippedFile, QualityInput | None]


def _examine(candidate: _Candidate, quality: bool = True) -> _Examined:
    """The file's record (`_score_share` adds its quality scores and signature) and what they are
    measured from."""
    try:
        with open_within(candidate.abs, candidate.within) as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                return SkippedFile(candidate.rel, "not a regular file"), None
            if st.st_size == 0:
                return SkippedFile(candidate.rel, "empty file (0 bytes)"), None
            data = handle.read()
    except Exception as exc:
        return SkippedFile(candidate.rel, _reason_for(exc)), None
    digest = hash_bytes(data)
    try:
        width, height, sample = _inspect(data, quality)
    except Exception as exc:
        return SkippedFile(candidate.rel, _reason_for(exc)), None
    record = ImageRecord(candidate.rel, st.st_size, st.st_mtime_ns, digest, width, height, candidate.label)
    return record, sample


def _score_share(outcomes: list[_Examined], scorer: QualityScorer) -> list[ImageRecord | SkippedFile]:
    """The share's records with their quality scores and pixel signatures, measured together."""
    measured = [(i, sample) for i, (_, sample) in enumerate(outcomes) if sample is not None]
    results = [outcome for outcome, _ in outcomes]
    if measured:
        for (i, _), (score, signature) in zip(
            measured, scorer.measure([sample for _, sample in measured]), strict=True
        ):
            results[i] = dataclasses.replace(results[i], quality=score, signature=signature)
    return results


class _Scorers(threading.local):
    """One `QualityScorer` per thread, whose kept arrays serve every batch that thread scores."""

    def __init__(self) -> None:
        self.scorer = QualityScorer()


def _read(candidates: list[_Candidate], quality: bool, scorers: _Scorers) -> list[ImageRecord | SkippedFile]:
    """The candidates' records; with `quality`, their scores measured together once all are read."""
    outcomes = [_examine(candidate, quality) for candidate in candidates]
    return _score_share(outcomes, scorers.scorer) if quality else [outcome for outcome, _ in outcomes]


_Numbered = tuple[int, _Candidate]


def _shares(items: list[_Numbered], workers: int) -> Iterator[list[_Numbered]]:
    """`items` in shares of at most _SHARE, smaller towards the end so that the threads finish together."""
    start = 0
    while start < len(items):
        size = min(_SHARE, -(-(len(items) - start) // (2 * workers)))
        yield items[start : start + size]
        start += size


def _stat_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _duplicate_groups(images: list[ImageRecord]) -> list[list[str]]:
    by_hash: dict[str, list[str]] = defaultdict(list)
    for record in images:
        by_hash[record.content_hash].append(record.path)
    return sorted(sorted(paths) for paths in by_hash.values() if len(paths) > 1)


def scan_folder(
    root: str | os.PathLike[str],
    *,
    previous: ScanResult | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
    quality: bool = True,
    within: ReadRoots = None,
) -> ScanResult:
    """Walk `root` recursively and check every image file. Bad files become `skipped` entries with
    a reason; records of `previous` whose path, size and mtime are unchanged are reused unread (with
    `quality`, those without quality scores, from an older scan, are read again to measure them).
    With `within` (resolved folders, `paths.resolve_roots`), links that lead outside them are not
    followed: each is skipped with its reason.
    Raises `ScanError` when `root` is missing, not a folder or unreadable; `Cancelled` on cancel."""
    root_str = os.path.abspath(os.fsdecode(os.fspath(root)))
    if not os.path.exists(root_str):
        raise ScanError(f"The folder {root_str!r} does not exist.")
    if not os.path.isdir(root_str):
        raise ScanError(f"{root_str!r} is not a folder.")
    if not is_within(root_str, within):
        raise ScanError(f"The folder {root_str!r} is outside the folders this app may read.")
    try:
        walk = _walk(root_str, cancel, within)
    except PermissionError as exc:
        raise ScanError(f"The folder {root_str!r} cannot be read (permission denied).") from exc
    except OSError as exc:
        raise ScanError(f"The folder {root_str!r} cannot be read: {exc.strerror or exc}.") from exc

    old = {r.path: r for r in previous.images} if previous is not None else {}
    meter = ProgressMeter("scan", len(walk.candidates), progress)
    meter.report(message=f"{len(walk.candidates)} image files found", force=True)
    results: list[ImageRecord | SkippedFile] = []
    reused = 0
    to_read: list[tuple[int, _Candidate]] = []
    for candidate in walk.candidates:
        record = old.get(candidate.rel)
        scored = record is not None and (not quality or None not in (record.quality, record.signature))
        if scored and _stat_key(candidate.abs) == (record.size, record.mtime_ns):
            results.append(record)
            reused += 1
        else:
            results.append(SkippedFile(candidate.rel, "not checked"))
            to_read.append((len(results) - 1, candidate))
    meter.advance(reused)

    n_workers = max(1, workers if workers is not None else min(4, os.cpu_count() or 1))
    # each thread scores the images it read (a few array operations per batch of same-size images),
    # beside the other threads' decoding
    read = functools.partial(_read, quality=quality, scorers=_Scorers())
    shares = _shares(to_read, n_workers)
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="scan") as pool:
        reading: deque[tuple[list[_Numbered], Future[list[ImageRecord | SkippedFile]]]] = deque()
        try:
            while True:
                # one share more than there are threads, so that none waits for its next
                while len(reading) <= n_workers and (share := next(shares, None)) is not None:
                    check_cancel(cancel)
                    reading.append((share, pool.submit(read, [candidate for _, candidate in share])))
                if not reading:
                    break
                share, future = reading.popleft()
                for (index, candidate), outcome in zip(share, future.result(), strict=True):
                    results[index] = outcome
                    meter.advance(1, message=display_name(candidate.rel))
        finally:
            for _, future in reading:
                future.cancel()
    check_cancel(cancel)

    images = [r for r in results if isinstance(r, ImageRecord)]
    skipped = sorted(walk.skipped + [r for r in results if isinstance(r, SkippedFile)], key=lambda s: s.path)
    meter.report(message=f"{len(images)} usable images, {len(skipped)} skipped", force=True)
    return ScanResult(root_str, images, skipped, _duplicate_groups(images), walk.ignored, reused)
