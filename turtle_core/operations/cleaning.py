"""Cleaning a project: its images' quality flags, its near-duplicates (the neighbour graph cached beside
the layouts, keyed by the images and embeddings it came from) and name suggestions for its clusters."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from turtle_core.atomic import atomic_write_bytes
from turtle_core.cleaning.duplicates import (
    DuplicateGroup,
    NeighbourGraph,
    build_neighbour_graph,
    duplicate_groups,
    keep_priority,
)
from turtle_core.cleaning.quality import QualityFlags, quality_flags
from turtle_core.cleaning.suggest import (
    Suggestion,
    TopWords,
    curator_names,
    imagenet_names,
    imagenet_top_words,
    suggest_names,
    zero_shot_top_words,
)
from turtle_core.constants import EXCLUDED
from turtle_core.ingest.quality import current_signature
from turtle_core.ingest.scan import ImageRecord, ScanResult
from turtle_core.memo import IdentityMemo
from turtle_core.progress import ProgressCallback
from turtle_core.state.discovery_result import DiscoveryResult
from turtle_core.state.edits import KeepOnePerGroup
from turtle_core.state.project_state import Snapshot


class CleaningProject(Protocol):
    """What cleaning needs of a project (`Project`, or a stand-in in tests)."""

    workdir: Path
    scan_result: ScanResult | None
    checkpoints: dict[str, str]

    def spaces(self, discovery: DiscoveryResult | None = None) -> list[np.ndarray]: ...


_memo: dict[str, Any] = {}
_memo_lock = threading.Lock()
_per_object = IdentityMemo(size=64)  # a threshold slider leaves many groupings behind


# ----------------------------------------------------------------------------------------- quality
def images_with_quality(images: Sequence[ImageRecord], scan: ScanResult | None) -> list[ImageRecord]:
    """`images` with quality scores and pixel signatures taken from `scan` where the image (same path
    and content) was measured there but not when the discovery was made (an older discovery, or one
    whose signatures were of an older size)."""
    if scan is None or all(
        record.quality is not None and current_signature(record.signature) for record in images
    ):
        return list(images)
    scanned = {(record.path, record.content_hash): record for record in scan.images}
    return [_measured(record, scanned.get((record.path, record.content_hash))) for record in images]


def snapshot_quality(snap: Snapshot, scan: ScanResult | None) -> QualityFlags:
    """The quality flags of a snapshot's images (rows of the snapshot)."""
    # rows_key: a rescan changes the rows
    return _per_object.get(
        (scan, getattr(scan, "images", None)),
        ("quality", snap.rows_key),
        lambda: quality_flags(images_with_quality(snap.images, scan)),
    )


def scan_quality(scan: ScanResult) -> QualityFlags:
    """The quality flags of a scan's usable images."""
    return _per_object.get((scan, scan.images), "scan-quality", lambda: quality_flags(scan.images))


def _measured(record: ImageRecord, scanned: ImageRecord | None) -> ImageRecord:
    if scanned is None or (record.quality is not None and current_signature(record.signature)):
        return record
    from dataclasses import replace

    return replace(record, quality=scanned.quality, signature=scanned.signature)


# ----------------------------------------------------------------------------------------- duplicates
def graph_path(workdir: Path, discovery: DiscoveryResult) -> Path:
    """Where the neighbour graph of a discovery's images and embeddings is kept."""
    key = hashlib.sha1((discovery.image_key() + "|".join(discovery.identities)).encode()).hexdigest()[:20]
    return Path(workdir) / "neighbours" / f"{key}.npz"


def cached_graph(project: CleaningProject, discovery: DiscoveryResult) -> NeighbourGraph | None:
    """The discovery's neighbour graph when it was computed before (None otherwise, if unreadable, or if it
    was built from the embeddings alone and the scan has since measured the images' pixel signatures)."""
    path = graph_path(project.workdir, discovery)
    key = f"graph:{path}"
    with _memo_lock:
        graph = _memo.get(key)
    if graph is None:
        try:
            graph = NeighbourGraph.from_bytes(path.read_bytes())
        except (OSError, ValueError, KeyError):
            return None
        if graph.node_of_row.shape[0] != len(discovery.images):
            return None
        with _memo_lock:
            _memo[key] = graph
    if not graph.has_signatures and _signatures_measured(discovery, project.scan_result):
        return None
    return graph


def _signatures_measured(discovery: DiscoveryResult, scan: ScanResult | None) -> bool:
    """Whether any of the discovery's images has a current pixel signature (its own or the scan's)."""
    return _per_object.get(
        (discovery, scan),
        "signatures",
        lambda: any(current_signature(r.signature) for r in images_with_quality(discovery.images, scan)),
    )


def compute_graph(
    project: CleaningProject,
    discovery: DiscoveryResult,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> NeighbourGraph:
    """Build (or read back) the nearest-neighbour graph of a discovery's images from their embeddings."""
    graph = cached_graph(project, discovery)
    if graph is not None:
        return graph
    images = images_with_quality(discovery.images, project.scan_result)
    graph = build_neighbour_graph(
        project.spaces(discovery),
        [record.content_hash for record in images],
        signatures=[r.signature for r in images]
        if _signatures_measured(discovery, project.scan_result)
        else None,
        progress=progress,
        cancel=cancel,
    )
    path = graph_path(project.workdir, discovery)
    atomic_write_bytes(path, graph.to_bytes())
    with _memo_lock:
        _memo[f"graph:{path}"] = graph
    return graph


def image_priority(images: Sequence[ImageRecord]) -> np.ndarray:
    """Which image of a group of near-duplicates to keep: the most pixels, then the largest file."""
    return keep_priority([r.width * r.height for r in images], [r.size for r in images])


def near_duplicates(snap: Snapshot, graph: NeighbourGraph, threshold: float) -> list[DuplicateGroup]:
    """The snapshot's groups of near-duplicates at `threshold` (exact copies at any threshold)."""
    return _per_object.get(
        (graph,),
        ("groups", snap.rows_key, f"{threshold:.6f}"),
        lambda: duplicate_groups(graph, threshold, image_priority(snap.images)),
    )


def keep_one_edit(snap: Snapshot, groups: Sequence[DuplicateGroup]) -> KeepOnePerGroup | None:
    """One edit that keeps each group's kept image and excludes its other images not excluded yet
    (None when there is nothing to exclude)."""
    assignments = snap.curation.assignments
    rows = [row for group in groups for row in group.others if assignments[row] != EXCLUDED]
    if not rows:
        return None
    return KeepOnePerGroup(discovery_id=snap.discovery_id, images=snap.keys(rows), groups=len(groups))


# ----------------------------------------------------------------------------------------- names
def naming_backbone(discovery: DiscoveryResult, checkpoints: dict[str, str]) -> tuple[int, str] | None:
    """The discovery's space that can name images, as (index, backbone): a CLIP model first, else an
    EfficientNet-Lite with its shipped ImageNet head (not one loaded from another checkpoint)."""
    from turtle_core.embedding.heads import has_imagenet_head, is_clip

    for index, name in enumerate(discovery.backbones):
        if is_clip(name):
            return index, name
    for index, name in enumerate(discovery.backbones):
        if has_imagenet_head(name) and name not in checkpoints:
            return index, name
    return None


def top_words(
    project: CleaningProject,
    discovery: DiscoveryResult,
    extra_words: Sequence[str] = (),
    *,
    compute: bool = True,
) -> TopWords | None:
    """Each image's most likely words (None when no backbone of the discovery can name images, or
    its weights are missing). With CLIP the vocabulary is ImageNet's names plus `extra_words`.
    With `compute=False` only an earlier result is returned (`NotComputed` raised otherwise)."""
    from turtle_core.embedding.backbones import BackboneUnavailable
    from turtle_core.embedding.heads import clip_text_encoder, imagenet_head, is_clip

    chosen = naming_backbone(discovery, project.checkpoints)
    if chosen is None:
        return None
    index, name = chosen
    words = tuple(dict.fromkeys([*imagenet_names(), *extra_words])) if is_clip(name) else ()
    key = f"words:{discovery.rows_key}:{hash(words)}"  # per row: new after a rescan
    if not compute:
        with _memo_lock:
            if key not in _memo:
                raise NotComputed(key)
            return _memo[key]

    def compute_words() -> TopWords | None:
        features = project.spaces(discovery)[index]
        try:
            if is_clip(name):
                encoder = clip_text_encoder(name, project.checkpoints.get(name))
                return zero_shot_top_words(features, encoder, words)
            weight, bias = imagenet_head(name)
        except BackboneUnavailable:
            return None
        if features.shape[1] != weight.shape[1]:  # features from other weights than the head's
            return None
        return imagenet_top_words(features, weight, bias)

    return _memoised(key, compute_words)


class NotComputed(LookupError):
    """The words of a discovery's images have not been computed yet."""


def cluster_suggestions(
    project: CleaningProject, snap: Snapshot, *, compute: bool = True
) -> dict[int, list[Suggestion]] | None:
    """Name suggestions for the snapshot's clusters (None when no backbone can name images); a
    suggestion equal to the cluster's name is left out. With `compute=False`, raises `NotComputed`
    instead of computing the images' words (seconds per 10,000 images)."""
    curation = snap.curation
    names = {cid: curation.name_of(cid) for cid in curation.cluster_ids()}
    words = top_words(project, snap.discovery, curator_names(names), compute=compute)
    if words is None:
        return None
    found = suggest_names(words, curation.assignments, curation.cluster_ids())
    return {cid: [s for s in found[cid] if s.name.casefold() != names[cid].casefold()] for cid in found}


def _memoised(key: str, compute: Any) -> Any:
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    value = compute()
    with _memo_lock:
        if len(_memo) > 64:
            _memo.clear()
        _memo[key] = value
    return value
