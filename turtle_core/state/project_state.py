"""`ProjectState`: a project's discovery and curation in memory, kept in step with the store.

One lock (`ProjectStore.lock`: threads and processes) guards every read of the pair and every
change to it. Edits enter through `apply`; a new discovery through `install_discovery`; pages and jobs
read through `snapshot`, one consistent copy per run. Before each of these the state compares the
files' signatures with what it last read or wrote, so work done by another process (the command
line, a second app) is picked up instead of being overwritten.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from turtle_core.ingest.scan import ImageRecord
from turtle_core.paths import ReadRoots
from turtle_core.state.curation import Curation
from turtle_core.state.discovery_result import DiscoveryResult
from turtle_core.state.edits import Edit, RowLookup
from turtle_core.state.errors import CurationHasEdits, ProjectError, StaleEdit
from turtle_core.state.store import FileSignature, ProjectStore


@dataclass(frozen=True)
class Snapshot:
    """A discovery and a private copy of its curation, read together under the lock.

    Rows index `images`; `keys(rows)` turns rows into image identities (paths) for an `Edit`."""

    folder: Path
    discovery: DiscoveryResult
    curation: Curation
    _lookup: RowLookup = field(repr=False)

    @property
    def discovery_id(self) -> str:
        return self.discovery.discovery_id

    @property
    def images(self) -> list[ImageRecord]:
        return self.discovery.images

    @property
    def confidence(self) -> np.ndarray:
        """Review confidence per image: a refine's re-estimate where there is one, else the discovery's."""
        return self.curation.review_confidence(self.discovery.confidence)

    def keys(self, rows: Any) -> tuple[str, ...]:
        """Image identities (paths relative to the folder) of `rows`."""
        return tuple(self.discovery.images[int(row)].path for row in np.asarray(rows).ravel())

    def rows(self, keys: Any) -> np.ndarray:
        """Rows of the given image identities (all must be in this discovery)."""
        return self._lookup(list(keys))

    def image_path(self, index: int) -> Path:
        return self.folder / self.images[index].path

    def thumbnail(self, index: int, within: ReadRoots = None) -> Path | None:
        from turtle_core.ingest.thumbnails import ThumbnailCache
        from turtle_core.paths import turtle_home

        record = self.images[index]
        return ThumbnailCache(turtle_home() / "thumbnails", within=within).get(
            self.folder / record.path, record.content_hash
        )


class ProjectState:
    """The discovery/curation pair of one project, its lock, and the warnings to show once."""

    def __init__(self, store: ProjectStore, folder: Path) -> None:
        self.store = store
        self.folder = folder
        self.discovery: DiscoveryResult | None = None
        self.curation: Curation | None = None
        self._lookup = RowLookup([])
        self._seen: tuple[FileSignature, FileSignature] = (None, None)
        self._notices: list[str] = []
        self._notice_lock = threading.Lock()

    # ----------------------------------------------------------------- reading
    def load(self) -> None:
        """Read the discovery and its curation from disk (recovering from damaged files)."""
        with self.store.lock():
            self.store.remove_stale_temp_files()
            self._load_locked()

    def sync(self) -> None:
        """Pick up a discovery or curation written by someone else since we last looked."""
        with self.store.lock():
            self._sync_locked()

    def snapshot(self) -> Snapshot | None:
        """The current discovery and a copy of its curation, consistent with each other; None before
        the first discovery."""
        with self.store.lock():
            self._sync_locked()
            if self.discovery is None or self.curation is None:
                return None
            return Snapshot(self.folder, self.discovery, self.curation.copy(), self._lookup)

    def take_notices(self) -> list[str]:
        """Warnings not yet shown (damaged files set aside, a discovery replaced elsewhere); each once."""
        with self._notice_lock:
            notices, self._notices = self._notices, []
        return notices

    def add_notice(self, notice: str) -> None:
        """A warning to show once (see `take_notices`)."""
        with self._notice_lock:
            self._notices.append(notice)

    def has_edits(self) -> bool:
        """Whether the curation holds a curator's work (edits, or undone edits that can be redone)."""
        curation = self.curation
        return curation is not None and (
            curation.can_undo or curation.can_redo or bool(curation.checked.any())
        )

    # ----------------------------------------------------------------- changing
    def apply(self, edit: Edit) -> Any:
        """Run `edit` on the curation under the lock, save it atomically, and return its result.

        Raises `StaleEdit` (nothing changed) when the edit was made against another discovery, and
        `ValueError` with a readable message for a bad edit (unknown cluster, empty name, ...)."""
        with self.store.lock():
            self._sync_locked()
            if self.discovery is None or self.curation is None:
                raise ProjectError("No discovery yet: run discovery first.")
            if edit.discovery_id != self.discovery.discovery_id:
                raise StaleEdit(
                    "The clusters were recomputed (a new discovery) after this was chosen; nothing was "
                    "changed. Look at the new clusters and try again."
                )
            version = self.curation.version
            result = edit.run(self.curation, self._lookup)
            if self.curation.version != version:
                self._save_curation_locked()
            return result

    def save_curation(self) -> None:
        """Save the in-memory curation (for code that edits `project.curation` directly)."""
        with self.store.lock():
            if self.discovery is None or self.curation is None:
                return
            if self.store.signature(self.store.discovery_path) != self._seen[0]:
                self._sync_locked()
                raise StaleEdit(
                    "A new discovery was saved by another program; these edits were not saved over it."
                )
            self._save_curation_locked()

    def install_discovery(self, discovery: DiscoveryResult, *, replace_edits: bool = True) -> Curation:
        """Make `discovery` the project's discovery with a fresh curation (discovery written first;
        a crash between the two writes is recovered on the next open). With `replace_edits=False`,
        raise `CurationHasEdits` instead of discarding a curation that holds edits."""
        with self.store.lock():
            self._sync_locked()
            if not replace_edits and self.has_edits():
                raise CurationHasEdits(edits_message(self.curation))
            self.store.write_discovery(discovery)
            curation = Curation.from_discovery(discovery.labels)
            self.discovery, self.curation = discovery, curation
            self._lookup = RowLookup([record.path for record in discovery.images])
            self.store.write_curation(curation, discovery)
            self._seen = self._signatures()
            return curation

    # ----------------------------------------------------------------- internals
    def _signatures(self) -> tuple[FileSignature, FileSignature]:
        return (
            self.store.signature(self.store.discovery_path),
            self.store.signature(self.store.curation_path),
        )

    def _load_locked(self) -> None:
        discovery, warning = self.store.read_discovery()
        curation = None
        if discovery is not None:
            curation, curation_warning = self.store.read_curation(discovery)
            warning = warning or curation_warning
        self.discovery, self.curation = discovery, curation
        self._lookup = RowLookup([record.path for record in discovery.images] if discovery else [])
        self._seen = self._signatures()
        if warning:
            with self._notice_lock:
                self._notices.append(warning)

    def _sync_locked(self) -> None:
        seen = self._signatures()
        if seen == self._seen:
            return
        old_id = self.discovery.discovery_id if self.discovery else None
        if seen[0] != self._seen[0]:
            self._load_locked()
            new_id = self.discovery.discovery_id if self.discovery else None
            if new_id != old_id and new_id is not None and old_id is not None:
                with self._notice_lock:
                    self._notices.append(
                        "The clusters were replaced by a discovery saved elsewhere (for example by the "
                        "command line); the pages now show it."
                    )
            return
        assert self.discovery is not None
        curation, warning = self.store.read_curation(self.discovery)
        self.curation = curation
        self._seen = self._signatures()
        if warning:
            with self._notice_lock:
                self._notices.append(warning)

    def _save_curation_locked(self) -> None:
        assert self.discovery is not None and self.curation is not None
        try:
            self.store.write_curation(self.curation, self.discovery)
        except OSError as error:
            self._load_locked()  # back to what is on disk: memory never runs ahead of the file
            raise ProjectError(
                f"The edit could not be saved ({error.strerror or error}); it was undone."
            ) from error
        self._seen = self._signatures()


def edits_message(curation: Curation | None) -> str:
    history = curation.history() if curation is not None else []
    last = f" (last: {history[-1]})" if history else ""
    return f"This project's curation holds {len(history)} edit(s){last}; a new discovery would discard them."
