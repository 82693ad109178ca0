"""Synthetic discoveries for state tests (no embedding, no TURTLE), and the kill test's editor process."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

from turtle_core.ingest.scan import ImageRecord
from turtle_core.paths import project_dir
from turtle_core.state.discovery_result import DiscoveryResult
from turtle_core.state.project_state import ProjectState
from turtle_core.state.store import ProjectStore


def synthetic_discovery(
    paths: list[str], n_clusters: int = 3, seed: int = 0, params: dict | None = None
) -> DiscoveryResult:
    """A discovery of `paths` with labels 0..n_clusters-1 in turn and random confidences."""
    rng = np.random.default_rng(seed)
    n = len(paths)
    labels = (np.arange(n) + seed) % n_clusters
    probabilities = rng.dirichlet(np.ones(n_clusters), size=n).astype(np.float32)
    images = [ImageRecord(path, 10, 0, f"hash-{path}", 8, 8, None) for path in paths]
    return DiscoveryResult(
        images=images,
        labels=labels.astype(np.int32),
        probabilities=probabilities,
        confidence=probabilities.max(1),
        n_clusters=n_clusters,
        score=0.5,
        scores_by_k={n_clusters: 0.5},
        params=params or {},
        backbones=["effnet-lite0"],
        identities=["synthetic"],
        seconds=0.1,
    )


def image_names(n: int, prefix: str = "img") -> list[str]:
    return [f"{prefix}_{i:04d}.png" for i in range(n)]


def random_edit(snap, rng: random.Random):
    """One random edit a curator could make on `snap` (any kind, undo/redo included)."""
    from turtle_core.state import edits

    ids = snap.curation.cluster_ids()
    n = snap.curation.n_images
    kind = rng.choice(["rename", "move", "new", "exclude", "restore", "merge", "undo", "redo"])
    rows = rng.sample(range(n), rng.randint(1, 5))
    common = {"discovery_id": snap.discovery_id}
    if kind == "rename":
        return edits.Rename(cluster_id=rng.choice(ids), name=f"name {rng.random():.6f}", **common)
    if kind == "move":
        return edits.Move(images=snap.keys(rows), cluster_id=rng.choice(ids), **common)
    if kind == "new":
        return edits.MoveToNewCluster(images=snap.keys(rows), **common)
    if kind == "exclude":
        return edits.Exclude(images=snap.keys(rows), **common)
    if kind == "restore":
        return edits.Restore(images=snap.keys(rows), **common)
    if kind == "merge" and len(ids) > 3:
        return edits.Merge(cluster_ids=tuple(rng.sample(ids, 2)), **common)
    return edits.Undo(**common) if kind == "undo" else edits.Redo(**common)


def editor_main(workdir: str, folder: str, seed: int) -> None:
    """Apply edits forever (now and then a new discovery), printing after each durable change:
    `edit <discovery id> <curation version>` or `discovery <discovery id> <its curation's version>`."""
    from turtle_core.state.project_state import ProjectState
    from turtle_core.state.store import ProjectStore

    rng = random.Random(seed)
    state = ProjectState(ProjectStore(Path(workdir)), Path(folder))
    state.load()
    round_ = 0
    while True:
        round_ += 1
        if rng.random() < 0.05:
            discovery = synthetic_discovery(image_names(60), n_clusters=rng.randint(3, 6), seed=round_)
            state.install_discovery(discovery)
            print(f"discovery {discovery.discovery_id} {state.curation.version}", flush=True)
            continue
        snap = state.snapshot()
        try:
            state.apply(random_edit(snap, rng))
        except ValueError:
            continue  # e.g. a name already taken; nothing changed
        print(f"edit {snap.discovery_id} {state.curation.version}", flush=True)


if __name__ == "__main__":
    editor_main(sys.argv[1], sys.argv[2], int(sys.argv[3]))


def open_state(folder: Path) -> ProjectState:
    """The project state of `folder`, loaded from its workspace as the app opens it."""
    state = ProjectState(ProjectStore(project_dir(folder)), folder)
    state.load()
    return state
