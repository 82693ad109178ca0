"""turtle_core: image folder → foundation-model embeddings → TURTLE categories → curated labels.

The public names load lazily so that `import turtle_core` stays cheap (no torch until needed).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Turtle": "discovery.turtle",
    "select_model": "discovery.selection",
    "generalization_score": "discovery.selection",
    "Project": "operations.project",
    "ProjectError": "operations.project",
    "DiscoveryResult": "operations.project",
    "scan_folder": "ingest.scan",
    "load_image": "ingest.scan",
    "BACKBONES": "embedding.backbones",
    "PRESETS": "embedding.backbones",
    "check_availability": "embedding.backbones",
    "load_backbone": "embedding.backbones",
    "embed_images": "embedding.embed",
    "EmbeddingCache": "embedding.cache",
    "Curation": "state.curation",
    "export_dataset": "export.dataset",
    "evaluate": "discovery.metrics",
    "Progress": "progress",
    "Cancelled": "progress",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'turtle_core' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
