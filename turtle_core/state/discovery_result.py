"""`DiscoveryResult`: what one discovery run found, and its file format (`discovery.npz`)."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from turtle_core.ingest.scan import ImageRecord, SkippedFile

DISCOVERY_FORMAT = 2  # 2: records `discovery_id`; format 1 files get an id derived from their bytes


def new_discovery_id() -> str:
    return uuid.uuid4().hex


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
    # "Fits no category" score per image (discovery/confidence.py: atypicality); zeros for older files.
    atypicality: np.ndarray | None = None
    # Written at discovery time and recorded in every file derived from this discovery (the curation),
    # so that a curation is never paired with another discovery. An update (images added to or removed
    # from the folder after a curation) keeps the id and raises `revision`: edits chosen before it still
    # name their images by path.
    discovery_id: str = field(default_factory=new_discovery_id)
    revision: int = 0
    # Per row, the revision at which the image joined (0: found by the discovery itself); None: all 0.
    added: np.ndarray | None = None
    # `image_key` hashes every path; pages ask for it on each rerun. `dataclasses.replace` starts afresh.
    _image_key: str | None = field(default=None, init=False, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        meta = {
            "format": DISCOVERY_FORMAT,
            "discovery_id": self.discovery_id,
            "revision": self.revision,
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
            atypicality=self.atypicality_or_zeros(),
            added=self.added_or_zeros(),
            meta=np.frombuffer(json.dumps(meta, ensure_ascii=True).encode(), dtype=np.uint8),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DiscoveryResult:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode())
            if meta.get("format", 1) not in (1, DISCOVERY_FORMAT):
                raise ValueError(f"unsupported discovery format {meta.get('format')!r}")
            discovery_id = meta.get("discovery_id") or "v1-" + hashlib.sha1(data).hexdigest()[:24]
            return cls(
                images=[ImageRecord(**record) for record in meta["images"]],
                labels=arrays["labels"],
                probabilities=arrays["probabilities"],
                confidence=arrays["confidence"],
                atypicality=arrays["atypicality"] if "atypicality" in arrays.files else None,
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
                discovery_id=str(discovery_id),
                revision=int(meta.get("revision", 0)),
                added=arrays["added"] if "added" in arrays.files else None,
            )

    def atypicality_or_zeros(self) -> np.ndarray:
        """The "fits no category" score per image (0 where the discovery predates it)."""
        if self.atypicality is None:
            return np.zeros(self.labels.shape[0], np.float32)
        return np.asarray(self.atypicality, dtype=np.float32)

    def added_or_zeros(self) -> np.ndarray:
        """Per row, the revision at which the image joined (0 everywhere before any update)."""
        if self.added is None:
            return np.zeros(self.labels.shape[0], np.int32)
        return np.asarray(self.added, dtype=np.int32)

    @property
    def rows_key(self) -> str:
        """Changes whenever the rows change meaning: a new discovery or an update of its image list.
        Caches of anything indexed by row (map selections, layouts in memory) key on it."""
        return f"{self.discovery_id}.{self.revision}"

    def image_key(self) -> str:
        """Fingerprint of the ordered image list (paths and contents) that the rows refer to."""
        if self._image_key is None:
            digest = hashlib.sha1()
            for record in self.images:
                digest.update(
                    record.path.encode("utf-8", "surrogateescape") + b"\0" + record.content_hash.encode()
                )
            self._image_key = digest.hexdigest()
        return self._image_key
