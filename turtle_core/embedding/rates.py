"""How fast each backbone embeds here, and how many images it still has to embed: what the discovery's
time estimate reads about the embedding step.

Rates come from measurements: the images/s a backbone reached on this machine in its last embedding
run (saved in `$TURTLE_HOME/rates.json` by `record_embedding_rate`), else the 2-core CPU rates measured
by `benchmarks/first_hour.py`, scaled on the CPU by this machine's speed where the probe measured it
(`discovery.speed_probe`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence

from turtle_core.atomic import atomic_write_json, read_json
from turtle_core.paths import turtle_home

RATES_FILE = "rates.json"
# Lite0 end to end on the idle 2-core CPU, channels-last with its batch norms folded: ~60 images/s
# (benchmarks/embed_throughput.py); in the app beside the page and the browser ~45. A lower figure is
# kept: an estimate that comes out short is worse than one that comes out long, and the first run
# replaces it with this machine's rate.
CPU_LITE0_IMAGES_PER_S = 40.0
# Forward cost relative to EfficientNet-Lite0 at each model's input size (published GFLOPs; the transformers,
# with no batch norm to fold, twice that against Lite0's folded rate): a first guess for backbones not yet run
# on this machine, replaced by the measured rate after their first run.
RELATIVE_COST: dict[str, float] = {
    "effnet-lite0": 1.0,
    "effnet-lite1": 1.5,
    "effnet-lite2": 2.2,
    "effnet-lite3": 3.5,
    "effnet-lite4": 6.5,
    "clip-vit-b32": 22.0,
    "dinov2-vit-s14": 28.0,
    "clip-vit-b16": 88.0,
    "dinov2-vit-b14": 110.0,
    "clip-vit-l14": 400.0,
    "dinov2-vit-l14": 390.0,
    "dinov2-vit-g14": 1460.0,
}
# This machine's speed (seconds over the reference machine's) from `discovery.speed_probe`, before any
# discovery measured it; a speed beyond 20x either way is an accident, not this machine.
PROBE_KEY = "probe@cpu"
MAX_SPEED = 20.0
GPU_SPEEDUP = 20.0  # first guess on a GPU before a measured rate exists (the CPU rate above is Lite0 folded)
MODEL_LOAD_S = 3.0  # loading a small backbone's weights; large ones take longer (counted via RELATIVE_COST)


def embedding_rate(name: str, device: str = "cpu") -> tuple[float, bool]:
    """Images/s of backbone `name` on `device` ("cpu" or "cuda") and whether it was measured here."""
    measured = _read_rates().get(f"{name}@{device}")
    if isinstance(measured, int | float) and measured > 0:
        return float(measured), True
    base = CPU_LITE0_IMAGES_PER_S / RELATIVE_COST.get(name, 100.0)
    if device == "cuda":
        return base * GPU_SPEEDUP, False
    return base / (read_rate(PROBE_KEY) or 1.0), False


def record_embedding_rate(name: str, device: str, images: int, seconds: float) -> None:
    """Remember the images/s a backbone reached (runs of fewer than 64 images say too little)."""
    if images < 64 or seconds <= 0:
        return
    record_rate(f"{name}@{device}", images / seconds)


def read_rate(key: str) -> float | None:
    """A measured rate remembered under `key` in `rates.json`, or None."""
    value = _read_rates().get(key)
    return float(value) if isinstance(value, int | float) and value > 0 else None


def record_rate(key: str, value: float) -> None:
    """Remember a measured rate under `key` in `rates.json` (never fails the work that measured it)."""
    rates = _read_rates()
    rates[key] = round(float(value), 4)
    with contextlib.suppress(OSError):  # an estimate is not worth failing a discovery for
        atomic_write_json(turtle_home() / RATES_FILE, rates)


def _read_rates() -> dict[str, object]:
    try:
        data = read_json(turtle_home() / RATES_FILE)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def uncached_counts(
    records_hashes: Sequence[str], backbones: Sequence[str], checkpoints: Mapping[str, str] | None = None
) -> dict[str, int]:
    """How many distinct images each backbone still has to embed, from the embedding cache, without
    loading any weights (a backbone never loaded here counts every image)."""
    from turtle_core.embedding.backbones import weights_fingerprint
    from turtle_core.embedding.cache import IDENTITY_MEMO, EmbeddingCache, IdentityMemo
    from turtle_core.paths import embedding_cache_dir

    unique = list(dict.fromkeys(records_hashes))
    base = embedding_cache_dir()
    memo = IdentityMemo(base / IDENTITY_MEMO)
    counts: dict[str, int] = {}
    for name in backbones:
        try:
            weights = weights_fingerprint(name, (checkpoints or {}).get(name))
        except Exception:  # an unavailable backbone: the Project page says why
            weights = None
        identity = memo.get(weights) if weights else None
        if identity is None or not unique or not os.path.isdir(base / identity):
            counts[name] = len(unique)
            continue
        cache = EmbeddingCache(base / identity)
        counts[name] = sum(1 for key in unique if key not in cache)
    return counts


def default_device_kind() -> str:
    """ "cuda" when discovery will run on a GPU by default, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
