"""Name suggestions: the shipped ImageNet head scores the cached features, members vote, weak or
undistinctive evidence shows nothing; the CLIP path's mechanics with random weights."""

from __future__ import annotations

import numpy as np
import torch

from turtle_core.cleaning.suggest import (
    TopWords,
    curator_names,
    imagenet_names,
    imagenet_top_words,
    open_set_scores,
    suggest_names,
    zero_shot_top_words,
)
from turtle_core.embedding.availability import get_spec
from turtle_core.embedding.backbones import load_backbone
from turtle_core.embedding.heads import clip_text_encoder, imagenet_head
from turtle_core.embedding.loading import efficientnet_lite_with_head


def test_the_head_scores_the_cached_features_as_the_whole_classifier_does() -> None:
    torch.manual_seed(0)
    batch = torch.randn(3, 3, 224, 224)
    classifier, _ = efficientnet_lite_with_head(get_spec("effnet-lite0"))
    with torch.inference_mode():
        logits = classifier.eval()(batch).numpy()
    features = load_backbone("effnet-lite0", device="cpu").encode(batch).numpy()  # what the cache holds
    weight, bias = imagenet_head("effnet-lite0")
    assert weight.shape == (1000, 1280) and len(imagenet_names()) == 1000
    np.testing.assert_allclose(features @ weight.T + bias, logits, rtol=1e-3, atol=1e-3)
    top = imagenet_top_words(features, weight, bias)
    assert top.indices.shape == (3, 5)
    assert (top.indices[:, 0] == logits.argmax(1)).all()
    assert (np.diff(top.probabilities, axis=1) <= 0).all()
    assert imagenet_names()[281] == "tabby" and imagenet_names()[340] == "zebra"


def _words(rows: list[list[tuple[int, float]]]) -> TopWords:
    return TopWords(
        ("tabby", "pick", "zebra", "kite", "ram"),
        np.asarray([[w for w, _ in row] for row in rows]),
        np.asarray([[p for _, p in row] for row in rows], dtype=np.float32),
    )


def test_strong_distinctive_words_are_suggested_and_weak_ones_are_not() -> None:
    rows = (
        [[(0, 0.7), (1, 0.2)]] * 10  # cluster 0: tabby, strongly
        + [[(1, 0.5), (3, 0.1)]] * 10  # cluster 1: pick, which every image of the folder holds
        + [[(2, 0.1), (1, 0.1)]] * 10  # cluster 2: zebra, but only as a guess
        + [[(4, 0.6), (1, 0.2)]] * 3
        + [[(3, 0.6), (1, 0.2)]] * 7  # cluster 3: ram for 30 % only
    )
    labels = np.repeat([0, 1, 2, 3], 10)
    found = suggest_names(_words(rows), labels, [0, 1, 2, 3, 9])
    assert [(s.name, s.share) for s in found[0]] == [("tabby", 1.0)]
    assert found[0][0].label() == "tabby (100% of images)"
    assert found[1] == [] and found[2] == [] and found[9] == []
    assert [s.name for s in found[3]] == ["kite"]


def test_clip_zero_shot_mechanics_with_random_weights() -> None:
    encode = clip_text_encoder("clip-vit-b32", random_init=True)
    vocabulary = ["cat", "dog", "car", *curator_names({0: "Cluster 0", 1: "kittens"})]
    assert vocabulary[-1] == "kittens" and "Cluster 0" not in vocabulary
    text = encode(vocabulary)
    assert text.shape == (4, 512)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)
    images = np.random.default_rng(0).normal(size=(6, 512)).astype(np.float32)
    images[0] = text[1] * 3.0  # an image whose features point at "dog"
    top = zero_shot_top_words(images, encode, vocabulary)
    assert top.vocabulary == tuple(vocabulary) and top.indices.shape == (6, 4)
    assert top.indices[0, 0] == 1 and top.probabilities[0, 0] > 0.9
    scores = open_set_scores(images, text)
    assert scores.shape == (6,) and (scores >= 0.25 - 1e-6).all() and (scores <= 1.0).all()
    assert scores[0] > 0.9


def test_a_backbone_this_version_does_not_know_names_nothing() -> None:
    from turtle_core.embedding.heads import has_imagenet_head, is_clip

    assert not is_clip("a-backbone-from-elsewhere") and not has_imagenet_head("a-backbone-from-elsewhere")
    assert is_clip("clip-vit-b32") and has_imagenet_head("effnet-lite0")
