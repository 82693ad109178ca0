"""`Project`: one image folder, its workspace, and every step from scan to export.

What the project keeps on disk is owned by `store.ProjectStore`; the discovery/curation pair, its lock
and every edit by `state.ProjectState` (`apply`, `snapshot`). One folder is one `Project` object per
process, however it was named (symlinks are resolved).

The object is shared by everyone who opens the folder in this process (the app's visitors): what one
person chooses for a run (backbones, checkpoints, Ray address, the folders the engine may read) is
passed to the step that uses it, and the project's own settings are only the defaults.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from turtle_core.atomic import atomic_write_json, read_json
from turtle_core.constants import EXCLUDED, PARTITIONS
from turtle_core.embedding.backbones import PRESETS, Availability, check_availability
from turtle_core.embedding.cache import EmbeddingCache
from turtle_core.ingest.labels import LabelRows
from turtle_core.ingest.scan import ImageRecord, ScanError, ScanResult, SkippedFile, scan_folder
from turtle_core.memo import IdentityMemo
from turtle_core.operations.checks import (
    check_folder,
    folder_labels,
)
from turtle_core.operations.classifier import Classifier
from turtle_core.operations.labels_in import ImportReport
from turtle_core.operations.propagate import RefineProposal, propose_refine
from turtle_core.operations.update import UpdateReport
from turtle_core.paths import ReadRoots, embedding_cache_dir, project_dir, turtle_home
from turtle_core.progress import ProgressCallback, check_cancel
from turtle_core.state.archive import ArchivedCuration
from turtle_core.state.curation import Curation
from turtle_core.state.discovery_result import DiscoveryResult
from turtle_core.state.edits import Edit
from turtle_core.state.errors import CurationHasEdits, ProjectError, StaleEdit
from turtle_core.state.project_state import ProjectState, Snapshot
from turtle_core.state.store import ProjectStore

__all__ = [
    "CurationHasEdits",
    "DiscoveryResult",
    "Project",
    "ProjectError",
    "Snapshot",
    "StaleEdit",
]

DEFAULT_BACKBONES: tuple[str, ...] = tuple(PRESETS["offline"])
RECENT_LIMIT = 12

_open_projects: weakref.WeakValueDictionary[str, Project] = weakref.WeakValueDictionary()
_open_lock = threading.Lock()


class Project:
    """An image folder (read only) plus its workspace of scan, embeddings, discovery and curation.

    Examples
    --------
    >>> project = Project.open("~/photos")                                    # doctest: +SKIP
    >>> project.run_discovery(n_clusters=(5, 20))                             # doctest: +SKIP
    >>> snap = project.snapshot()                                             # doctest: +SKIP
    >>> project.apply(Rename(discovery_id=snap.discovery_id, cluster_id=0, name="cats"))  # doctest: +SKIP
    >>> project.export("~/photos-labeled")                                    # doctest: +SKIP
    """

    def __init__(self, folder: Path, workdir: Path) -> None:
        self.folder = folder
        self.workdir = workdir
        self.store = ProjectStore(workdir)
        self.state = ProjectState(self.store, folder)
        self.backbones: list[str] = list(DEFAULT_BACKBONES)
        self.checkpoints: dict[str, str] = {}
        self.device: str | None = None
        self.ray_address: str | None = None  # embed on this Ray cluster ("local": a local instance)
        self.scan_result: ScanResult | None = None
        self._spaces: tuple[str, list[np.ndarray]] | None = (
            None  # (the discovery's rows_key, feature matrices)
        )
        self._spaces_lock = threading.Lock()

    # ----------------------------------------------------------------- opening and settings
    @classmethod
    def open(cls, folder: str | os.PathLike[str], *, reuse: bool = True) -> Project:
        """Open (or create the workspace of) the project for `folder`, restoring saved state.

        The folder is canonicalised (`~`, symlinks), and while a `Project` of it is alive in this
        process the same object is returned (`reuse=False`: a new object, read afresh from disk)."""
        path = Path(os.path.realpath(os.path.expanduser(os.fspath(folder))))
        check_folder(path)
        workdir = project_dir(path)
        with _open_lock:
            project = _open_projects.get(os.fspath(workdir)) if reuse else None
            if project is not None:
                project.state.sync()
                return project
            project = cls(path, workdir)
            try:
                project.workdir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ProjectError(
                    f"Cannot create the workspace {project.workdir}: {error.strerror}."
                ) from error
            project._restore()
            project._save_settings()
            if reuse:
                _open_projects[os.fspath(workdir)] = project
        _remember_recent(path)
        return project

    @staticmethod
    def recent() -> list[str]:
        """Recently opened folders that still exist, newest first."""
        try:
            entries = read_json(turtle_home() / "recent.json")
        except (OSError, ValueError):
            return []
        return [entry for entry in entries if isinstance(entry, str) and os.path.isdir(entry)]

    def set_backbones(self, names: Sequence[str], checkpoints: Mapping[str, str] | None = None) -> None:
        from turtle_core.embedding.backbones import BACKBONES

        unknown = [name for name in names if name not in BACKBONES]
        if unknown or not names:
            raise ProjectError(f"Unknown backbone(s): {', '.join(unknown) or '(none chosen)'}.")
        self.backbones = list(dict.fromkeys(names))
        if checkpoints is not None:
            self.checkpoints = {
                name: path for name, path in checkpoints.items() if path and name in BACKBONES
            }
        self._save_settings()

    def availability(
        self, backbones: Sequence[str] | None = None, checkpoints: Mapping[str, str] | None = None
    ) -> list[Availability]:
        """Whether each backbone's weights are present (default: the project's backbones/checkpoints)."""
        checkpoints = self.checkpoints if checkpoints is None else checkpoints
        names = self.backbones if backbones is None else backbones
        return [check_availability(name, checkpoints.get(name)) for name in names]

    # ----------------------------------------------------------------- pipeline
    def scan(
        self,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        *,
        within: ReadRoots = None,
    ) -> ScanResult:
        """Scan the folder (incrementally: unchanged files are not re-read) and save the result. With
        `within` (resolved folders), links that lead outside them are skipped, not followed."""
        check_folder(self.folder)
        try:
            result = scan_folder(
                self.folder, previous=self.scan_result, progress=progress, cancel=cancel, within=within
            )
        except ScanError as error:
            raise ProjectError(str(error)) from error
        self.scan_result = result
        self.store.write_scan(result)
        return result

    def embed(
        self,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        ray_address: str | None = None,
        *,
        backbones: Sequence[str] | None = None,
        checkpoints: Mapping[str, str] | None = None,
    ) -> tuple[list[ImageRecord], list[np.ndarray], list[str], list[SkippedFile]]:
        """Embed every scanned image with each chosen backbone (cached by content).

        Returns the images usable in every space, one feature matrix per backbone (rows aligned to
        those images), the backbones' cache identities, and the images that failed to decode.
        With `ray_address` (default: `self.ray_address`) the missing vectors are computed on Ray;
        `backbones`/`checkpoints` default to the project's.
        """
        from turtle_core.operations.pipeline import embed_records

        if self.scan_result is None:
            self.scan(progress, cancel)
        assert self.scan_result is not None
        return embed_records(
            self.folder,
            self.scan_result.images,
            list(self.backbones if backbones is None else backbones),
            dict(self.checkpoints if checkpoints is None else checkpoints),
            progress,
            cancel,
            device=self.device,
            ray_address=ray_address or self.ray_address,
        )

    def run_discovery(
        self,
        n_clusters: int | tuple[int, int],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        *,
        effort: str | None = None,
        replace_edits: bool = True,
        partition: str = "auto",
        replaceable: str | None = None,
        backbones: Sequence[str] | None = None,
        checkpoints: Mapping[str, str] | None = None,
        ray_address: str | None = None,
        within: ReadRoots = None,
    ) -> DiscoveryResult:
        """Scan, embed and discover categories; the result replaces the curation, whose names and checked
        images carry over (the whole curation is kept among the earlier curations).

        `effort` names one of `turtle_core.discovery.effort.EFFORTS` ("quick", "standard"; default
        standard). With `replace_edits=False` a curation holding edits is never replaced: the run
        stops with `CurationHasEdits` before any work, or before saving if edits appeared meanwhile.
        With `replaceable` (the `work_token()` the curator saw when they agreed), the run stops before
        saving with `CurationChanged` (holding the result) if the curation changed meanwhile.
        `partition`: "auto" (the stability choice between TURTLE and k-means), "turtle" or "kmeans".
        `backbones`, `checkpoints` and `ray_address` are this run's (default: the project's); `within`
        limits what the scan may read (see `scan`).
        """
        from turtle_core.discovery.effort import resolve_effort

        try:
            chosen = resolve_effort(effort)
        except ValueError as error:
            raise ProjectError(str(error)) from error
        if partition not in PARTITIONS:
            raise ProjectError(f"partition must be one of {', '.join(PARTITIONS)}; got {partition!r}")
        if not replace_edits:
            self.state.sync()
            if self.state.has_edits():
                raise CurationHasEdits(self.state.work_message())
        from turtle_core.operations.pipeline import discover_features

        names = list(self.backbones if backbones is None else backbones)
        started = time.perf_counter()
        self.scan(progress, cancel, within=within)
        images, spaces, identities, failed = self.embed(
            progress, cancel, ray_address, backbones=names, checkpoints=checkpoints
        )
        result = discover_features(
            images,
            spaces,
            identities,
            n_clusters,
            chosen,
            progress,
            cancel,
            backbones=names,
            failed=failed,
            partition=partition,
        )
        result.seconds = time.perf_counter() - started
        check_cancel(cancel)
        self.state.install_discovery(result, replace_edits=replace_edits, replaceable=replaceable)
        with self._spaces_lock:
            self._spaces = (result.rows_key, spaces)
        return result

    def install_discovery(self, result: DiscoveryResult, replaceable: str | None = None) -> None:
        """Install a discovery computed earlier (one `run_discovery` held back with `CurationChanged`)."""
        self.state.install_discovery(result, replaceable=replaceable)

    def work_token(self) -> str:
        """The curation's current state, as `run_discovery(replaceable=...)` takes it."""
        return self.state.work_token()

    def update(
        self,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        *,
        within: ReadRoots = None,
    ) -> UpdateReport:
        """Rescan the folder and bring the curation up to date (`operations/update.py`): added images are
        embedded and labelled with the curated categories (one undoable step), removed ones leave. `within`
        limits what the scan may read (see `scan`)."""
        from turtle_core.operations.pipeline import embed_records
        from turtle_core.operations.update import prepare_update
        from turtle_core.state.rebase import map_rows

        snap = self._require_snapshot()
        scan = self.scan(progress, cancel, within=within)
        rows = map_rows(snap.images, scan.images)
        added = [scan.images[row] for row in rows.added]
        usable: list[ImageRecord] = []
        new_spaces: list[np.ndarray] = [np.zeros((0, 1), np.float32)]
        failed: list[SkippedFile] = []
        if added:
            discovery = snap.discovery
            try:
                usable, new_spaces, identities, failed = embed_records(
                    self.folder,
                    added,
                    discovery.backbones,
                    self.checkpoints,
                    progress,
                    cancel,
                    device=self.device,
                )
            except ProjectError:  # not one added file could be decoded and embedded
                failed = [SkippedFile(record.path, "could not be decoded and embedded") for record in added]
            else:
                if identities != list(discovery.identities):
                    raise ProjectError(
                        "The backbones' weights changed since the discovery: the new images cannot be placed "
                        "among its categories. Run discovery again."
                    )
        check_cancel(cancel)
        update, report = prepare_update(snap, rows, usable, self.spaces(snap.discovery), new_spaces, failed)
        if not report.changed_anything:
            return report
        check_cancel(cancel)
        self.state.install_update(update)
        return report

    def import_labels(
        self,
        found: LabelRows,
        *,
        origin: str = "",
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ImportReport:
        """Make the images `found` names checked, with those labels as cluster names (one undoable edit;
        `operations/labels_in.py`). A folder without a discovery gets a quick one first, with as many
        categories as there are labels."""
        from turtle_core.operations.labels_in import import_labels

        if self.discovery is None:
            distinct = {row.label for row in found.rows}
            self.run_discovery(max(2, len(distinct)), progress, cancel, effort="quick")
        scan = self.scan_result or self.scan(progress, cancel)
        discovery = self._require_discovery()
        skipped = [item.path for item in scan.skipped] + [item.path for item in discovery.failed]
        return import_labels(self.snapshot, self.apply, found, scan.images, skipped, origin)

    def classifier(self) -> Classifier:
        """The current curated categories as a classifier for other images (`operations/classifier.py`)."""
        from turtle_core.operations.classifier import train_classifier

        snap = self._require_snapshot()
        return train_classifier(snap, self.spaces(snap.discovery), self.checkpoints)

    def earlier_curations(self) -> list[ArchivedCuration]:
        """Curations a new discovery or a restore replaced, newest first."""
        return self.state.earlier_curations()

    def restore_curation(self, name: str) -> ArchivedCuration | None:
        """Bring back the earlier curation `name` (and its discovery); the current one is kept first."""
        restored = self.state.restore(name)
        with self._spaces_lock:
            self._spaces = None
        return restored

    # ----------------------------------------------------------------- the discovery and its curation
    @property
    def discovery(self) -> DiscoveryResult | None:
        return self.state.discovery

    @property
    def curation(self) -> Curation | None:
        """The live curation. Change it with `apply(edit)`; read it through `snapshot()`."""
        return self.state.curation

    def snapshot(self) -> Snapshot | None:
        """The discovery and a copy of its curation, read together under the lock (None before discovery)."""
        return self.state.snapshot()

    def apply(self, edit: Edit) -> Any:
        """The one entry point for curation edits: lock, check the discovery id, apply, save, record undo."""
        return self.state.apply(edit)

    def take_notices(self) -> list[str]:
        """Warnings to show the user once (damaged files set aside, a discovery replaced elsewhere)."""
        return self.state.take_notices()

    def has_curation_edits(self) -> bool:
        self.state.sync()
        return self.state.has_edits()

    def save_curation(self) -> None:
        """Deprecated: edits through `apply` are saved already. Saves a curation edited in place."""
        self.state.save_curation()

    @property
    def images(self) -> list[ImageRecord]:
        discovery = self.state.discovery
        return discovery.images if discovery else []

    def spaces(self, discovery: DiscoveryResult | None = None) -> list[np.ndarray]:
        """A discovery's feature matrices (default: the current one), read back from the embedding cache."""
        discovery = discovery or self._require_discovery()
        with self._spaces_lock:
            if self._spaces is not None and self._spaces[0] == discovery.rows_key:
                return self._spaces[1]
        hashes = [record.content_hash for record in discovery.images]
        spaces = []
        for identity in discovery.identities:
            found, rows = EmbeddingCache(embedding_cache_dir() / identity).lookup(hashes)
            if not found.all():
                raise ProjectError(
                    "The embedding cache no longer holds this discovery's features; run discovery again."
                )
            spaces.append(np.asarray(rows, dtype=np.float32))
        with self._spaces_lock:
            self._spaces = (discovery.rows_key, spaces)
        return spaces

    def split_cluster(
        self,
        cluster_id: int,
        n_parts: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        *,
        effort: str | None = None,
    ) -> list[int]:
        """Re-run discovery inside one cluster and split it into parts "<name> 1", "<name> 2", … (one
        undoable `Split` edit; see `workspace/split.py`). `None` parts: choose 2..4. Spends the quick effort
        unless `effort` says otherwise."""
        from turtle_core.operations.split import SplitError, split_cluster

        snap = self.snapshot()
        if snap is None:
            raise SplitError("run discovery first: there are no clusters to split yet.")
        return split_cluster(
            self.state,
            snap,
            self.spaces(snap.discovery),
            cluster_id,
            n_parts,
            effort=effort,
            progress=progress,
            cancel=cancel,
        )

    def propose_refine(self, cancel: threading.Event | None = None) -> RefineProposal:
        """What propagating the curator's fixes would change (nothing is changed yet); see `propagate`."""
        snap = self._require_snapshot()
        return propose_refine(snap, self.spaces(snap.discovery), cancel)

    def refine(self) -> int:
        """Apply the whole proposal of `propose_refine` (one undoable edit; none when it moves nothing); returns
        how many images moved."""
        proposal = self.propose_refine()
        return self.apply(proposal.edit()).moved if proposal.moves else 0

    def layout(
        self,
        method: Literal["pca", "umap"],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> np.ndarray:
        """2-D map of the images (cached on disk, keyed by the images and embedding identities)."""
        from turtle_core.maps.layouts import LayoutCache

        discovery = self._require_discovery()
        cached = LayoutCache(self.store.layouts_dir).cached(_layout_key(discovery), method)
        if cached is not None:
            return cached
        check_cancel(cancel)
        return LayoutCache(self.store.layouts_dir).get_or_compute_spaces(
            _layout_key(discovery), self.spaces(discovery), method, progress=progress, cancel=cancel
        )

    def cached_layout(self, method: Literal["pca", "umap"]) -> np.ndarray | None:
        from turtle_core.maps.layouts import LayoutCache

        discovery = self.state.discovery
        if discovery is None:
            return None
        return LayoutCache(self.store.layouts_dir).cached(_layout_key(discovery), method)

    def image_path(self, index: int) -> Path:
        return self.folder / self.images[index].path

    def thumbnail(self, index: int, within: ReadRoots = None) -> Path | None:
        """The gallery thumbnail of image `index` (None: unusable, changed, or outside `within`)."""
        from turtle_core.ingest.thumbnails import ThumbnailCache

        record = self.images[index]
        return ThumbnailCache(turtle_home() / "thumbnails", within=within).get(
            self.folder / record.path, record.content_hash
        )

    def ground_truth(self) -> list[str] | None:
        return folder_labels(self.images) if self.discovery else None

    def current_metrics(self, snap: Snapshot | None = None) -> dict[str, float] | None:
        """Accuracy/NMI/ARI of the curated labels against folder labels (excluded images left out)."""
        snap = snap or self.snapshot()
        if snap is None:
            return None
        state = (snap.curation.lineage, snap.curation.version)  # every page shows them on every rerun
        return _per_discovery.get((snap.discovery,), ("metrics", state), lambda: _metrics(snap))

    def manifest_frame(self) -> Any:
        from turtle_core.export.dataset import manifest_frame

        return manifest_frame(**self._export_columns())

    def export(
        self,
        dest: str | os.PathLike[str],
        mode: Literal["copy", "hardlink", "symlink"] = "copy",
        formats: Collection[str] | None = None,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        *,
        within: ReadRoots = None,
    ) -> Any:
        """Write the labeled dataset to `dest` (never inside the source folder; never over an export unasked).
        With `within`, nothing is read or written outside those folders."""
        from turtle_core.export.dataset import export_dataset

        kwargs: dict[str, Any] = {
            "mode": mode,
            "overwrite": overwrite,
            "progress": progress,
            "cancel": cancel,
            "within": within,
        }
        if formats is not None:
            kwargs["formats"] = formats
        target = Path(os.path.expanduser(os.fspath(dest))).resolve()
        return export_dataset(self.folder, dest=target, **self._export_columns(), **kwargs)

    # ----------------------------------------------------------------- internals
    def _export_columns(self) -> dict[str, Any]:
        from turtle_core.operations.cleaning import snapshot_quality

        snap = self._require_snapshot()
        return {
            "paths": [record.path for record in snap.images],
            "labels": snap.curation.labels_as_names(),
            "cluster_ids": snap.curation.assignments.tolist(),
            "confidence": snap.confidence.tolist(),
            "checked": snap.curation.checked.tolist(),
            "quality": snapshot_quality(snap, self.scan_result).columns(),
        }

    def _require_discovery(self) -> DiscoveryResult:
        discovery = self.state.discovery
        if discovery is None:
            raise ProjectError("No discovery yet: run discovery first.")
        return discovery

    def _require_snapshot(self) -> Snapshot:
        snap = self.snapshot()
        if snap is None:
            raise ProjectError("No discovery yet: run discovery first.")
        return snap

    def _save_settings(self) -> None:
        """Save the settings when they differ from the saved ones; a failed write (a full disk) is said
        once and the settings still apply in this process."""
        settings = {
            "folder": os.fspath(self.folder),
            "backbones": self.backbones,
            "checkpoints": self.checkpoints,
        }
        saved, _ = self.store.read_settings()
        if {key: saved.get(key) for key in settings} == settings:
            return
        try:
            self.store.write_settings(settings)
        except OSError as error:
            self.state.add_notice(
                f"The project's settings could not be saved ({error.strerror or error}); they apply until "
                "the app stops."
            )

    def _restore(self) -> None:
        from turtle_core.embedding.backbones import BACKBONES

        settings, warning = self.store.read_settings()
        if settings:
            names = [name for name in settings.get("backbones", []) if name in BACKBONES]
            self.backbones = names or list(DEFAULT_BACKBONES)
            checkpoints = settings.get("checkpoints", {})
            self.checkpoints = dict(checkpoints) if isinstance(checkpoints, dict) else {}
        self.scan_result = self.store.read_scan()
        self.state.load()
        if warning:
            self.state.add_notice(warning)


def _layout_key(discovery: DiscoveryResult) -> str:
    """Layouts derive from the images and their embeddings, not the clustering: a rediscovery of the
    same images re-uses them, and other images never get another list's layout."""
    return hashlib.sha1((discovery.image_key() + "|".join(discovery.identities)).encode()).hexdigest()[:20]


def _remember_recent(folder: Path) -> None:
    entries = [os.fspath(folder)] + [entry for entry in Project.recent() if entry != os.fspath(folder)]
    with contextlib.suppress(OSError):
        atomic_write_json(turtle_home() / "recent.json", entries[:RECENT_LIMIT])


_per_discovery = IdentityMemo(size=8)


def _folder_classes(discovery: DiscoveryResult) -> np.ndarray | None:
    """Per row, the index of its class sub-folder (None when the folder is not sorted into classes)."""
    truth = folder_labels(discovery.images)
    if truth is None:
        return None
    import pandas as pd

    return pd.factorize(np.asarray(truth, dtype=object))[0]  # sorting 100,000 strings took 0.5 s


def _metrics(snap: Snapshot) -> dict[str, float] | None:
    from turtle_core.discovery.metrics import evaluate

    classes = _per_discovery.get((snap.discovery,), "classes", lambda: _folder_classes(snap.discovery))
    keep = snap.curation.assignments != EXCLUDED
    if classes is None or not keep.any():
        return None
    return evaluate(classes[keep], snap.curation.assignments[keep])
