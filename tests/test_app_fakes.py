"""A fast stand-in for `turtle_core.project.Project` for UI-only AppTests, and the helpers to inject it.

Real images and thumbnails on disk, the real project state (store, `apply`, snapshots, lock), and the
real export; embeddings, TURTLE and UMAP are replaced by instant synthetic results. Tests that need
the real engine use `Project` itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from turtle_core.embedding.backbones import PRESETS, Availability
from turtle_core.ingest.quality import measure_quality
from turtle_core.ingest.scan import ImageRecord, ScanResult, SkippedFile, hash_bytes
from turtle_core.operations import cleaning
from turtle_core.operations.project import DiscoveryResult, Project
from turtle_core.progress import Progress, check_cancel
from turtle_core.state.curation import Curation
from turtle_core.state.edits import Edit, Split
from turtle_core.state.project_state import ProjectState, Snapshot
from turtle_core.state.store import ProjectStore

APP = Path(__file__).resolve().parent.parent / "app.py"
CLASSES = ("cats", "dogs", "owls")
COLOURS = ((220, 80, 60), (60, 120, 220), (90, 180, 90))
DARK = {(0, 0), (0, 1)}  # (class, image): drawn dark, so the quality flags have something to show


class FakeProject:
    """Same public surface as `Project`; every long step is instant and deterministic."""

    def __init__(
        self,
        folder: Path,
        per_class: int = 12,
        discovered: bool = True,
        near_copies: tuple[tuple[int, int], ...] = (),
    ) -> None:
        self.folder = folder
        self.workdir = folder.parent / "workdir"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backbones: list[str] = list(PRESETS["offline"])
        self.checkpoints: dict[str, str] = {}
        self.device: str | None = None
        self.ray_address: str | None = None
        self.saves = 0
        self.discover_calls: list[Any] = []
        self.discover_efforts: list[str | None] = []
        self.discover_partitions: list[str] = []
        self.discover_runs: list[dict[str, Any]] = []  # backbones, checkpoints, ray_address, within
        self.scan_within: list[Any] = []
        self.export_within: list[Any] = []
        self.split_calls: list[tuple[int, int | None]] = []
        self.split_gate: threading.Event | None = None  # set by tests to hold a split "running"
        self.discover_gate: threading.Event | None = None  # set by tests to hold discovery "running"
        self._records = _write_images(folder, per_class)
        self.near_copies = near_copies  # (source row, copy row): the copy's features sit next to the source's
        self.scan_result: ScanResult | None = ScanResult(
            root=str(folder),
            images=list(self._records),
            skipped=[SkippedFile("cats/broken.png", "corrupt or truncated image data")],
            duplicates=[],
        )
        self.state = ProjectState(ProjectStore(self.workdir), folder)
        self.state.load()
        rng = np.random.default_rng(0)
        truth = np.repeat(np.arange(len(CLASSES)), per_class)
        self._xy = (
            rng.normal(size=(len(truth), 2)) * 0.3 + np.stack([truth * 3.0, truth % 2 * 2.0], 1)
        ).astype(np.float32)
        self._truth = truth
        if discovered:
            self._set_discovery(len(CLASSES))

    # ------------------------------------------------------------------ settings
    def set_backbones(self, names: Sequence[str], checkpoints: Mapping[str, str] | None = None) -> None:
        self.backbones = list(names)
        if checkpoints is not None:
            self.checkpoints = {k: v for k, v in checkpoints.items() if v}

    def availability(self, backbones=None, checkpoints=None) -> list[Availability]:
        result = []
        checkpoints = self.checkpoints if checkpoints is None else checkpoints
        for name in self.backbones if backbones is None else backbones:
            if name.startswith("effnet") or name in checkpoints:
                result.append(Availability(name, "present", ""))
            else:
                result.append(
                    Availability(name, "missing", f"Offline: provide a local checkpoint for {name}.")
                )
        return result

    # ------------------------------------------------------------------ pipeline
    def scan(
        self,
        progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        *,
        within=None,
    ) -> ScanResult:
        self.scan_within.append(within)
        if progress:
            progress(Progress("scan", len(self._records), len(self._records)))
        assert self.scan_result is not None
        return self.scan_result

    def run_discovery(
        self,
        n_clusters: int | tuple[int, int],
        progress=None,
        cancel=None,
        *,
        effort: str | None = None,
        partition: str = "auto",
        replaceable: str | None = None,
        backbones=None,
        checkpoints=None,
        ray_address=None,
        within=None,
    ) -> DiscoveryResult:
        self.discover_runs.append(
            {"backbones": backbones, "checkpoints": checkpoints, "ray_address": ray_address, "within": within}
        )
        self.discover_calls.append(n_clusters)
        self.discover_efforts.append(effort)
        self.discover_partitions.append(partition)
        n = len(self._records)
        if progress:
            progress(Progress("scan", n, n))
        for done in range(0, n + 1, max(1, n // 4)):
            check_cancel(cancel)
            if progress:
                progress(Progress("embed", done, n, rate=100.0, eta_s=(n - done) / 100.0))
        if self.discover_gate is not None:
            while not self.discover_gate.wait(0.02):
                check_cancel(cancel)
        k = n_clusters if isinstance(n_clusters, int) else len(CLASSES)
        return self._set_discovery(
            k, scores=None if isinstance(n_clusters, int) else n_clusters, replaceable=replaceable
        )

    def earlier_curations(self):
        return self.state.earlier_curations()

    def work_token(self) -> str:
        return self.state.work_token()

    def install_discovery(self, result: DiscoveryResult, replaceable: str | None = None) -> None:
        self.state.install_discovery(result, replaceable=replaceable)

    def _set_discovery(
        self, k: int, scores: tuple[int, int] | None = None, replaceable: str | None = None
    ) -> DiscoveryResult:
        n = len(self._records)
        labels = (self._truth % k).astype(np.int32)
        confidence = np.linspace(0.3, 0.99, n, dtype=np.float32)[np.random.default_rng(1).permutation(n)]
        probabilities = np.full((n, k), (1 - confidence[:, None]) / max(1, k - 1), np.float32)
        probabilities[np.arange(n), labels] = confidence
        scores_by_k = (
            {c: 1.0 - abs(c - 3) * 0.1 for c in range(scores[0], scores[1] + 1)} if scores else {k: 0.9}
        )
        discovery = DiscoveryResult(
            images=list(self._records),
            labels=labels,
            probabilities=probabilities,
            confidence=confidence,
            n_clusters=k,
            score=0.9,
            scores_by_k=scores_by_k,
            params={},
            backbones=list(self.backbones),
            identities=["fake"],
            seconds=1.5,
            metrics={"accuracy": 1.0, "nmi": 1.0, "ari": 1.0},
            kmeans_metrics={"accuracy": 0.8, "nmi": 0.7, "ari": 0.6},
        )
        self.state.install_discovery(discovery, replaceable=replaceable)
        return discovery

    # ------------------------------------------------------------------ after discovery
    @property
    def discovery(self) -> DiscoveryResult | None:
        return self.state.discovery

    @property
    def curation(self) -> Curation | None:
        return self.state.curation

    @property
    def images(self) -> list[ImageRecord]:
        return self.discovery.images if self.discovery else []

    def snapshot(self) -> Snapshot | None:
        return self.state.snapshot()

    def apply(self, edit: Edit) -> Any:
        result = self.state.apply(edit)  # the real entry point: lock, discovery check, save, undo
        self.saves += 1
        return result

    def take_notices(self) -> list[str]:
        return self.state.take_notices()

    def has_curation_edits(self) -> bool:
        return self.state.has_edits()

    def save_curation(self) -> None:
        self.saves += 1

    def split_cluster(
        self, cluster_id: int, n_parts: int | None = None, progress=None, cancel=None, *, effort=None
    ) -> list[int]:
        """Progress in steps like the real split; the parts are applied to the cluster as it is at the end,
        as one `Split` edit named like the real one ("<name> 1", …)."""
        from turtle_core.operations.split import part_names

        self.split_calls.append((cluster_id, n_parts))
        total = 1000
        for done in range(0, total + 1, 250):
            check_cancel(cancel)
            if progress:
                progress(
                    Progress("split", done, total, rate=500.0, eta_s=(total - done) / 500.0, unit="steps")
                )
            if self.split_gate is not None and done == 500:
                while not self.split_gate.wait(0.02):
                    check_cancel(cancel)
        snap = self.snapshot()
        assert snap is not None
        members = snap.curation.members(cluster_id)
        parts = n_parts or 2
        edit = Split(
            discovery_id=snap.discovery_id,
            cluster_id=cluster_id,
            members=snap.keys(members),
            sub_labels=tuple(int(i) % parts for i in range(members.size)),
            names=tuple(part_names(snap.curation, cluster_id, parts)),
        )
        return self.apply(edit)

    def spaces(self, discovery: DiscoveryResult | None = None) -> list[np.ndarray]:
        """Features with one direction per class plus noise: clusters of one class are alike."""
        rng = np.random.default_rng(2)
        centres = rng.normal(size=(len(CLASSES), 16)) * 3
        features = (centres[self._truth] + rng.normal(size=(len(self._truth), 16))).astype(np.float32)
        for source, copy in self.near_copies:
            features[copy] = features[source] + 0.01 * rng.normal(size=16).astype(np.float32)
        return [features]

    def propose_refine(self, cancel=None):
        from turtle_core.operations.propagate import propose_refine

        snap = self.snapshot()
        return propose_refine(
            snap, self.spaces(snap.discovery), cancel
        )  # the real proposal, on the fake's features

    refine = Project.refine  # the real one, through this fake's propose_refine and apply

    def layout(self, method: str, progress=None, cancel=None) -> np.ndarray:
        return self._xy if method == "pca" else self._xy * 2

    def cached_layout(self, method: str) -> np.ndarray | None:
        return self._xy * 2 if method == "umap" else self._xy

    def image_path(self, index: int) -> Path:
        return self.folder / self.images[index].path

    def thumbnail(self, index: int, within=None) -> Path | None:
        path = self.workdir / "thumbs" / f"{index}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            image = Image.open(self.image_path(index))
            image.thumbnail((64, 64))
            image.save(path)
        return path

    def current_metrics(self, snap: Snapshot | None = None) -> dict[str, float] | None:
        return {"accuracy": 0.95, "nmi": 0.9, "ari": 0.85}

    def _columns(self) -> dict[str, Any]:
        assert self.curation is not None and self.discovery is not None
        return {
            "paths": [r.path for r in self.images],
            "labels": self.curation.labels_as_names(),
            "cluster_ids": self.curation.assignments.tolist(),
            "confidence": self.discovery.confidence.tolist(),
            "checked": self.curation.checked.tolist(),
            "quality": cleaning.snapshot_quality(self.snapshot(), self.scan_result).columns(),
        }

    def manifest_frame(self) -> Any:
        from turtle_core.export.dataset import manifest_frame

        return manifest_frame(**self._columns())

    def export(
        self, dest, mode="copy", formats=None, overwrite=False, progress=None, cancel=None, *, within=None
    ) -> Any:
        from turtle_core.export.dataset import export_dataset

        self.export_within.append(within)
        kwargs = {"formats": formats} if formats is not None else {}
        return export_dataset(
            self.folder,
            dest=Path(dest),
            mode=mode,
            overwrite=overwrite,
            progress=progress,
            cancel=cancel,
            within=within,
            **self._columns(),
            **kwargs,
        )


def _write_images(folder: Path, per_class: int) -> list[ImageRecord]:
    records = []
    for c, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rel = f"{name}/{name}_{i:03d}.png"
            colour = COLOURS[c] if (c, i) not in DARK else tuple(v // 8 for v in COLOURS[c])
            image = Image.new("RGB", (40, 40), colour)
            image.putpixel((i % 40, i // 40), (255, 255, 255) if (c, i) not in DARK else (30, 30, 30))
            image.save(folder / rel)
            quality, _ = measure_quality(image, image)
            data = (folder / rel).read_bytes()
            records.append(ImageRecord(rel, len(data), 0, hash_bytes(data), 40, 40, name, quality))
    return records


# ------------------------------------------------------------------------------------------ helpers for tests


def open_app(monkeypatch: pytest.MonkeyPatch, project: Any | None, page: str | None = None) -> AppTest:
    """A fresh AppTest of the app that opens `project` for any folder (None: the real engine), on `page`."""
    from turtle_ui import session

    st.cache_resource.clear()  # the project cache and job registry outlive AppTest runs
    if project is not None:
        monkeypatch.setattr(session, "_open_project_uncached", lambda folder: project)
    at = AppTest.from_file(APP, default_timeout=30)
    if project is not None:
        at.session_state["folder"] = str(project.folder)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def wait_for_job(at: Any, project: Any, kind: str, timeout: float = 20.0) -> Any:
    """Wait for the project's background job of `kind`, then rerun the app; returns the job."""
    from turtle_ui import jobs as jobs_ui

    job = jobs_ui.job_manager().get(jobs_ui.job_key(project, kind))
    assert job is not None, f"no {kind} job was started"
    assert job.wait(timeout), f"{kind} job did not finish in {timeout} s"
    at.run()
    return job


def texts(at: Any) -> str:
    """Everything the page says, for substring assertions."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "success",
        "warning",
        "error",
    ):
        parts.extend(str(element.value) for element in getattr(at, kind))
    parts.extend(f"{m.label}: {m.value}" for m in at.metric)
    return "\n".join(parts)


def test_fake_project_matches_the_facade(tmp_path: Path) -> None:
    fake_project = FakeProject(tmp_path / "images")
    from turtle_core.operations.project import Project

    public = {name for name in dir(Project) if not name.startswith("_")}
    # The curation-over-time actions run against a real curated folder (tests/test_app_curations.py).
    real_only = {"update", "import_labels", "classifier", "restore_curation"}
    assert (
        public - set(dir(fake_project))
        <= {"open", "recent", "embed", "spaces", "ground_truth", "store"} | real_only
    )
    assert fake_project.curation is not None
    assert fake_project.curation.sizes() == {0: 12, 1: 12, 2: 12}
    assert fake_project.thumbnail(0).is_file()
