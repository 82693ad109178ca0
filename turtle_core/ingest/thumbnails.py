"""Small thumbnails for galleries, cached on disk by the content hash of the bytes they were made from.

A thumbnail is only ever filed under the hash of the bytes it was rendered from: a file changed since
its scan (whose hash the caller asks for) gets no thumbnail under the old hash, so no gallery, in this
project or another one with the original content, ever shows a different picture. A thumbnail file that
no longer decodes (a damaged disk, a killed copy) is made again instead of being handed to a page, which
would fail on it; each file is decoded once per process for that check."""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from PIL import Image, features

from turtle_core.atomic import atomic_write_bytes
from turtle_core.constants import THUMBNAIL_SIZE
from turtle_core.ingest.scan import UnusableImage, decode_image, hash_bytes
from turtle_core.paths import OutsideReadRoots, ReadRoots, open_within
from turtle_core.progress import Progress, ProgressMeter, check_cancel

QUALITY = 85
_SAFE_HASH = re.compile(r"^[0-9A-Za-z_-]{8,128}$")
# Thumbnail files known to decode, with the (size, mtime) they had then: checked once per process.
_DECODES: dict[str, tuple[int, int]] = {}
_DECODES_LOCK = threading.Lock()
_DECODES_LIMIT = 500_000


class ThumbnailCache:
    """Thumbnails (longest side `size`, never enlarged) under `directory`, one file per content hash.

    `get` never raises for a bad image: it returns None and remembers the failure for this object.
    With `within`, files that lie (through a link) outside those folders are never read."""

    def __init__(self, directory: Path, size: int = THUMBNAIL_SIZE, *, within: ReadRoots = None) -> None:
        if size < 8:
            raise ValueError(f"thumbnail size must be at least 8 pixels, got {size}")
        self.directory = Path(directory)
        self.size = int(size)
        self.within = within
        self.format = "WEBP" if features.check("webp") else "JPEG"
        self._suffix = ".webp" if self.format == "WEBP" else ".jpg"
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    def path_for(self, content_hash: str) -> Path:
        """Where the thumbnail of the image with this content hash lives (it may not exist yet)."""
        key = (
            content_hash
            if _SAFE_HASH.match(content_hash)
            else hashlib.sha256(content_hash.encode()).hexdigest()
        )
        return self.directory / key[:2] / f"{key}-{self.size}{self._suffix}"

    def get(self, image_path: Path, content_hash: str) -> Path | None:
        """The thumbnail of the image whose content hash is `content_hash`, made now from `image_path`
        if missing; None if the file is unusable, lies outside `within`, or no longer holds that content
        (changed since the scan: its current picture is filed under its own hash, not this one)."""
        target = self.path_for(content_hash)
        if _usable(target):
            return target
        if content_hash in self._failed:
            return None
        try:
            with open_within(Path(image_path), self.within) as handle:
                source = handle.read()
            actual = hash_bytes(source)
            data = self._render(source)
        except (UnusableImage, OSError, ValueError) as error:
            if not isinstance(error, OutsideReadRoots):
                with self._lock:
                    self._failed.add(content_hash)
            return None
        try:
            atomic_write_bytes(self.path_for(actual), data)
        except OSError:
            return None  # e.g. disk full: show no thumbnail rather than break the gallery
        _remember(self.path_for(actual))
        return target if actual == content_hash else None

    def ensure_many(
        self,
        items: Sequence[tuple[Path, str]],
        workers: int = 2,
        progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Path | None]:
        """Make the missing thumbnails of (image path, content hash) pairs in a thread pool;
        returns the thumbnail paths in the same order (None for unusable images)."""
        results: list[Path | None] = [None] * len(items)
        todo = []
        for i, (_, content_hash) in enumerate(items):
            target = self.path_for(content_hash)
            if _usable(target):
                results[i] = target
            else:
                todo.append(i)
        meter = ProgressMeter("thumbnails", len(items), progress)
        meter.advance(len(items) - len(todo), force=True)
        if not todo:
            return results
        limit = 4 * max(1, workers)  # a short queue lets a cancel stop promptly
        pending: set[Future] = set()
        owner: dict[Future, int] = {}
        queue = iter(todo)
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="thumbs") as pool:

            def submit_more() -> None:
                for i in queue:
                    future = pool.submit(self.get, *items[i])
                    owner[future] = i
                    pending.add(future)
                    if len(pending) >= limit:
                        return

            try:
                submit_more()
                while pending:
                    done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in done:
                        pending.discard(future)
                        results[owner.pop(future)] = future.result()
                        meter.advance(1)
                    check_cancel(cancel)
                    submit_more()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return results

    def _render(self, source: bytes) -> bytes:
        image = decode_image(source, min_size=self.size)
        image.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        if self.format == "WEBP":
            image.save(buffer, "WEBP", quality=QUALITY, method=4)
        else:
            image.save(buffer, "JPEG", quality=QUALITY, optimize=True)
        return buffer.getvalue()


def _usable(path: Path) -> bool:
    """Whether the thumbnail file exists and decodes; a damaged one is removed (it is made again)."""
    try:
        st = path.stat()
    except OSError:
        return False
    with _DECODES_LOCK:
        if _DECODES.get(str(path)) == (st.st_size, st.st_mtime_ns):
            return True
    try:
        with Image.open(path) as image:
            image.load()
    except Exception:  # noqa: BLE001 - any damage: this cache's own file is simply made again
        path.unlink(missing_ok=True)
        return False
    _remember(path)
    return True


def _remember(path: Path) -> None:
    try:
        st = path.stat()
    except OSError:
        return
    with _DECODES_LOCK:
        if len(_DECODES) >= _DECODES_LIMIT:
            _DECODES.clear()
        _DECODES[str(path)] = (st.st_size, st.st_mtime_ns)
