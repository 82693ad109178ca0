"""Shared fixtures: every test gets its own engine home and never touches the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TURTLE_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Estimates at the reference machine's speed: the speed probe (about 3 s of CPU in the background of
# the first page run) is off but in the tests that check it (tests/test_speed_probe.py).
os.environ.setdefault("TURTLE_SPEED_PROBE", "0")


@pytest.fixture(autouse=True)
def turtle_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("turtle_home")
    monkeypatch.setenv("TURTLE_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def one_cpu_thread():
    """Tiny TURTLE problems: one torch thread avoids stalls on a shared CPU (see turtle.default_cpu_threads)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def make_image_tree(tmp_path: Path):
    """Build a class-per-folder tree of small distinct PNGs: `make_image_tree({"cats": 3, "dogs": 2})`."""
    from PIL import Image, ImageDraw

    def build(classes: dict[str, int], root: Path | None = None, size: int = 48) -> Path:
        root = root or tmp_path / "images"
        for class_index, (name, count) in enumerate(classes.items()):
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = Image.new(
                    "RGB", (size, size), (40 * class_index % 256, 90, 200 - 30 * class_index % 200)
                )
                draw = ImageDraw.Draw(image)
                left = (i * 5) % (size - 10)
                draw.rectangle((left, 2, left + 4 + i % 5, 20), fill=(255, (i * 37) % 256, 0))
                image.save(folder / f"{name}_{i:03d}.png")
        return root

    return build


@pytest.fixture
def curated(tmp_path: Path):
    """A curated folder of three colours (real embeddings; `tests/colour_folder.py`): (project, folder)."""
    from colour_folder import curated_colours

    return curated_colours(tmp_path)
