"""The suite's plain anchors (k-means start, logistic-probe refine) and the product's refine, lazily."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.suite.curator import RefineFn


def l2_normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def kmeans_start(features: np.ndarray, n_clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means (n_init=10) on L2-normalised features; confidence = distance to the second-nearest
    centroid minus distance to the nearest (the centroid margin)."""
    from sklearn.cluster import KMeans

    data = l2_normalise(features)
    model = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(data)
    distances = np.sort(model.transform(data), axis=1)
    return model.labels_.astype(np.int64), (distances[:, 1] - distances[:, 0]).astype(np.float64)


class ProbeRefine:
    """The feedback anchor: logistic regression (standardised features, C = 0.1) trained on the checked
    images, predicting the rest; confidence = its max probability (checked rows: 1). With fewer than
    two classes among the checked images there is nothing to train: labels and the previous
    confidence are returned unchanged."""

    def __init__(self, features: np.ndarray, start_confidence: np.ndarray, seed: int = 0) -> None:
        from sklearn.preprocessing import StandardScaler

        self.data = StandardScaler().fit_transform(np.asarray(features, dtype=np.float32))
        self.confidence = np.asarray(start_confidence, dtype=np.float64)
        self.seed = seed

    def __call__(
        self, labels: np.ndarray, checked: np.ndarray, origin: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.linear_model import LogisticRegression

        if np.unique(labels[checked]).size < 2:
            return labels, self.confidence
        probe = LogisticRegression(C=0.1, max_iter=1000, random_state=self.seed)
        probe.fit(self.data[checked], labels[checked])
        unchecked = ~checked
        probabilities = probe.predict_proba(self.data[unchecked])
        new_labels = labels.copy()
        new_labels[unchecked] = probe.classes_[probabilities.argmax(1)]
        confidence = np.ones(labels.size)
        confidence[unchecked] = probabilities.max(1)
        self.confidence = confidence
        return new_labels, confidence


def load_product_refine() -> Callable[..., tuple[np.ndarray, np.ndarray]] | None:
    """`turtle_core.discovery.refine.refine_labels` when the engine has it, else None."""
    try:
        from turtle_core.discovery.refine import refine_labels
    except ImportError:
        return None
    return refine_labels


def product_refine(features: np.ndarray, confidence: np.ndarray, seed: int) -> RefineFn | None:
    """The product's propagation as the simulated curator calls it, or None while the engine lacks it. Like
    the product (`turtle_core/operations/propagate.py`), it moves images and leaves the review queue's order
    alone: every image keeps the start's `confidence`."""
    refine_labels = load_product_refine()
    if refine_labels is None:
        return None
    from turtle_core.discovery.refine import FeatureProbe

    probe = FeatureProbe([np.asarray(features, dtype=np.float32)])  # prepared once, reused every round
    queue = np.asarray(confidence, dtype=np.float64)

    def refine(labels: np.ndarray, checked: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = refine_labels(probe, labels, checked, origin=origin, random_state=seed)
        return np.asarray(result.labels), queue.copy()

    return refine
