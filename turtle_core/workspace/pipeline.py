"""The long steps of a project's discovery: embed every scanned image, then find the categories."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from turtle_core.embedding.backbones import BackboneUnavailable
from turtle_core.embedding.ray_embed import RayUnavailable, embed_backbone_images
from turtle_core.ingest.scan import ImageRecord, SkippedFile
from turtle_core.progress import Progress, ProgressCallback, check_cancel
from turtle_core.workspace.checks import checked_cluster_request, folder_labels, jsonable, rows_for
from turtle_core.workspace.discovery_result import DiscoveryResult
from turtle_core.workspace.errors import ProjectError

if TYPE_CHECKING:
    from turtle_core.discovery.effort import Effort
    from turtle_core.workspace.project import Project


def embed_project(
    project: Project,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    *,
    ray_address: str | None = None,
) -> tuple[list[ImageRecord], list[np.ndarray], list[str], list[SkippedFile]]:
    """Embed every scanned image with each chosen backbone (cached by content; the missing vectors on the
    Ray cluster at `ray_address` when given).

    Returns the images usable in every space, one feature matrix per backbone (rows aligned to
    those images), the backbones' cache identities, and the images that failed to decode.
    """
    if project.scan_result is None:
        project.scan(progress, cancel)
    assert project.scan_result is not None
    records = project.scan_result.images
    if not records:
        raise ProjectError(f"No usable images in {project.folder}: nothing to discover.")
    ok = np.ones(len(records), dtype=bool)
    per_backbone: list[tuple[np.ndarray, np.ndarray]] = []
    identities: list[str] = []
    failed: dict[str, SkippedFile] = {}
    for name in project.backbones:
        check_cancel(cancel)
        try:
            result = embed_backbone_images(
                project.folder,
                records,
                name,
                project.checkpoints.get(name),
                device=project.device,
                ray_address=ray_address,
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
    spaces = [rows_for(vectors, mask, ok) for vectors, mask in per_backbone]
    usable = [record for record, keep in zip(records, ok, strict=True) if keep]
    return usable, spaces, identities, list(failed.values())


def compute_discovery(
    project: Project,
    n_clusters: int | tuple[int, int],
    chosen: Effort,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> tuple[DiscoveryResult, list[np.ndarray]]:
    """Scan, embed and discover (TURTLE's model selection, then the stability choice against k-means);
    the result and its feature matrices (not saved)."""
    from turtle_core.discovery.confidence import confidence_and_atypicality
    from turtle_core.discovery.discover import discover
    from turtle_core.discovery.metrics import evaluate, kmeans_baseline

    started = time.perf_counter()
    project.scan(progress, cancel)
    images, spaces, identities, failed = project.embed(progress, cancel)
    n_clusters = checked_cluster_request(n_clusters, len(images))
    found = discover(spaces, n_clusters, chosen, random_state=0, progress=progress, cancel=cancel)
    selection = found.selection
    labels = found.labels.astype(np.int32)
    truth = folder_labels(images)
    if (
        progress is not None
    ):  # confidence, k-means for reference and saving take a while on a busy CPU: say so
        what = "scoring against the folder labels and k-means, then saving" if truth else "saving"
        progress(Progress("finish", 0, 0, message=f"Discovery done: measuring confidence, {what}"))
    confidence, strangeness = confidence_and_atypicality(spaces, labels)
    metrics = kmeans_metrics = None
    if truth is not None:
        metrics = evaluate(truth, labels)
        kmeans_metrics = evaluate(truth, kmeans_baseline(spaces, selection.best_n_clusters, random_state=0))
    result = DiscoveryResult(
        images=images,
        labels=labels,
        probabilities=found.probabilities,
        # TURTLE's own softmax is saturated; this one orders the review queue (discovery/confidence.py).
        confidence=confidence,
        atypicality=strangeness,
        n_clusters=int(selection.best_n_clusters),
        score=float(max(candidate.score for candidate in selection.candidates)),
        scores_by_k={int(k): float(v) for k, v in selection.scores_by_k.items()},
        params=jsonable({**found.params, "effort": chosen.name}),
        backbones=list(project.backbones),
        identities=identities,
        seconds=time.perf_counter() - started,
        failed=failed,
        metrics=metrics,
        kmeans_metrics=kmeans_metrics,
    )
    return result, spaces
