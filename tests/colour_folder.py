"""A small real folder for tests of a curation over time: three colours, embedded with the offline backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from turtle_core.operations.project import Project
from turtle_core.state import edits
from turtle_core.state.discovery_result import DiscoveryResult

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def paint(path: Path, colour: tuple[int, int, int], i: int) -> None:
    image = Image.new("RGB", (48, 48), tuple(max(0, c - 6 * i) for c in colour))
    ImageDraw.Draw(image).ellipse((4 + i % 9, 4, 20 + i % 9, 20), fill=(250, 250, 250))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def curated_colours(tmp_path: Path) -> tuple[Project, Path]:
    """A folder of three colours, embedded for real (offline backbone), with a discovery that found them,
    three named clusters and a checked image."""
    root = tmp_path / "photos"
    for name, colour in COLOURS.items():
        for i in range(8):
            paint(root / name / f"{name}_{i}.png", colour, i)
    project = Project.open(root)
    images, spaces, identities, _ = project.embed()
    labels = np.asarray([list(COLOURS).index(record.path.split("/")[0]) for record in images], np.int32)
    probabilities = np.eye(3, dtype=np.float32)[labels]
    discovery = DiscoveryResult(
        images,
        labels,
        probabilities,
        np.full(len(images), 0.9, np.float32),
        3,
        0.9,
        {3: 0.9},
        {},
        list(project.backbones),
        identities,
        1.0,
    )
    project.state.install_discovery(discovery)
    snap = project.snapshot()
    for cid, name in enumerate(COLOURS):
        project.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=cid, name=name))
    project.apply(edits.Confirm(discovery_id=snap.discovery_id, images=snap.keys([0])))
    return project, root
