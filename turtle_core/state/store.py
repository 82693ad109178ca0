"""`ProjectStore`: the one owner of everything a project keeps on disk.

Files in the project's workspace folder (`paths.project_dir`), each with a format version and each
written atomically (`turtle_core.atomic`):

- `project.json`  settings (folder, backbones, checkpoints)
- `scan.json`     the last scan
- `discovery.npz` the last discovery; its `discovery_id` is recorded in every file derived from it
- `curation.npz`  the curator's work on that discovery (records the discovery id and image list)
- `layouts/`      2-D maps, keyed by the images and embedding identities they were computed from
- `.lock`         taken (with `fcntl.flock`) while a discovery or curation is read or replaced, so
                  that the app and the command line never interleave their writes

Reading never raises for a damaged file: a corrupt or mismatched file is renamed aside
(`<name>.bad-<time>`, so nothing a curator made is deleted), a warning says where it went, and the
project starts from what is still sound (the discovery, or nothing).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from turtle_core.atomic import atomic_write_bytes, atomic_write_json, read_json
from turtle_core.ingest.scan import ScanResult
from turtle_core.state.curation import Curation, CurationError
from turtle_core.state.discovery_result import DiscoveryResult

try:  # POSIX; elsewhere only the in-process lock applies
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]

SETTINGS_FORMAT = 1
FileSignature = tuple[int, int, int] | None  # inode, size, mtime: changes whenever the file is replaced


class ProjectStore:
    """Reads and writes every file of one project workspace; `lock()` serialises threads and processes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.settings_path = self.workdir / "project.json"
        self.scan_path = self.workdir / "scan.json"
        self.discovery_path = self.workdir / "discovery.npz"
        self.curation_path = self.workdir / "curation.npz"
        self.layouts_dir = self.workdir / "layouts"
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None

    # ----------------------------------------------------------------- the lock
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this project's lock: re-entrant in a thread, exclusive across threads and processes."""
        with self._thread_lock:
            if self._depth == 0:
                self._acquire_file_lock()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release_file_lock()

    def _acquire_file_lock(self) -> None:
        if fcntl is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.workdir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def _release_file_lock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the descriptor releases the flock

    # ----------------------------------------------------------------- settings and scan
    def read_settings(self) -> tuple[dict[str, Any], str | None]:
        """The saved settings ({} when none) and a warning when the file was damaged."""
        data, warning = self._read_json(self.settings_path, "settings")
        if not isinstance(data, dict):
            return {}, warning
        return data, warning

    def write_settings(self, settings: dict[str, Any]) -> None:
        atomic_write_json(self.settings_path, {"format": SETTINGS_FORMAT, **settings})

    def read_scan(self) -> ScanResult | None:
        """The last scan, or None (a damaged scan is simply redone: it holds nothing a person made)."""
        data, _ = self._read_json(self.scan_path, "scan", set_aside=False)
        if not isinstance(data, dict):
            return None
        try:
            return ScanResult.from_dict(data)
        except (KeyError, TypeError, ValueError):
            return None

    def write_scan(self, scan: ScanResult) -> None:
        atomic_write_json(self.scan_path, scan.to_dict())

    # ----------------------------------------------------------------- discovery and curation
    def read_discovery(self) -> tuple[DiscoveryResult | None, str | None]:
        """The saved discovery (None when there is none or it is unreadable) and a warning if unreadable."""
        try:
            data = self.discovery_path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as error:
            return None, f"The saved discovery {self.discovery_path} cannot be read ({error.strerror})."
        try:
            return DiscoveryResult.from_bytes(data), None
        except Exception as error:  # noqa: BLE001 - any damage (torn zip, bad JSON, missing key) is recovered
            aside = self.set_aside(self.discovery_path)
            return None, (
                f"The saved discovery was damaged ({_short(error)}) and was moved to {aside.name}; "
                "run discovery again."
            )

    def write_discovery(self, discovery: DiscoveryResult) -> None:
        atomic_write_bytes(self.discovery_path, discovery.to_bytes())

    def read_curation(self, discovery: DiscoveryResult) -> tuple[Curation, str | None]:
        """The curation of `discovery`. A missing file starts from the discovery; a corrupt one, or one
        made for other images or another discovery, is moved aside with a warning and the curation
        starts from the discovery."""
        try:
            data = self.curation_path.read_bytes()
        except FileNotFoundError:
            return Curation.from_discovery(discovery.labels), None
        except OSError as error:
            data, read_error = None, error
        else:
            read_error = None
        if data is not None:
            try:
                curation = Curation.from_bytes(
                    data,
                    source="the saved curation",
                    expected_image_key=discovery.image_key(),
                    expected_n_images=len(discovery.images),
                    expected_discovery_id=discovery.discovery_id,
                )
                return curation, None
            except CurationError as error:
                read_error = error
        aside = self.set_aside(self.curation_path)
        where = f"kept as {aside.name} in {self.workdir}" if aside != self.curation_path else "left in place"
        return Curation.from_discovery(discovery.labels), (
            f"The saved curation could not be used ({_short(read_error)}); it was {where}, "
            "and the clusters start again from the last discovery."
        )

    def write_curation(self, curation: Curation, discovery: DiscoveryResult) -> None:
        curation.save(self.curation_path, discovery.image_key(), discovery.discovery_id)

    # ----------------------------------------------------------------- helpers
    def remove_stale_temp_files(self, older_than_s: float = 600.0) -> int:
        """Delete temp files that a killed writer left behind (`.<name>.<random>.tmp`, see
        `turtle_core.atomic`); recent ones may belong to a write in progress and are kept."""
        removed = 0
        cutoff = time.time() - older_than_s
        for leftover in self.workdir.glob(".*.tmp"):
            try:
                if leftover.is_file() and leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    def signature(self, path: Path) -> FileSignature:
        """Changes whenever `path` is replaced (atomic writes give it a new inode)."""
        try:
            stat = path.stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def set_aside(self, path: Path) -> Path:
        """Rename a damaged file to `<name>.bad-<UTC time>` (never delete it); returns the new path."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        target = path.with_name(f"{path.name}.bad-{stamp}")
        counter = 1
        while target.exists():
            counter += 1
            target = path.with_name(f"{path.name}.bad-{stamp}-{counter}")
        try:
            os.replace(path, target)
        except OSError:
            return path
        return target

    def _read_json(self, path: Path, what: str, set_aside: bool = True) -> tuple[Any, str | None]:
        try:
            return read_json(path), None
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError) as error:
            if not set_aside:
                return None, None
            aside = self.set_aside(path)
            return (
                None,
                f"The saved {what} were damaged ({_short(error)}); moved to {aside.name}, defaults used.",
            )


def _short(error: BaseException | None) -> str:
    text = str(error) if error is not None else "unknown error"
    return text if len(text) <= 160 else text[:157] + "…"
