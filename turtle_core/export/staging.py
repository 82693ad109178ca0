"""Where an export is built and how it is put in place, so that a killed export leaves nothing behind
for good and a re-export keeps the folder itself (same inode: open shells and file browsers stay in it).

The new tree is built in a staging folder: beside the destination (`<dest>.partial-<token>`) when the
destination's parent may be written (no read roots, or the parent lies inside them, on the same file
system), else inside the destination (`<dest>/.turtle-partial-<token>`), which is always allowed. A new
destination is the staging folder renamed; an existing one (empty, or a previous export) keeps its
inode and has its entries swapped: a marker listing old and new entries first, then the old entries
moved into `<dest>/.turtle-old-<token>`, the new ones moved in, the final marker last. Whatever point
a kill reaches, the destination carries a marker that lists all it holds, so it stays replaceable.

An exporter holds an `flock` on its staging folder while it works. The next export into the same place
removes every staging folder whose lock it can take (its exporter is gone), the `.turtle-old-*` and
marker temp files left inside the destination, and the `<dest>.old-<token>` backups of earlier versions.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from turtle_core.atomic import atomic_write_json
from turtle_core.export.marker import MARKER, is_staging_name, marker_record
from turtle_core.paths import ReadRoots, is_within

try:  # POSIX; elsewhere leftovers are recognised by name only
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]

INSIDE_PARTIAL = ".turtle-partial-"
INSIDE_OLD = ".turtle-old-"
_TOKEN = r"[0-9a-f]{8}"


@dataclass
class Staging:
    """A staging folder being filled (`path`), held locked by this process (`_fd`) until closed."""

    path: Path
    inside: bool  # True: inside the destination (its parent may not be written)
    created_dest: bool  # True: the destination did not exist and was made to hold the staging folder
    _fd: int | None = None

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # releases the lock


def parent_allowed(dest: Path, within: ReadRoots) -> bool:
    """May the staging folder go beside `dest`? Only inside the read roots and on `dest`'s file system."""
    parent = dest.parent
    if not is_within(parent, within):
        return False
    try:
        return not dest.exists() or os.stat(dest).st_dev == os.stat(parent).st_dev
    except OSError:
        return False


def open_staging(dest: Path, within: ReadRoots) -> Staging:
    """Make and lock the folder the export is built in (see the module docstring for where)."""
    token = secrets.token_hex(4)
    if parent_allowed(dest, within):
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Staging(dest.parent / f"{dest.name}.partial-{token}", inside=False, created_dest=False)
    else:
        created = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True)
        staging = Staging(dest / f"{INSIDE_PARTIAL}{token}", inside=True, created_dest=created)
    staging.path.mkdir()
    staging._fd = _lock(staging.path, blocking=True)
    return staging


def discard_staging(staging: Staging, dest: Path) -> None:
    """Remove an unfinished staging folder (and a destination made only to hold it)."""
    shutil.rmtree(staging.path, ignore_errors=True)
    staging.close()
    if staging.created_dest:
        with contextlib.suppress(OSError):
            dest.rmdir()  # only when still empty


@contextlib.contextmanager
def destination_lock(dest: Path) -> Iterator[None]:
    """Serialise the cleaning and swapping of exports into one parent folder (a lock on the folder
    itself: nothing is written for it)."""
    fd = None
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fd = os.open(dest.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def remove_leftovers(dest: Path) -> int:
    """Remove what killed exports into `dest` left (staging folders no exporter holds any more, swapped
    out entries, marker temp files, earlier versions' backups). Call under `destination_lock`."""
    removed = 0
    own = re.compile(rf"^{re.escape(dest.name)}\.partial-{_TOKEN}$")
    backup = re.compile(rf"^{re.escape(dest.name)}\.old-{_TOKEN}$")
    with contextlib.suppress(OSError):
        for entry in os.scandir(dest.parent):
            path = Path(entry.path)
            if own.match(entry.name) and entry.is_dir(follow_symlinks=False):
                removed += _remove_unheld(path)
            elif backup.match(entry.name) and entry.is_dir(follow_symlinks=False) and _ours(path):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
    if dest.is_dir() and not dest.is_symlink() and _ours(dest):
        with contextlib.suppress(OSError):
            for entry in os.scandir(dest):
                if not is_staging_name(entry.name):
                    continue
                path = Path(entry.path)
                if entry.name.startswith(INSIDE_PARTIAL) and entry.is_dir(follow_symlinks=False):
                    removed += _remove_unheld(path)
                elif entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(path, ignore_errors=True)
                    removed += 1
                else:
                    path.unlink(missing_ok=True)
                    removed += 1
    return removed


def install(staging: Staging, dest: Path) -> None:
    """Put the finished tree of `staging` at `dest` (see the module docstring); call under
    `destination_lock`, after the destination was checked once more."""
    if not staging.inside and not (dest.exists() or dest.is_symlink()):
        os.rename(staging.path, dest)
        staging.close()
        return
    new = sorted(name for name in os.listdir(staging.path) if name != MARKER)
    old = sorted(name for name in os.listdir(dest) if name != MARKER and not is_staging_name(name))
    final = marker_record(staging.path)
    # From here on the destination's marker lists everything it may hold, so a kill at any point leaves
    # a folder the next export recognises as its own (and replaces, cleaning what is left).
    atomic_write_json(dest / MARKER, {**final, "entries": sorted(set(old) | set(new)), "complete": False})
    aside = dest / f"{INSIDE_OLD}{secrets.token_hex(4)}"
    aside.mkdir()
    for name in old:
        os.rename(dest / name, aside / name)
    for name in new:
        os.rename(staging.path / name, dest / name)
    os.replace(staging.path / MARKER, dest / MARKER)
    shutil.rmtree(aside, ignore_errors=True)  # never follows links: linked source images are safe
    shutil.rmtree(staging.path, ignore_errors=True)
    staging.close()


def _lock(path: Path, *, blocking: bool) -> int | None:
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        raise
    return fd


def _remove_unheld(path: Path) -> int:
    """Remove a staging folder unless a live exporter still holds its lock."""
    try:
        fd = _lock(path, blocking=False)
    except OSError:
        return 0  # held: an export is still writing there
    try:
        shutil.rmtree(path, ignore_errors=True)
    finally:
        if fd is not None:
            os.close(fd)
    return 1


def _ours(folder: Path) -> bool:
    return marker_record(folder) is not None
