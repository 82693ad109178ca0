"""Categories out: a curation's categories as a classifier for other images.

The classifier is the learner "Propagate my fixes" uses (a `LinearProbe` over the backbones' features),
trained on the curation (`discovery.newcomers.learn_categories`). It labels the images of any other folder
embedded with the same backbones (`classify_folder`, the CLI's `classify`), and is saved as two files anyone
can load without the app (`save`): `classifier.safetensors` (each space's mean, scale and weights, and the
bias) and `card.json` (the backbones and the fingerprints of their weights, the preprocessing, the class
names, and what it was trained on).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from turtle_core.atomic import atomic_write_bytes, atomic_write_json
from turtle_core.discovery.probe import LinearProbe
from turtle_core.ingest.scan import ImageRecord, SkippedFile, scan_folder
from turtle_core.progress import ProgressCallback
from turtle_core.state.project_state import Snapshot

WEIGHTS_FILE = "classifier.safetensors"
CARD_FILE = "card.json"
CARD_FORMAT = 1


@dataclass(frozen=True)
class Classifier:
    """A trained classifier and its card."""

    probe: LinearProbe  # classes: 0..n-1, the positions in `class_names`
    class_names: tuple[str, ...]
    backbones: tuple[str, ...]
    identities: tuple[str, ...]  # the embedding identity of each backbone it was trained on
    card: Mapping[str, object]

    def predict(self, spaces: Sequence[np.ndarray]) -> tuple[list[str], np.ndarray]:
        """The likeliest class name of each row and its probability."""
        probabilities = self.probe.predict_proba(spaces)
        best = probabilities.argmax(1)
        return [self.class_names[int(i)] for i in best], probabilities[np.arange(best.size), best]

    def save(self, folder: Path) -> list[Path]:
        """Write `classifier.safetensors` and `card.json` into `folder`; returns their paths."""
        from safetensors.numpy import save

        folder.mkdir(parents=True, exist_ok=True)
        arrays = {name: np.ascontiguousarray(value) for name, value in self.probe.to_arrays().items()}
        arrays["classes"] = np.asarray(arrays["classes"], np.int64)
        weights, card = folder / WEIGHTS_FILE, folder / CARD_FILE
        atomic_write_bytes(weights, save(arrays, metadata={"format": str(CARD_FORMAT)}))
        atomic_write_json(card, dict(self.card))
        return [weights, card]

    @classmethod
    def load(cls, folder: Path) -> Classifier:
        from safetensors.numpy import load_file

        card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        if card.get("format") != CARD_FORMAT:
            raise ValueError(f"{folder / CARD_FILE} is not a classifier card this version reads")
        probe = LinearProbe.from_arrays(load_file(str(folder / WEIGHTS_FILE)))
        return cls(
            probe,
            tuple(card["classes"]),
            tuple(item["name"] for item in card["backbones"]),
            tuple(item["identity"] for item in card["backbones"]),
            card,
        )


def train_classifier(
    snap: Snapshot, spaces: Sequence[np.ndarray], checkpoints: Mapping[str, str] | None = None
) -> Classifier:
    """A classifier of `snap`'s curated categories (excluded images left out), trained on `spaces`."""
    from turtle_core.discovery.newcomers import learn_categories, training_rows
    from turtle_core.embedding.backbones import BACKBONES, weights_fingerprint

    assignments = np.asarray(snap.curation.assignments)
    checked = np.asarray(snap.curation.checked)
    probe = learn_categories(spaces, assignments, checked)
    names = tuple(snap.curation.name_of(int(cid)) for cid in probe.classes)
    probe = LinearProbe(probe.means, probe.scales, probe.weights, probe.bias, np.arange(len(names)))
    rows = training_rows(assignments, checked)
    counts = {
        snap.curation.name_of(int(cid)): int((assignments[rows] == cid).sum())
        for cid in np.unique(assignments[rows])
    }
    discovery = snap.discovery
    backbones = []
    for name, identity in zip(discovery.backbones, discovery.identities, strict=True):
        spec = BACKBONES[name]
        backbones.append(
            {
                "name": name,
                "identity": identity,
                "weights": weights_fingerprint(name, (checkpoints or {}).get(name)),
                "library": spec.library,
                "architecture": spec.architecture,
                "input_size": spec.input_size,
                "embed_dim": spec.embed_dim,
            }
        )
    card = {
        "format": CARD_FORMAT,
        "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "classes": list(names),
        "backbones": backbones,
        "preprocessing": (
            "each image: EXIF orientation applied, first frame, RGB; the backbone's own resize, crop and "
            "normalisation (turtle_core.embedding.backbones.load_backbone(name).preprocess); features pooled"
        ),
        "model": "softmax(sum_k ((x_k - mean_k) / scale_k) @ weight_k + bias), x_k = backbone k's features",
        "trained_on": {
            "images": int(rows.size),
            "checked_images": int(checked[rows].sum()),
            "per_class": counts,
            "curation_images": int(assignments.size),
        },
    }
    return Classifier(probe, names, tuple(discovery.backbones), tuple(discovery.identities), card)


@dataclass(frozen=True)
class Classified:
    """A folder's usable images with their class name and probability, and the files that could not be used."""

    images: list[ImageRecord]
    labels: list[str]
    confidence: np.ndarray
    skipped: list[SkippedFile]


def classify_folder(
    classifier: Classifier,
    folder: Path,
    checkpoints: Mapping[str, str] | None = None,
    *,
    device: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Classified:
    """Label every usable image of `folder` (read only) with the classifier (embeddings cached as usual)."""
    from turtle_core.operations.pipeline import embed_records
    from turtle_core.state.errors import ProjectError

    scan = scan_folder(folder, progress=progress, cancel=cancel)
    if not scan.images:
        raise ProjectError(f"No usable images in {folder}.")
    images, spaces, identities, failed = embed_records(
        folder,
        scan.images,
        list(classifier.backbones),
        dict(checkpoints or {}),
        progress,
        cancel,
        device=device,
    )
    if tuple(identities) != classifier.identities:
        raise ProjectError(
            "The backbones' weights here are not the ones the classifier was trained with "
            f"({', '.join(identities)} against {', '.join(classifier.identities)})."
        )
    labels, confidence = classifier.predict(spaces)
    return Classified(images, labels, confidence, list(scan.skipped) + list(failed))
