"""Earlier curations: every curation a new discovery (or a restore) replaced, kept with the discovery and the
image list it was made for, so that it can be brought back. The newest `KEEP` are kept.

`<workspace>/curations/<UTC time>-<reason>/` holds `curation.npz`, `discovery.npz` (when it was readable),
the image list (`images.json`) and `about.json` (what the curation held, for the list shown to people).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from turtle_core.atomic import atomic_write_json, fsync_dir, read_json

KEEP = 5
ABOUT = "about.json"
CURATION = "curation.npz"
DISCOVERY = "discovery.npz"
IMAGES = "images.json"


@dataclass(frozen=True)
class ArchivedCuration:
    """One kept curation, as the list of earlier curations shows it."""

    name: str  # the folder name: what `restore` takes
    saved: str  # UTC time, ISO 8601
    reason: str  # why it was replaced, in words
    n_images: int
    n_edits: int
    n_checked: int
    last_edit: str | None
    names: tuple[str, ...]  # the curator's cluster names
    restorable: bool  # its discovery and image list were kept too


class CurationArchive:
    """The `curations/` folder of one workspace."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def add(
        self,
        curation: Path,
        discovery: Path | None,
        image_list: Path | None,
        about: dict,
        reason: str,
    ) -> ArchivedCuration:
        """Keep a copy of these files (hard links where the filesystem allows: the workspace's files are
        replaced, never rewritten in place, so a link keeps the old content)."""
        now = time.time_ns()
        target = self.folder / _stamp(now)
        while target.exists() or (self._folders() and self._folders()[0].name >= target.name):
            now += 1000  # names sort in time order: never at or before the newest kept one
            target = self.folder / _stamp(now)
        staging = self.folder / f".{target.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _keep(curation, staging / CURATION)
        restorable = False
        if discovery is not None and discovery.is_file() and image_list is not None and image_list.is_file():
            _keep(discovery, staging / DISCOVERY)
            _keep(image_list, staging / IMAGES)
            restorable = True
        entry = {
            **about,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "reason": reason,
            "restorable": restorable,
        }
        atomic_write_json(staging / ABOUT, entry)
        os.replace(staging, target)
        fsync_dir(self.folder)
        self._prune()
        return _entry(target.name, entry)

    def entries(self) -> list[ArchivedCuration]:
        """The kept curations, newest first (unreadable entries are left out)."""
        found = []
        for folder in self._folders():
            try:
                found.append(_entry(folder.name, read_json(folder / ABOUT)))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found

    def files(self, name: str) -> tuple[Path, Path, Path]:
        """The curation, discovery and image list kept as `name`; `KeyError` when it is not restorable."""
        folder = self.folder / name
        if "/" in name or name.startswith(".") or not folder.is_dir():
            raise KeyError(f"there is no earlier curation called {name!r}")
        paths = folder / CURATION, folder / DISCOVERY, folder / IMAGES
        if not all(path.is_file() for path in paths):
            raise KeyError(
                f"the earlier curation {name!r} was kept without its discovery: it cannot be restored"
            )
        return paths

    def _folders(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(
            (path for path in self.folder.iterdir() if path.is_dir() and not path.name.startswith(".")),
            key=lambda path: path.name,
            reverse=True,
        )

    def _prune(self) -> None:
        for old in self._folders()[KEEP:]:
            shutil.rmtree(old, ignore_errors=True)


def _stamp(ns: int) -> str:
    """UTC time to the microsecond, e.g. 20261203-152526.004512: sorts in time order."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(ns / 1e9)) + f".{ns // 1000 % 1_000_000:06d}"


def _keep(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _entry(name: str, about: dict) -> ArchivedCuration:
    return ArchivedCuration(
        name=name,
        saved=str(about["saved"]),
        reason=str(about["reason"]),
        n_images=int(about["n_images"]),
        n_edits=int(about["n_edits"]),
        n_checked=int(about["n_checked"]),
        last_edit=about.get("last_edit"),
        names=tuple(str(name) for name in about.get("names", [])),
        restorable=bool(about.get("restorable", False)),
    )


def about_curation(n_images: int, history: list[str], n_checked: int, names: list[str]) -> dict:
    """The summary kept beside an archived curation."""
    return {
        "n_images": int(n_images),
        "n_edits": len(history),
        "n_checked": int(n_checked),
        "last_edit": history[-1] if history else None,
        "names": list(names),
    }
