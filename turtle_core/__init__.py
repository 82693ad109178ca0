"""turtle_core: image folder → foundation-model embeddings → TURTLE categories → curated labels.

The public names load lazily so that `import turtle_core` stays cheap (no torch until needed).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Turtle": "turtle",
    "select_model": "selection",
    "generalization_score": "selection",
    "Project": "project",
    "ProjectError": "project",
    "DiscoveryResult": "project",
    "scan_folder": "scan",
    "load_image": "scan",
    "BACKBONES": "backbones",
    "PRESETS": "backbones",
    "check_availability": "backbones",
    "load_backbone": "backbones",
    "embed_images": "embed",
    "EmbeddingCache": "cache",
    "Curation": "curation",
    "export_dataset": "export",
    "evaluate": "metrics",
    "Progress": "progress",
    "Cancelled": "progress",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'turtle_core' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
