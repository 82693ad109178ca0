"""Name suggestions for clusters: the members vote with their most likely words.

Each image gives its `TOP_K` most likely words (the ImageNet classifier head offline, CLIP zero-shot
over a vocabulary otherwise) with their probabilities; a cluster's words are ranked by the probability
its members give them in total, and each suggestion carries its evidence: the share of members that
have the word among their top words. A word below `MIN_SHARE` is not suggested: weak evidence shows
nothing rather than a wrong word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

TOP_K = 5
MIN_SHARE = 0.4
MIN_LIFT = 2.0
MIN_PROBABILITY = 0.25
MAX_SUGGESTIONS = 3
CLIP_SCALE = 100.0  # CLIP's learned logit scale after training (exp(4.6052))
_CHUNK = 8192


@dataclass(frozen=True)
class Suggestion:
    """A word for a cluster; `share`: the share of its members with the word among their top words."""

    name: str
    share: float

    def label(self) -> str:
        return f"{self.name} ({self.share:.0%} of images)"


@dataclass(frozen=True)
class TopWords:
    """Each image's most likely words: `indices` into `vocabulary`, `probabilities` (images × TOP_K)."""

    vocabulary: tuple[str, ...]
    indices: np.ndarray
    probabilities: np.ndarray


@lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names (first WordNet lemma of each class, as timm ships them)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(_plain_word(info.index_to_description(i).split(",")[0]) for i in range(info.num_classes()))


def top_words_from_logits(
    features: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    vocabulary: Sequence[str],
    *,
    scale: float = 1.0,
    k: int = TOP_K,
) -> TopWords:
    """Every row's `k` most likely words under the linear scorer `scale * (features @ weight.T + bias)`."""
    n = features.shape[0]
    k = min(k, len(vocabulary))
    indices = np.empty((n, k), np.int32)
    probabilities = np.empty((n, k), np.float32)
    for start in range(0, n, _CHUNK):
        logits = np.asarray(features[start : start + _CHUNK], np.float32) @ weight.T
        if bias is not None:
            logits += bias
        logits *= scale
        logits -= logits.max(1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(1, keepdims=True)
        top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(logits, top, 1), axis=1)
        indices[start : start + len(top)] = np.take_along_axis(top, order, 1)
        probabilities[start : start + len(top)] = np.take_along_axis(
            logits, indices[start : start + len(top)], 1
        )
    return TopWords(tuple(vocabulary), indices, probabilities)


def imagenet_top_words(features: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> TopWords:
    """Top ImageNet words of pooled EfficientNet-Lite features through its classifier head."""
    return top_words_from_logits(features, weight, bias, imagenet_names())


def zero_shot_top_words(
    image_features: np.ndarray, encode_text: Callable[[Sequence[str]], np.ndarray], vocabulary: Sequence[str]
) -> TopWords:
    """Top words of CLIP image features among `vocabulary` (zero-shot: cosine similarity × CLIP's scale)."""
    words = tuple(dict.fromkeys(word for word in vocabulary if word.strip()))
    text = encode_text(list(words))
    unit = image_features / np.maximum(np.linalg.norm(image_features, axis=1, keepdims=True), 1e-12)
    return top_words_from_logits(unit, text, None, words, scale=CLIP_SCALE)


def suggest_names(
    top: TopWords, assignments: np.ndarray, clusters: Sequence[int], *, min_share: float = MIN_SHARE
) -> dict[int, list[Suggestion]]:
    """Up to `MAX_SUGGESTIONS` words per cluster, strongest first. A word is suggested when at least
    `min_share` of the members hold it and it sets the cluster apart: held by at least `MIN_LIFT` times
    the share of the other images (words every image of a folder gets say nothing about a cluster), and
    the members holding it give it a mean probability of at least `MIN_PROBABILITY` (not a guess).
    A cluster without such a word gets an empty list."""
    n_words = len(top.vocabulary)
    held = np.zeros((0, n_words))
    ids = [int(cluster) for cluster in clusters]
    sizes = np.asarray([(assignments == cluster).sum() for cluster in ids], dtype=np.float64)
    mass = np.zeros((len(ids), n_words))
    held = np.zeros((len(ids), n_words))
    for i, cluster in enumerate(ids):
        members = np.flatnonzero(assignments == cluster)
        words = top.indices[members].ravel()
        mass[i] = np.bincount(words, weights=top.probabilities[members].ravel(), minlength=n_words)
        held[i] = np.bincount(words, minlength=n_words)
    total_held = np.bincount(top.indices.ravel(), minlength=n_words).astype(np.float64)
    n_images = top.indices.shape[0]
    found: dict[int, list[Suggestion]] = {}
    for i, cluster in enumerate(ids):
        if sizes[i] == 0:
            found[cluster] = []
            continue
        share = np.minimum(held[i] / sizes[i], 1.0)
        others = max(1.0, n_images - sizes[i])
        share_elsewhere = (total_held - held[i]) / others
        sure = mass[i] / np.maximum(held[i], 1.0)  # mean probability among the members holding the word
        keep = (share >= min_share) & (share >= MIN_LIFT * share_elsewhere) & (sure >= MIN_PROBABILITY)
        ranked = [w for w in np.argsort(-mass[i], kind="stable") if keep[w]][:MAX_SUGGESTIONS]
        found[cluster] = [Suggestion(top.vocabulary[w], round(float(share[w]), 3)) for w in ranked]
    return found


def open_set_scores(image_features: np.ndarray, name_features: np.ndarray) -> np.ndarray:
    """Each image's maximum softmax probability over the curator's names (CLIP text features): low
    means the image fits none of the named categories (the UEO open-set score)."""
    unit = image_features / np.maximum(np.linalg.norm(image_features, axis=1, keepdims=True), 1e-12)
    top = top_words_from_logits(
        unit, name_features, None, [str(i) for i in range(len(name_features))], scale=CLIP_SCALE, k=1
    )
    return top.probabilities[:, 0]


def curator_names(names: Mapping[int, str]) -> list[str]:
    """The names a curator typed (the automatic "Cluster N" names left out)."""
    return [name for name in names.values() if not re.fullmatch(r"Cluster \d+", name)]


def _plain_word(text: str) -> str:
    return text.strip().replace("_", " ")
