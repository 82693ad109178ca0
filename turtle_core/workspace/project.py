"""`Project`: one image folder, its workspace, and every step from scan to export."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from turtle_core.atomic import atomic_write_bytes, atomic_write_json, read_json
from turtle_core.constants import EXCLUDED
from turtle_core.embedding.backbones import PRESETS, Availability, BackboneUnavailable, check_availability
from turtle_core.embedding.cache import EmbeddingCache
from turtle_core.embedding.ray_embed import RayUnavailable, embed_backbone_images
from turtle_core.ingest.scan import ImageRecord, ScanError, ScanResult, SkippedFile, scan_folder
from turtle_core.paths import embedding_cache_dir, project_dir, turtle_home
from turtle_core.progress import ProgressCallback, check_cancel
from turtle_core.workspace.curation import Curation

DEFAULT_BACKBONES: tuple[str, ...] = tuple(PRESETS["offline"])
RECENT_LIMIT = 12


class ProjectError(ValueError):
    """A problem the user can act on; the message says what and how."""


@dataclass
class DiscoveryResult:
    """What one discovery run found, for the usable images in `images` (row order of all arrays)."""

    images: list[ImageRecord]
    labels: np.ndarray
    probabilities: np.ndarray
    confidence: np.ndarray
    n_clusters: int
    score: float
    scores_by_k: dict[int, float]
    params: dict[str, Any]
    backbones: list[str]
    identities: list[str]
    seconds: float
    failed: list[SkippedFile] = field(default_factory=list)
    metrics: dict[str, float] | None = None
    kmeans_metrics: dict[str, float] | None = None

    def to_bytes(self) -> bytes:
        meta = {
            "images": [asdict(record) for record in self.images],
            "n_clusters": self.n_clusters,
            "score": self.score,
            "scores_by_k": {str(k): v for k, v in self.scores_by_k.items()},
            "params": self.params,
            "backbones": self.backbones,
            "identities": self.identities,
            "seconds": self.seconds,
            "failed": [asdict(item) for item in self.failed],
            "metrics": self.metrics,
            "kmeans_metrics": self.kmeans_metrics,
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            labels=self.labels.astype(np.int32),
            probabilities=self.probabilities.astype(np.float32),
            confidence=self.confidence.astype(np.float32),
            meta=np.frombuffer(json.dumps(meta, ensure_ascii=True).encode(), dtype=np.uint8),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DiscoveryResult:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode())
            return cls(
                images=[ImageRecord(**record) for record in meta["images"]],
                labels=arrays["labels"],
                probabilities=arrays["probabilities"],
                confidence=arrays["confidence"],
                n_clusters=int(meta["n_clusters"]),
                score=float(meta["score"]),
                scores_by_k={int(k): float(v) for k, v in meta["scores_by_k"].items()},
                params=meta["params"],
                backbones=list(meta["backbones"]),
                identities=list(meta["identities"]),
                seconds=float(meta["seconds"]),
                failed=[SkippedFile(**item) for item in meta["failed"]],
                metrics=meta["metrics"],
                kmeans_metrics=meta["kmeans_metrics"],
            )


class Project:
    """An image folder (read only) plus its workspace of scan, embeddings, discovery and curation.

    Examples
    --------
    >>> project = Project.open("~/photos")                          # doctest: +SKIP
    >>> project.run_discovery(n_clusters=(5, 20))                   # doctest: +SKIP
    >>> project.curation.rename(0, "cats"); project.save_curation()  # doctest: +SKIP
    >>> project.export("~/photos-labeled")                           # doctest: +SKIP
    """

    def __init__(self, folder: Path, workdir: Path) -> None:
        self.folder = folder
        self.workdir = workdir
        self.backbones: list[str] = list(DEFAULT_BACKBONES)
        self.checkpoints: dict[str, str] = {}
        self.device: str | None = None
        self.ray_address: str | None = None  # embed on this Ray cluster ("local": a local instance)
        self.scan_result: ScanResult | None = None
        self.discovery: DiscoveryResult | None = None
        self.curation: Curation | None = None
        self._spaces: list[np.ndarray] | None = None
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- opening and settings
    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> Project:
        """Open (or create the workspace of) the project for `folder`, restoring saved state."""
        path = Path(os.path.expanduser(os.fspath(folder))).resolve()
        _check_folder(path)
        project = cls(path, project_dir(path))
        try:
            project.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ProjectError(f"Cannot create the workspace {project.workdir}: {error.strerror}.") from error
        project._restore()
        project._save_settings()
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

    def availability(self) -> list[Availability]:
        return [check_availability(name, self.checkpoints.get(name)) for name in self.backbones]

    # ----------------------------------------------------------------- pipeline
    def scan(
        self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None
    ) -> ScanResult:
        """Scan the folder (incrementally: unchanged files are not re-read) and save the result."""
        _check_folder(self.folder)
        try:
            result = scan_folder(self.folder, previous=self.scan_result, progress=progress, cancel=cancel)
        except ScanError as error:
            raise ProjectError(str(error)) from error
        self.scan_result = result
        atomic_write_json(self.workdir / "scan.json", result.to_dict())
        return result

    def embed(
        self,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        ray_address: str | None = None,
    ) -> tuple[list[ImageRecord], list[np.ndarray], list[str], list[SkippedFile]]:
        """Embed every scanned image with each chosen backbone (cached by content).

        Returns the images usable in every space, one feature matrix per backbone (rows aligned to
        those images), the backbones' cache identities, and the images that failed to decode.
        With `ray_address` (default: `self.ray_address`) the missing vectors are computed on Ray.
        """
        if self.scan_result is None:
            self.scan(progress, cancel)
        assert self.scan_result is not None
        records = self.scan_result.images
        if not records:
            raise ProjectError(f"No usable images in {self.folder}: nothing to discover.")
        ok = np.ones(len(records), dtype=bool)
        per_backbone: list[tuple[np.ndarray, np.ndarray]] = []
        identities: list[str] = []
        failed: dict[str, SkippedFile] = {}
        for name in self.backbones:
            check_cancel(cancel)
            try:
                result = embed_backbone_images(
                    self.folder,
                    records,
                    name,
                    self.checkpoints.get(name),
                    device=self.device,
                    ray_address=ray_address or self.ray_address,
                    progress=progress,
                    cancel=cancel,
                )
            except (BackboneUnavailable, RayUnavailable) as error:
                raise ProjectError(str(error)) from error
            per_backbone.append((result.vectors, result.ok))
            identities.append(result.identity)
            ok &= result.ok
            failed.update({item.path: item for item in result.failed})
        if not ok.any():
            raise ProjectError("No image could be decoded and embedded; see the skipped files for reasons.")
        spaces = [_rows_for(vectors, mask, ok) for vectors, mask in per_backbone]
        usable = [record for record, keep in zip(records, ok, strict=True) if keep]
        return usable, spaces, identities, list(failed.values())

    def run_discovery(
        self,
        n_clusters: int | tuple[int, int],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        *,
        effort: str | None = None,
    ) -> DiscoveryResult:
        """Scan, embed and discover categories; the result replaces the curation (saved first).

        `effort` names one of `turtle_core.effort.EFFORTS` ("quick", "standard"; default standard).
        """
        from turtle_core.discovery.effort import resolve_effort
        from turtle_core.discovery.metrics import evaluate, kmeans_baseline
        from turtle_core.discovery.selection import select_model

        try:
            chosen = resolve_effort(effort)
        except ValueError as error:
            raise ProjectError(str(error)) from error
        started = time.perf_counter()
        self.scan(progress, cancel)
        images, spaces, identities, failed = self.embed(progress, cancel)
        n_clusters = _checked_cluster_request(n_clusters, len(images))
        selection = select_model(
            spaces, n_clusters, progress=progress, cancel=cancel, random_state=0, **chosen.select_kwargs()
        )
        best = selection.best
        labels = np.asarray(best.labels_, dtype=np.int32)
        truth = _folder_labels(images)
        metrics = kmeans_metrics = None
        if truth is not None:
            metrics = evaluate(truth, labels)
            kmeans_metrics = evaluate(
                truth, kmeans_baseline(spaces, selection.best_n_clusters, random_state=0)
            )
        result = DiscoveryResult(
            images=images,
            labels=labels,
            probabilities=np.asarray(best.probabilities_, dtype=np.float32),
            confidence=np.asarray(best.confidence_, dtype=np.float32),
            n_clusters=int(selection.best_n_clusters),
            score=float(max(candidate.score for candidate in selection.candidates)),
            scores_by_k={int(k): float(v) for k, v in selection.scores_by_k.items()},
            params=_jsonable({**selection.best_params, "effort": chosen.name}),
            backbones=list(self.backbones),
            identities=identities,
            seconds=time.perf_counter() - started,
            failed=failed,
            metrics=metrics,
            kmeans_metrics=kmeans_metrics,
        )
        with self._lock:
            atomic_write_bytes(self.workdir / "discovery.npz", result.to_bytes())
            self.discovery = result
            self._spaces = spaces
            self.curation = Curation.from_discovery(labels)
            self.save_curation()
        return result

    # ----------------------------------------------------------------- after discovery
    @property
    def images(self) -> list[ImageRecord]:
        return self.discovery.images if self.discovery else []

    def spaces(self) -> list[np.ndarray]:
        """The discovery's feature matrices, read back from the embedding cache (no model work)."""
        discovery = self._require_discovery()
        with self._lock:
            if self._spaces is None:
                hashes = [record.content_hash for record in discovery.images]
                spaces = []
                for identity in discovery.identities:
                    found, rows = EmbeddingCache(embedding_cache_dir() / identity).lookup(hashes)
                    if not found.all():
                        raise ProjectError(
                            "The embedding cache no longer holds this discovery's features; run discovery again."
                        )
                    spaces.append(np.asarray(rows, dtype=np.float32))
                self._spaces = spaces
            return self._spaces

    def save_curation(self) -> None:
        if self.curation is not None:
            self.curation.save(self.workdir / "curation.npz", self._image_key())

    def split_cluster(self, cluster_id: int, n_parts: int | None = None) -> list[int]:
        """Re-run discovery inside one cluster and split it (one undoable edit). `None`: choose 2..4."""
        from turtle_core.discovery.effort import resolve_effort
        from turtle_core.discovery.selection import select_model

        curation = self._require_curation()
        members = curation.members(cluster_id)
        if len(members) < 4:
            raise ProjectError(
                f"'{curation.name_of(cluster_id)}' has {len(members)} images: too few to split."
            )
        request: int | tuple[int, int] = n_parts if n_parts else (2, min(4, len(members) // 2))
        request = _checked_cluster_request(request, len(members))
        sub_spaces = [space[members] for space in self.spaces()]
        # The split spends the effort the discovery was run with.
        chosen = resolve_effort(self._require_discovery().params.get("effort"))
        selection = select_model(sub_spaces, request, random_state=0, **chosen.select_kwargs())
        new_ids = curation.split(cluster_id, np.asarray(selection.best.labels_))
        self.save_curation()
        return new_ids

    def layout(
        self,
        method: Literal["pca", "umap"],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> np.ndarray:
        """2-D map of the images (cached on disk per discovery)."""
        from turtle_core.embedding.projection import LayoutCache, concat_spaces

        cached = self.cached_layout(method)
        if cached is not None:
            return cached
        check_cancel(cancel)
        return LayoutCache(self.workdir / "layouts").get_or_compute(
            self._layout_key(), concat_spaces(self.spaces()), method, progress=progress
        )

    def cached_layout(self, method: Literal["pca", "umap"]) -> np.ndarray | None:
        from turtle_core.embedding.projection import LayoutCache

        if self.discovery is None:
            return None
        return LayoutCache(self.workdir / "layouts").cached(self._layout_key(), method)

    def image_path(self, index: int) -> Path:
        return self.folder / self.images[index].path

    def thumbnail(self, index: int) -> Path | None:
        from turtle_core.ingest.thumbnails import ThumbnailCache

        record = self.images[index]
        return ThumbnailCache(turtle_home() / "thumbnails").get(
            self.folder / record.path, record.content_hash
        )

    def ground_truth(self) -> list[str] | None:
        return _folder_labels(self.images) if self.discovery else None

    def current_metrics(self) -> dict[str, float] | None:
        """Accuracy/NMI/ARI of the curated labels against folder labels (excluded images left out)."""
        from turtle_core.discovery.metrics import evaluate

        truth = self.ground_truth()
        if truth is None or self.curation is None:
            return None
        keep = self.curation.assignments != EXCLUDED
        if not keep.any():
            return None
        return evaluate(np.asarray(truth, dtype=object)[keep], self.curation.assignments[keep])

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
    ) -> Any:
        """Write the labeled dataset to `dest` (never inside the source folder; never over an export unasked)."""
        from turtle_core.export.dataset import export_dataset

        kwargs: dict[str, Any] = {
            "mode": mode,
            "overwrite": overwrite,
            "progress": progress,
            "cancel": cancel,
        }
        if formats is not None:
            kwargs["formats"] = formats
        target = Path(os.path.expanduser(os.fspath(dest))).resolve()
        return export_dataset(self.folder, dest=target, **self._export_columns(), **kwargs)

    # ----------------------------------------------------------------- internals
    def _export_columns(self) -> dict[str, Any]:
        curation = self._require_curation()
        discovery = self._require_discovery()
        return {
            "paths": [record.path for record in discovery.images],
            "labels": curation.labels_as_names(),
            "cluster_ids": curation.assignments.tolist(),
            "confidence": discovery.confidence.tolist(),
            "touched": curation.touched.tolist(),
        }

    def _require_discovery(self) -> DiscoveryResult:
        if self.discovery is None:
            raise ProjectError("No discovery yet: run discovery first.")
        return self.discovery

    def _require_curation(self) -> Curation:
        self._require_discovery()
        if self.curation is None:
            raise ProjectError("No discovery yet: run discovery first.")
        return self.curation

    def _image_key(self) -> str:
        digest = hashlib.sha1()
        for record in self.images:
            digest.update(
                record.path.encode("utf-8", "surrogateescape") + b"\0" + record.content_hash.encode()
            )
        return digest.hexdigest()

    def _layout_key(self) -> str:
        discovery = self._require_discovery()
        return hashlib.sha1((self._image_key() + "|".join(discovery.identities)).encode()).hexdigest()[:20]

    def _save_settings(self) -> None:
        atomic_write_json(
            self.workdir / "project.json",
            {"folder": os.fspath(self.folder), "backbones": self.backbones, "checkpoints": self.checkpoints},
        )

    def _restore(self) -> None:
        settings = _read_optional_json(self.workdir / "project.json")
        if isinstance(settings, dict):
            from turtle_core.embedding.backbones import BACKBONES

            names = [name for name in settings.get("backbones", []) if name in BACKBONES]
            self.backbones = names or list(DEFAULT_BACKBONES)
            self.checkpoints = dict(settings.get("checkpoints", {}))
        scan = _read_optional_json(self.workdir / "scan.json")
        if isinstance(scan, dict):
            self.scan_result = ScanResult.from_dict(scan)
        discovery_file = self.workdir / "discovery.npz"
        if discovery_file.exists():
            try:
                self.discovery = DiscoveryResult.from_bytes(discovery_file.read_bytes())
            except (OSError, ValueError, KeyError) as error:
                raise ProjectError(
                    f"The saved discovery {discovery_file} is unreadable ({error})."
                ) from error
            curation_file = self.workdir / "curation.npz"
            if curation_file.exists():
                try:
                    self.curation = Curation.load(curation_file, self._image_key())
                except ValueError as error:
                    raise ProjectError(
                        f"The saved curation {curation_file} cannot be used: {error}"
                    ) from error
            else:
                self.curation = Curation.from_discovery(self.discovery.labels)


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise ProjectError(f"The folder {path} does not exist.")
    if not path.is_dir():
        raise ProjectError(f"{path} is a file, not a folder of images.")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ProjectError(f"The folder {path} cannot be read (permission denied).")


def _rows_for(vectors: np.ndarray, mask: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Rows of `vectors` (one per True in `mask`) for the records where `keep` is True."""
    position = np.cumsum(mask) - 1
    return np.asarray(vectors[position[keep]], dtype=np.float32)


def _folder_labels(images: Sequence[ImageRecord]) -> list[str] | None:
    labels = [record.label for record in images]
    if not labels or any(label is None for label in labels) or len(set(labels)) < 2:
        return None
    return [str(label) for label in labels]


def _checked_cluster_request(request: int | tuple[int, int], n_images: int) -> int | tuple[int, int]:
    if isinstance(request, tuple | list):
        low, high = (int(value) for value in request)
        if low > high:
            low, high = high, low
        if low < 2:
            raise ProjectError("The number of categories must be at least 2.")
        high = min(high, n_images)
        if low > high:
            raise ProjectError(f"Only {n_images} usable images: too few for {low} categories.")
        return (low, high) if low < high else low
    count = int(request)
    if count < 2:
        raise ProjectError("The number of categories must be at least 2.")
    if count > n_images:
        raise ProjectError(f"Only {n_images} usable images: too few for {count} categories.")
    return count


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(params), default=str))


def _read_optional_json(path: Path) -> Any:
    try:
        return read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None


def _remember_recent(folder: Path) -> None:
    entries = [os.fspath(folder)] + [entry for entry in Project.recent() if entry != os.fspath(folder)]
    with contextlib.suppress(OSError):
        atomic_write_json(turtle_home() / "recent.json", entries[:RECENT_LIMIT])
