"""Feature extractors: which ones exist (`registry`), whether their weights are available (`availability`),
and loading them (`loading`). This module is the one place callers import them from."""

from __future__ import annotations

from turtle_core.embedding.availability import (
    Availability,
    BackboneUnavailable,
    check_availability,
    network_allowed,
    wheel_file,
)
from turtle_core.embedding.loading import LoadedBackbone, load_backbone, make_preprocess, weights_fingerprint
from turtle_core.embedding.registry import BACKBONES, PRESETS, BackboneSpec, Library, Status

__all__ = [
    "BACKBONES",
    "PRESETS",
    "Availability",
    "BackboneSpec",
    "BackboneUnavailable",
    "Library",
    "LoadedBackbone",
    "Status",
    "wheel_file",
    "check_availability",
    "load_backbone",
    "make_preprocess",
    "network_allowed",
    "weights_fingerprint",
]
