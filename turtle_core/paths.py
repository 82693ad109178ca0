"""Where the engine keeps its own files. The user's image folder is never written to."""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO


def turtle_home() -> Path:
    """Root of all engine state: `$TURTLE_HOME`, else `~/.cache/turtle-labels`."""
    env = os.environ.get("TURTLE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "turtle-labels"


def embedding_cache_dir() -> Path:
    return turtle_home() / "embeddings"


def project_dir(folder: str | os.PathLike[str]) -> Path:
    """The workspace of the project whose images are in `folder`: one per real folder, whether it is
    named through a symlink, with `~`, or by its canonical path."""
    resolved = os.fsencode(os.path.realpath(os.path.expanduser(os.fspath(folder))))
    digest = hashlib.sha1(resolved).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.fsdecode(os.path.basename(resolved.rstrip(b"/"))))[:40]
    return turtle_home() / "projects" / f"{slug or 'root'}-{digest}"


# ---------------------------------------------------------------- the folders the engine may read
# Served to others, the app reads images only inside the folders its owner allowed; a link inside them
# that points elsewhere is not followed. `None` stands for "anywhere" (this machine's own user).
ReadRoots = tuple[Path, ...] | None
OUTSIDE_REASON = "a link to a place outside the allowed folders (not followed)"


class OutsideReadRoots(PermissionError):
    """A file resolves (through a link) to a place outside the folders the engine may read."""


def resolve_roots(folders: Iterable[str | os.PathLike[str]] | None) -> ReadRoots:
    """The folders the engine may read, resolved (symlinks followed); None stays "anywhere"."""
    if folders is None:
        return None
    return tuple(dict.fromkeys(Path(os.path.realpath(os.path.expanduser(os.fspath(f)))) for f in folders))


def resolved_within(real: str | os.PathLike[str], roots: ReadRoots) -> bool:
    """Whether the already resolved path `real` is one of `roots` or inside one."""
    if roots is None:
        return True
    path = Path(real)
    return any(path == root or root in path.parents for root in roots)


def is_within(path: str | bytes | os.PathLike[str], roots: ReadRoots) -> bool:
    """Whether `path`, with every link followed, lies inside one of `roots` (always, for None)."""
    return roots is None or resolved_within(os.fsdecode(os.path.realpath(os.fspath(path))), roots)


def open_within(path: str | bytes | os.PathLike[str], roots: ReadRoots) -> BinaryIO:
    """Open `path` for reading; raise `OutsideReadRoots` when the file opened lies outside `roots`.
    The check looks at the file actually opened, so a link swapped in meanwhile cannot slip through."""
    handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if roots is None:
        return handle
    try:
        real = _opened_path(handle.fileno(), path)
    except OSError:
        handle.close()
        raise
    if not resolved_within(real, roots):
        handle.close()
        raise OutsideReadRoots(errno.EACCES, OUTSIDE_REASON, os.fsdecode(os.fspath(path)))
    return handle


def _opened_path(fd: int, path: str | bytes | os.PathLike[str]) -> str:
    try:  # Linux names the file behind a descriptor; elsewhere the path is resolved again
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        opened = ""
    return opened if opened.startswith("/") else os.fsdecode(os.path.realpath(os.fspath(path)))
