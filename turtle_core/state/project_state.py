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
from turtle_core.state.archive import ArchivedCuration
from turtle_core.state.curation import Curation
from turtle_core.state.discovery_result import DiscoveryResult
from turtle_core.state.edits import Edit, RowLookup
from turtle_core.state.errors import CurationChanged, CurationHasEdits, ProjectError, StaleEdit
from turtle_core.state.rebase import (
    CarriedWork,
    ImageListUpdate,
    carry_work,
    free_name,
    map_rows,
    rebase_record,
)
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
    def rows_key(self) -> str:
        """Changes whenever rows change meaning (a new discovery, a rescan): key row-indexed caches on it."""
        return self.discovery.rows_key

    @property
    def images(self) -> list[ImageRecord]:
        return self.discovery.images

    @property
    def new(self) -> np.ndarray:
        """Images a rescan added and labelled that nobody has checked yet (they lead the review queue)."""
        return (self.discovery.added_or_zeros() > 0) & ~np.asarray(self.curation.checked)

    @property
    def atypicality(self) -> np.ndarray:
        """The "fits no category" score per image (`discovery.confidence.atypicality`)."""
        return self.discovery.atypicality_or_zeros()

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
        """Whether the curation holds a curator's work (edits, undone edits that can be redone, checked
        images) — also when its discovery is damaged or gone and only the curation file is left."""
        curation = self.curation if self.curation is not None else self._orphan()
        return curation is not None and holds_work(curation)

    def work_token(self) -> str:
        """Names the curation's current state (it changes with every edit, undo and rescan): what a curator
        agrees to replace when they ask for a new discovery (`install_discovery(replaceable=...)`)."""
        with self.store.lock():
            self._sync_locked()
            return self._work_token_locked()

    def _work_token_locked(self) -> str:
        curation = self.curation if self.curation is not None else self._orphan()
        if curation is None:
            return "none"
        rows = self.discovery.rows_key if self.discovery is not None else "orphan"
        return f"{rows}/{curation.version}"

    def work_message(self) -> str:
        """What a new discovery would replace, in words (also when only the curation file is left)."""
        return edits_message(self.curation if self.curation is not None else self._orphan())

    def _orphan(self) -> Curation | None:
        return self.store.read_orphan_curation() if self.discovery is None else None

    def earlier_curations(self) -> list[ArchivedCuration]:
        """The curations a new discovery or a restore replaced, newest first (`restore` brings one back)."""
        return self.store.archive.entries()

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
            self.curation.origin = edit.origin
            try:
                result = edit.run(self.curation, self._lookup)
            finally:
                self.curation.origin = ""
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

    def install_discovery(
        self,
        discovery: DiscoveryResult,
        *,
        replace_edits: bool = True,
        carry_over: bool = True,
        replaceable: str | None = None,
    ) -> CarriedWork | None:
        """Make `discovery` the project's discovery with a new curation (discovery written first; a crash
        between the two writes is recovered on the next open).

        A curation holding work is first kept among the earlier curations (restorable). With `carry_over`,
        the new curation takes over the curator's names (clusters matched by shared images) and every
        checked image's label, as one undoable step; what carried over is returned. With
        `replace_edits=False`, raise `CurationHasEdits` instead of replacing a curation that holds work; with
        `replaceable` (the `work_token` of the curation the curator agreed to replace), raise `CurationChanged`
        when the curation holds work and is no longer that one."""
        with self.store.lock():
            self._sync_locked()
            old = self.curation if self.curation is not None else self._orphan()
            if old is not None and holds_work(old):
                if not replace_edits:
                    raise CurationHasEdits(edits_message(old))
                if replaceable is not None and self._work_token_locked() != replaceable:
                    raise CurationChanged(
                        "The curation changed while discovery ran (an edit in another tab or program): "
                        f"{edits_message(old)} The new clusters were not installed.",
                        discovery,
                    )
                old_images = self._images_of_saved_curation()
                self.store.archive_curation(old, "replaced by a new discovery")
            else:
                old, old_images = None, None
            self.store.write_discovery(discovery)
            curation = Curation.from_discovery(discovery.labels)
            carried = None
            if carry_over and old is not None and old_images is not None:
                carried = carry_work(curation, old, old_images, discovery)
            self._install_locked(discovery, curation)
            return carried

    def install_update(self, update: ImageListUpdate) -> int:
        """Carry the curation onto a new list of the discovery's images (a rescan): images that stay keep
        everything, images that left leave the curation and its undo history, added images start in a
        cluster of their own (`rebase.NEW_IMAGES_NAME`) and are then labelled as one undoable step.
        Returns how many added images were given one of the curator's clusters."""
        with self.store.lock():
            self._sync_locked()
            if self.discovery is None or self.curation is None:
                raise ProjectError("No discovery yet: run discovery first.")
            if self.discovery.rows_key != update.base_rows_key:
                raise StaleEdit(
                    "The clusters or the image list changed while the rescan was computing; nothing was "
                    "changed. Rescan again."
                )
            new = update.discovery
            rows = map_rows(self.discovery.images, new.images)
            holding = self.curation.next_cluster_id()
            name = free_name(set(self.curation.names.values()))
            self.store.image_lists.write(self.discovery.image_key(), self.discovery.images)
            record = rebase_record(
                self.curation.to_record(), rows, np.full(rows.added.size, holding, np.int32), {holding: name}
            )
            curation = Curation.from_record(record)
            added_paths = [new.images[row].path for row in rows.added]
            labels = dict(zip(update.added_paths, update.added_labels.tolist(), strict=True))
            confidence = dict(zip(update.added_paths, update.added_confidence.tolist(), strict=True))
            fit = [
                row for row, path in zip(rows.added, added_paths, strict=True) if labels.get(path, -1) >= 0
            ]
            moved = 0
            if fit:
                moved = curation.relabel(
                    np.asarray(fit),
                    np.asarray([labels[new.images[row].path] for row in fit]),
                    np.asarray([confidence[new.images[row].path] for row in fit]),
                    update.describe(len(fit), rows.added.size - len(fit), name),
                )
            self.store.write_discovery(new)
            self._install_locked(new, curation)
            return moved

    def restore(self, name: str) -> ArchivedCuration | None:
        """Bring back the earlier curation `name` with its discovery; the current one is kept among the
        earlier curations first. Returns the entry kept for the current one (None when there was none)."""
        with self.store.lock():
            self._sync_locked()
            try:
                curation_file, discovery_file, _ = self.store.archive.files(name)
            except KeyError as error:
                raise ProjectError(str(error.args[0])) from None
            try:
                discovery = DiscoveryResult.from_bytes(discovery_file.read_bytes())
                curation = Curation.from_bytes(
                    curation_file.read_bytes(),
                    source=f"the earlier curation {name}",
                    expected_image_key=discovery.image_key(),
                    expected_discovery_id=discovery.discovery_id,
                )
            except Exception as error:  # noqa: BLE001 - a damaged archive entry is refused, nothing changes
                raise ProjectError(
                    f"The earlier curation {name} cannot be read ({error}); nothing was changed."
                ) from error
            current = self.curation if self.curation is not None else self._orphan()
            kept = None
            if current is not None and holds_work(current):
                kept = self.store.archive_curation(current, f"replaced by restoring {name}")
            self.store.write_discovery(discovery)
            self._install_locked(discovery, curation)
            return kept

    # ----------------------------------------------------------------- internals
    def _install_locked(self, discovery: DiscoveryResult, curation: Curation) -> None:
        """The discovery is written; write its curation and make the pair current."""
        self.store.write_curation(curation, discovery)
        self.discovery, self.curation = discovery, curation
        self._lookup = RowLookup([record.path for record in discovery.images])
        self._seen = self._signatures()
        self.store.keep_only_image_lists(discovery.image_key())

    def _images_of_saved_curation(self) -> list[ImageRecord] | None:
        """The images the saved curation's rows refer to (its discovery's, or its kept image list)."""
        if self.discovery is not None:
            self.store.image_lists.write(self.discovery.image_key(), self.discovery.images)
            return self.discovery.images
        key = self.store.curation_image_key()
        return self.store.image_lists.read(key) if key else None

    def _signatures(self) -> tuple[FileSignature, FileSignature]:
        return (
            self.store.signature(self.store.discovery_path),
            self.store.signature(self.store.curation_path),
        )

    def _load_locked(self) -> None:
        discovery, warning = self.store.read_discovery()
        curation = None
        if discovery is not None:
            curation, curation_warning, carried = self.store.read_curation(discovery)
            warning = warning or curation_warning
            if carried:
                self.store.write_curation(curation, discovery)
                self.store.keep_only_image_lists(discovery.image_key())
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
        curation, warning, carried = self.store.read_curation(self.discovery)
        if carried:
            self.store.write_curation(curation, self.discovery)
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


def holds_work(curation: Curation) -> bool:
    """Edits, undone edits that can be redone, or checked images."""
    return curation.can_undo or curation.can_redo or bool(curation.checked.any())


def edits_message(curation: Curation | None) -> str:
    history = curation.history() if curation is not None else []
    last = f" (last: {history[-1]})" if history else ""
    return f"This project's curation holds {len(history)} edit(s){last}; a new discovery would discard them."
