"""Project.refine: the curator's checked images steer every unchecked one; one undoable edit; checked
images never change; the review queue follows the refined confidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from state_helpers import image_names, synthetic_discovery

from turtle_core.embedding.cache import EmbeddingCache
from turtle_core.operations.project import Project
from turtle_core.paths import embedding_cache_dir
from turtle_core.state import edits
from turtle_core.state.errors import ProjectError


@pytest.fixture
def project(tmp_path: Path, one_cpu_thread) -> tuple[Project, np.ndarray]:
    """A project whose 'discovery' put 3 well separated classes into 2 clusters (class 2 inside cluster 1)."""
    folder = tmp_path / "images"
    folder.mkdir()
    paths = image_names(150)
    truth = np.repeat(np.arange(3), 50)
    rng = np.random.default_rng(0)
    features = (rng.normal(size=(3, 16)) * 5)[truth] + rng.normal(size=(150, 16))
    discovery = synthetic_discovery(paths, n_clusters=2)
    discovery.labels[:] = np.minimum(truth, 1)
    EmbeddingCache(embedding_cache_dir() / "synthetic").add(
        [record.content_hash for record in discovery.images], features.astype(np.float32)
    )
    opened = Project.open(folder, reuse=False)
    opened.state.install_discovery(discovery)
    return opened, truth


def _move_three_of_class_2(opened: Project, truth: np.ndarray):
    """The curator's first fix: three images of class 2 (discovered inside cluster 1) to a new cluster "c2"."""
    snap = opened.snapshot()
    class2 = np.flatnonzero(truth == 2)
    opened.apply(
        edits.MoveToNewCluster(discovery_id=snap.discovery_id, images=snap.keys(class2[:3]), name="c2")
    )
    return snap, class2


def test_nothing_checked_yet_says_what_to_do(project) -> None:
    opened, _ = project
    with pytest.raises(ProjectError, match="confirm or move some images"):
        opened.propose_refine()


def test_fixes_propagate_in_one_undoable_edit(project) -> None:
    opened, truth = project
    snap, class2 = _move_three_of_class_2(opened, truth)
    opened.apply(edits.Confirm(discovery_id=snap.discovery_id, images=snap.keys([0, 1, 2, 3, 4, 60, 61, 62, 63, 64])))
    # The curator also made one odd decision: refine must leave it as it is.
    opened.apply(edits.Move(discovery_id=snap.discovery_id, images=snap.keys([5]), cluster_id=1))
    before = opened.snapshot()
    checked = np.asarray(before.curation.checked)

    proposal = opened.propose_refine()
    assert proposal.n_checked == int(checked.sum()) == 14
    assert proposal.n_changed >= 40  # the rest of class 2 leaves cluster 1
    assert opened.snapshot().curation.version == before.curation.version  # a proposal changes nothing

    moved = opened.apply(proposal.edit)
    after = opened.snapshot()
    assign = np.asarray(after.curation.assignments)
    new_id = [cid for cid in after.curation.cluster_ids() if after.curation.name_of(cid) == "c2"][0]
    assert moved == proposal.n_changed
    assert np.array_equal(assign[checked], np.asarray(before.curation.assignments)[checked])
    assert assign[5] == 1
    assert (assign[class2] == new_id).mean() >= 0.95
    assert (np.delete(assign[truth == 0], 5) == 0).mean() >= 0.95  # row 5 aside, class 0 stays
    confidence = after.confidence
    assert np.all(confidence[checked] == 1.0)
    assert not np.allclose(confidence, before.confidence)
    assert "Propagated" in after.curation.history()[-1]

    opened.apply(edits.Undo(discovery_id=after.discovery_id))
    undone = opened.snapshot()
    assert np.array_equal(undone.curation.assignments, before.curation.assignments)
    assert np.allclose(undone.confidence, before.confidence)

    reopened = Project.open(opened.folder, reuse=False).snapshot()  # survives a restart, undo included
    assert np.array_equal(reopened.curation.assignments, before.curation.assignments)


def test_refine_skips_images_checked_after_the_proposal(project) -> None:
    opened, truth = project
    snap, class2 = _move_three_of_class_2(opened, truth)
    proposal = opened.propose_refine()
    late = class2[10]
    opened.apply(
        edits.Confirm(discovery_id=snap.discovery_id, images=snap.keys([late]))
    )  # checked: stays in 1
    opened.apply(proposal.edit)
    assert opened.snapshot().curation.assignments[late] == 1
