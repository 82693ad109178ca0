"""Where the engine keeps its own files. The user's image folder is never written to."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path


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
