"""`ProjectStore`: the one owner of everything a project keeps on disk.

Files in the project's workspace folder (`paths.project_dir`), each with a format version and each
written atomically (`turtle_core.atomic`):

- `project.json`  settings (folder, backbones, checkpoints)
- `scan.json`     the last scan
- `discovery.npz` the last discovery; its `discovery_id` is recorded in every file derived from it
- `discovery.copy.npz` the same bytes in another file: a damaged `discovery.npz` is restored from it
- `curation.npz`  the curator's work on that discovery (records the discovery id and image list)
- `curation.previous.npz` the save before the last (a hard link): a damaged curation costs one edit
- `image-lists/`  the image lists the discovery and the curation refer to (`state/image_lists.py`), so a
                  curation can always be carried onto the discovery's images
- `curations/`    earlier curations that a new discovery or a restore replaced (`state/archive.py`)
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

import numpy as np

from turtle_core.atomic import atomic_write_bytes, atomic_write_json, read_json
from turtle_core.ingest.scan import ScanResult
from turtle_core.state.archive import ArchivedCuration, CurationArchive, about_curation
from turtle_core.state.curation import Curation, CurationError, CurationMismatch
from turtle_core.state.curation_file import read_curation_file
from turtle_core.state.discovery_result import DiscoveryResult
from turtle_core.state.image_lists import ImageLists

try:  # POSIX; elsewhere only the in-process lock applies
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]

SETTINGS_FORMAT = 1
CARRIED_TO_NEW_DISCOVERY = (
    "A new discovery was interrupted before its curation was saved; your names and checked images were carried "
    "over to it (the whole previous curation is kept among the earlier curations)."
)
CARRIED_TO_NEW_IMAGES = (
    "A rescan was interrupted before your curation was saved with it; your work was carried over to the "
    "folder's {:,} images (new images start in their discovered clusters)."
)
FileSignature = tuple[int, int, int] | None  # inode, size, mtime: changes whenever the file is replaced


class ProjectStore:
    """Reads and writes every file of one project workspace; `lock()` serialises threads and processes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.settings_path = self.workdir / "project.json"
        self.scan_path = self.workdir / "scan.json"
        self.discovery_path = self.workdir / "discovery.npz"
        self.curation_path = self.workdir / "curation.npz"
        # A second copy of the discovery's bytes (another file, written with it): damage to one costs nothing.
        self.discovery_copy_path = self.workdir / "discovery.copy.npz"
        # The save before the last one (a hard link: no copy): a damaged curation file costs one edit.
        self.previous_curation_path = self.workdir / "curation.previous.npz"
        self.layouts_dir = self.workdir / "layouts"
        self.image_lists = ImageLists(self.workdir / "image-lists")
        self.archive = CurationArchive(self.workdir / "curations")
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
        """The saved discovery (None when there is none or it is unreadable) and a warning if unreadable. A
        damaged file is set aside and its copy restored when the copy is sound (and the curation's)."""
        try:
            data = self.discovery_path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as error:
            copy = self._discovery_copy()
            return (
                None if copy is None else copy[0],
                f"The saved discovery {self.discovery_path} cannot be read ({error.strerror}).",
            )
        try:
            return DiscoveryResult.from_bytes(data), None
        except Exception as error:  # noqa: BLE001 - any damage (torn zip, bad JSON, missing key) is recovered
            aside = self.set_aside(self.discovery_path)
            copy = self._discovery_copy()
            if copy is not None:
                atomic_write_bytes(self.discovery_path, copy[1])
                return copy[0], (
                    f"The saved discovery was damaged ({_short(error)}) and was moved to {aside.name}; its copy "
                    "was restored, nothing was lost."
                )
            return None, (
                f"The saved discovery was damaged ({_short(error)}) and was moved to {aside.name}; "
                "run discovery again."
            )

    def _discovery_copy(self) -> tuple[DiscoveryResult, bytes] | None:
        """The discovery's copy and its bytes, when it is sound and the saved curation (if any) was made
        from it."""
        try:
            data = self.discovery_copy_path.read_bytes()
            copy = DiscoveryResult.from_bytes(data)
        except Exception:  # noqa: BLE001 - a missing or damaged copy is simply not used
            return None
        try:
            made_from = read_curation_file(self.curation_path.read_bytes())[0].discovery_id
        except (OSError, CurationError, ValueError):
            made_from = None
        return (copy, data) if made_from in (None, copy.discovery_id) else None

    def write_discovery(self, discovery: DiscoveryResult) -> None:
        """Write the discovery, after keeping its image list (a curation can then always be carried onto it),
        and its copy."""
        self.image_lists.write(discovery.image_key(), discovery.images)
        data = discovery.to_bytes()
        atomic_write_bytes(self.discovery_path, data)
        atomic_write_bytes(self.discovery_copy_path, data)

    def read_curation(self, discovery: DiscoveryResult) -> tuple[Curation, str | None, bool]:
        """The curation of `discovery`, a warning, and whether it was carried onto the discovery's images
        (then it differs from the file: save it).

        A missing file starts from the discovery. A curation of the same discovery made for another list of
        its images (a rescan interrupted between its two writes) is carried onto the discovery's images by
        path. A corrupt one, or one of another discovery, is moved aside with a warning and the curation
        starts from the discovery."""
        try:
            data = self.curation_path.read_bytes()
        except FileNotFoundError:
            return Curation.from_discovery(discovery.labels), None, False
        except OSError as error:
            data, read_error = None, error
        else:
            read_error = None
        if data is not None:
            try:
                return self._curation_from(data, discovery)
            except (CurationError, ValueError) as error:
                read_error = error
        aside = self.set_aside(self.curation_path)
        where = f"kept as {aside.name} in {self.workdir}" if aside != self.curation_path else "left in place"
        try:
            previous = self.previous_curation_path.read_bytes()
            if read_curation_file(previous)[0].discovery_id != discovery.discovery_id:
                raise CurationMismatch("the previous save belongs to another discovery")
            curation, _, carried = self._curation_from(previous, discovery)
        except (OSError, CurationError, ValueError):
            return (
                Curation.from_discovery(discovery.labels),
                (
                    f"The saved curation could not be used ({_short(read_error)}); it was {where}, "
                    "and the clusters start again from the last discovery."
                ),
                False,
            )
        return (
            curation,
            (
                f"The saved curation could not be used ({_short(read_error)}); it was {where}, and the save "
                "before it was restored: the last edit may be missing."
            ),
            True,
        )

    def _curation_from(self, data: bytes, discovery: DiscoveryResult) -> tuple[Curation, str | None, bool]:
        """A curation file's bytes as a curation of `discovery` (see `read_curation`); raises `CurationError`
        or `ValueError` when they cannot be used."""
        from turtle_core.state.rebase import carry_work, map_rows, rebase_record

        header, record = read_curation_file(data, source="the saved curation")
        if header.image_key == discovery.image_key() and header.n_images == len(discovery.images):
            if header.discovery_id in (None, discovery.discovery_id):
                return Curation.from_record(record), None, False
            raise CurationMismatch("this curation was made from another discovery")
        old_images = self.image_lists.read(header.image_key)
        if old_images is None:
            raise CurationMismatch("this curation was made for a different list of images")
        if header.discovery_id != discovery.discovery_id:  # a new discovery's install was cut short
            fresh = Curation.from_discovery(discovery.labels)
            carry_work(fresh, Curation.from_record(record), old_images, discovery)
            return fresh, CARRIED_TO_NEW_DISCOVERY, True
        rows = map_rows(old_images, discovery.images)
        carried = rebase_record(record, rows, np.asarray(discovery.labels)[rows.added])
        return Curation.from_record(carried), CARRIED_TO_NEW_IMAGES.format(len(discovery.images)), True

    def read_orphan_curation(self) -> Curation | None:
        """The saved curation when no discovery can be paired with it (its discovery is damaged or gone)."""
        try:
            return Curation.from_record(read_curation_file(self.curation_path.read_bytes())[1])
        except (OSError, CurationError, ValueError):
            return None

    def curation_image_key(self) -> str | None:
        """The image list the saved curation was made for; None without a readable curation file."""
        try:
            return read_curation_file(self.curation_path.read_bytes())[0].image_key
        except (OSError, CurationError, ValueError):
            return None

    def write_curation(self, curation: Curation, discovery: DiscoveryResult) -> None:
        self._keep_previous_curation()
        curation.save(self.curation_path, discovery.image_key(), discovery.discovery_id)

    def _keep_previous_curation(self) -> None:
        """Link the curation file about to be replaced as the previous one (the atomic write that follows
        gives the new file a new inode, so the link keeps the old bytes)."""
        link = self.workdir / f".{self.previous_curation_path.name}.link.tmp"
        try:
            link.unlink(missing_ok=True)
            os.link(self.curation_path, link)
            os.replace(link, self.previous_curation_path)
        except OSError:  # no curation yet, or a filesystem without hard links: nothing to keep
            link.unlink(missing_ok=True)

    # ----------------------------------------------------------------- earlier curations
    def archive_curation(self, curation: Curation, reason: str) -> ArchivedCuration | None:
        """Keep the saved curation (the file as it is, which `curation` describes) with its discovery and
        image list among the earlier curations; None when there is no curation file."""
        if not self.curation_path.is_file():
            return None
        image_list = None
        try:
            header, _ = read_curation_file(self.curation_path.read_bytes())
            image_list = self.image_lists.path_for(header.image_key)
        except (OSError, CurationError, ValueError):
            pass
        about = about_curation(
            curation.n_images,
            curation.history(),
            int(curation.checked.sum()),
            [name for cid, name in sorted(curation.names.items()) if name != f"Cluster {cid}"],
        )
        discovery = self.discovery_path if self.discovery_path.is_file() else None
        return self.archive.add(self.curation_path, discovery, image_list, about, reason)

    def keep_only_image_lists(self, *keys: str) -> None:
        """Forget the image lists that neither the discovery nor the curation refers to any more."""
        self.image_lists.prune(keys)

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
