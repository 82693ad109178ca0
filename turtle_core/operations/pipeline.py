"""The long steps of a project's discovery: embed every scanned image, then find the categories."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from turtle_core.embedding.backbones import BackboneUnavailable
from turtle_core.embedding.ray_embed import RayUnavailable, embed_backbone_images
from turtle_core.ingest.scan import ImageRecord, SkippedFile
from turtle_core.operations.checks import checked_cluster_request, folder_labels, jsonable, rows_for
from turtle_core.progress import Progress, ProgressCallback, check_cancel
from turtle_core.state.discovery_result import DiscoveryResult
from turtle_core.state.errors import ProjectError

if TYPE_CHECKING:
    from turtle_core.discovery.effort import Effort


def embed_records(
    folder: Path,
    records: Sequence[ImageRecord],
    backbones: Sequence[str],
    checkpoints: Mapping[str, str],
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    *,
    device: str | None = None,
    ray_address: str | None = None,
) -> tuple[list[ImageRecord], list[np.ndarray], list[str], list[SkippedFile]]:
    """Embed the scanned `records` of `folder` with each backbone (cached by content; the missing vectors
    on the Ray cluster at `ray_address` when given).

    Returns the images usable in every space, one feature matrix per backbone (rows aligned to
    those images), the backbones' cache identities, and the images that failed to decode.
    """
    if not records:
        raise ProjectError(f"No usable images in {folder}: nothing to discover.")
    ok = np.ones(len(records), dtype=bool)
    per_backbone: list[tuple[np.ndarray, np.ndarray]] = []
    identities: list[str] = []
    failed: dict[str, SkippedFile] = {}
    for name in backbones:
        check_cancel(cancel)
        try:
            result = embed_backbone_images(
                folder,
                list(records),
                name,
                checkpoints.get(name),
                device=device,
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


def discover_features(
    images: list[ImageRecord],
    spaces: list[np.ndarray],
    identities: list[str],
    n_clusters: int | tuple[int, int],
    chosen: Effort,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    *,
    backbones: list[str],
    failed: list[SkippedFile] | None = None,
    sample_rows: int | None = None,
    partition: str = "auto",
) -> DiscoveryResult:
    """The discovery on embedded images (TURTLE's model selection, then the stability choice against
    k-means, `discovery/discover.py`), their confidence, and the reference scores.

    Above `sample_rows` images (default `discovery.sampled.SAMPLE_ROWS`) the selection, the k-means
    reference and the confidence's fitted parts run on a fixed random sample of that many rows, and
    every image is assigned and scored in chunks (`discovery/sampled.py`); up to it, on every row.
    """
    from turtle_core.discovery import sampled as big
    from turtle_core.discovery.confidence import confidence_and_atypicality
    from turtle_core.discovery.discover import discover
    from turtle_core.discovery.estimate import discovery_seconds, record_discovery_speed
    from turtle_core.discovery.metrics import evaluate, kmeans_baseline
    from turtle_core.discovery.stability import CentroidModel

    started = time.perf_counter()
    n_clusters = checked_cluster_request(n_clusters, len(images))
    sample = big.discovery_sample(len(images), sample_rows)
    fit_spaces = spaces if sample is None else [X[sample] for X in spaces]
    if sample is not None and progress is not None:
        progress(
            Progress(
                "select",
                0,
                0,
                message=f"{len(images):,} images: the categories are learned on {sample.size:,} of them",
            )
        )
    found = discover(
        fit_spaces, n_clusters, chosen, random_state=0, progress=progress, cancel=cancel, partition=partition
    )
    del fit_spaces
    selection = found.selection
    if sample is None:
        probabilities = found.probabilities
    else:
        check_cancel(cancel)
        if progress is not None:
            progress(Progress("finish", 0, 0, message=f"Assigning all {len(images):,} images"))
        probabilities = big.predict_proba_chunked(found.partition_model(), spaces)
    labels = np.asarray(probabilities.argmax(1) if sample is not None else found.labels, dtype=np.int32)
    truth = folder_labels(images)
    if (
        progress is not None
    ):  # confidence, k-means for reference and saving take a while on a busy CPU: say so
        what = "scoring against the folder labels and k-means, then saving" if truth else "saving"
        progress(Progress("finish", 0, 0, message=f"Discovery done: measuring confidence, {what}"))
    check_cancel(cancel)
    if sample is None:
        confidence, strangeness = confidence_and_atypicality(spaces, labels)
    else:
        confidence, strangeness = big.confidence_and_atypicality_sampled(spaces, labels, sample)
    metrics = kmeans_metrics = None
    if truth is not None:
        check_cancel(cancel)
        metrics = evaluate(truth, labels)
        centres = found.choice.reference_centres  # the stability choice's k-means run at seed 0, when it ran
        if sample is None:
            reference = found.choice.kmeans_reference
            if reference is None:
                reference = kmeans_baseline(spaces, selection.best_n_clusters, random_state=0)
        elif centres is not None:  # fitted on (part of) the sample: every image assigned to its centres
            reference = big.predict_proba_chunked(CentroidModel(centres, 1.0), spaces).argmax(1)
        else:
            reference = big.kmeans_baseline_sampled(spaces, selection.best_n_clusters, sample, random_state=0)
        kmeans_metrics = evaluate(truth, reference)
    params = {**found.params, "effort": chosen.name}
    if sample is not None:
        params["fit_sample"] = int(sample.size)
    dims = [int(X.shape[1]) for X in spaces]
    reference_s = discovery_seconds(
        len(images), n_clusters, chosen, partition, dims, final_runs=not found.final_runs_skipped
    )
    record_discovery_speed(reference_s, time.perf_counter() - started)  # the next estimate's speed
    return DiscoveryResult(
        images=images,
        labels=labels,
        probabilities=probabilities,
        # TURTLE's own softmax is saturated; this one orders the review queue (discovery/confidence.py).
        confidence=confidence,
        atypicality=strangeness,
        n_clusters=int(selection.best_n_clusters),
        score=float(max(candidate.score for candidate in selection.candidates)),
        scores_by_k={int(k): float(v) for k, v in selection.scores_by_k.items()},
        params=jsonable(params),
        backbones=backbones,
        identities=identities,
        seconds=time.perf_counter() - started,
        failed=list(failed or []),
        metrics=metrics,
        kmeans_metrics=kmeans_metrics,
    )
