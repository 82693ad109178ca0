"""Project.propose_refine: a from → to table of what the learner would move, applied whole or row by row, each
as one undoable edit; checked images never change; a proposal is tied to the curation state it was computed
on and is refused after any other change (here, another process, an undo, a split, a reload)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from state_helpers import image_names, synthetic_discovery

from turtle_core.embedding.cache import EmbeddingCache
from turtle_core.operations.project import Project
from turtle_core.paths import embedding_cache_dir
from turtle_core.state import edits
from turtle_core.state.errors import ProjectError, StaleEdit


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


def _move_six_of_class_2(opened: Project, truth: np.ndarray):
    """The curator's first fix: six images of class 2 (discovered inside cluster 1) to a new cluster "c2"."""
    snap = opened.snapshot()
    class2 = np.flatnonzero(truth == 2)
    opened.apply(
        edits.MoveToNewCluster(discovery_id=snap.discovery_id, images=snap.keys(class2[:6]), name="c2")
    )
    return snap, class2


def test_nothing_checked_yet_says_what_to_do(project) -> None:
    opened, _ = project
    with pytest.raises(ProjectError, match="confirm or move some images"):
        opened.propose_refine()


def _checked_story(opened: Project, truth: np.ndarray):
    """Six class-2 images moved to "c2", fifteen of each other class confirmed (fewer do not bound the harm
    on right labels tightly enough for any move), and one odd move (row 5, a class-0 image, into cluster 1)
    that refine must leave alone."""
    snap, class2 = _move_six_of_class_2(opened, truth)
    confirmed = np.r_[np.arange(6, 21), np.arange(60, 75)]
    opened.apply(edits.Confirm(discovery_id=snap.discovery_id, images=snap.keys(confirmed)))
    opened.apply(edits.Move(discovery_id=snap.discovery_id, images=snap.keys([5]), cluster_id=1))
    return snap, class2


def test_the_proposal_is_a_from_to_table_applied_as_one_undoable_edit(project) -> None:
    opened, truth = project
    _, class2 = _checked_story(opened, truth)
    before = opened.snapshot()
    checked = np.asarray(before.curation.checked)
    moved_by_hand = np.flatnonzero(before.curation.origins() != before.curation.assignments)
    assert np.array_equal(moved_by_hand, np.sort(np.r_[class2[:6], 5]))

    proposal = opened.propose_refine()
    assert proposal.n_checked == int(checked.sum()) == 37
    assert proposal.state_id == before.curation.state_id
    new_id = [cid for cid in before.curation.cluster_ids() if before.curation.name_of(cid) == "c2"][0]
    assert [move.pair for move in proposal.moves][0] == (1, new_id)
    assert proposal.moves[0].count() >= 40  # the rest of class 2 leaves cluster 1
    assert np.all(np.diff(proposal.moves[0].sureness) <= 0)  # most sure first
    assert proposal.n_changed == sum(move.count() for move in proposal.moves)
    assert opened.snapshot().curation.state_id == before.curation.state_id  # a proposal changes nothing

    done = opened.apply(proposal.edit())
    after = opened.snapshot()
    assign = np.asarray(after.curation.assignments)
    assert done.moved == proposal.n_changed and done.state_id == after.curation.state_id
    assert np.array_equal(assign[checked], np.asarray(before.curation.assignments)[checked])
    assert assign[5] == 1
    assert (assign[class2] == new_id).mean() >= 0.95
    assert (np.delete(assign[truth == 0], 5) == 0).mean() >= 0.95  # row 5 aside, class 0 stays
    # a propagation does not re-order the review queue: moved images keep their place too
    assert np.array_equal(after.confidence, before.confidence)
    assert "Propagated" in after.curation.history()[-1]

    opened.apply(edits.Undo(discovery_id=after.discovery_id))
    undone = opened.snapshot()
    assert np.array_equal(undone.curation.assignments, before.curation.assignments)
    assert np.allclose(undone.confidence, before.confidence)
    reopened = Project.open(opened.folder, reuse=False).snapshot()  # survives a restart, undo included
    assert np.array_equal(reopened.curation.assignments, before.curation.assignments)


def test_rows_apply_one_by_one_and_a_confidence_cut_off_narrows_them(project) -> None:
    opened, truth = project
    _checked_story(opened, truth)
    proposal = opened.propose_refine()
    first = proposal.moves[0]
    at_least = float(np.median(first.sureness))
    n_sure = first.count(at_least)
    assert 0 < n_sure < first.count()

    done = opened.apply(proposal.edit([first.pair], at_least))
    snap = opened.snapshot()
    assert done.moved == n_sure
    assert np.all(snap.curation.assignments[first.rows[:n_sure]] == first.target)
    assert np.all(snap.curation.assignments[first.rows[n_sure:]] == first.source)  # less sure: not moved
    assert "1 row(s)" in snap.curation.history()[-1]

    rest = proposal.after(done, [first.pair], at_least)
    assert rest.state_id == snap.curation.state_id
    assert rest.moves[0].count() == first.count() - n_sure
    with pytest.raises(StaleEdit):  # the original proposal was computed on the state before that edit
        opened.apply(proposal.edit([first.pair]))
    done_again = opened.apply(rest.edit([first.pair]))
    assert done_again.moved == first.count() - n_sure
    assert np.all(opened.snapshot().curation.assignments[first.rows] == first.target)
    opened.apply(edits.Undo(discovery_id=snap.discovery_id))  # one undo per applied part
    assert np.all(opened.snapshot().curation.assignments[first.rows[n_sure:]] == first.source)


def test_a_proposal_is_never_applied_after_undo_split_and_reload(project) -> None:
    """The browser story at engine level: Propagate → Apply → Undo → a split → a reload; the old proposal
    (and what is left of it) is refused, nothing changes, and a new proposal on the new state applies."""
    opened, truth = project
    _checked_story(opened, truth)
    proposal = opened.propose_refine()
    at_least = float(np.sort(proposal.moves[0].sureness)[proposal.moves[0].sureness.size // 2])
    done = opened.apply(proposal.edit(at_least=at_least))  # the surer half; the rest is left
    left = proposal.after(done, at_least=at_least)
    assert 0 < left.n_changed < proposal.n_changed
    snap = opened.snapshot()
    opened.apply(edits.Undo(discovery_id=snap.discovery_id))
    snap = opened.snapshot()
    members = snap.curation.members(0)
    opened.apply(
        edits.Split(
            discovery_id=snap.discovery_id,
            cluster_id=0,
            members=snap.keys(members),
            sub_labels=tuple(int(i) % 2 for i in range(members.size)),
        )
    )
    reloaded = Project.open(opened.folder, reuse=False)
    before = reloaded.snapshot()
    for stale in (proposal.edit(), proposal.edit([proposal.moves[0].pair]), left.edit()):
        with pytest.raises(StaleEdit, match="Compute the proposal again"):
            reloaded.apply(stale)
    after = reloaded.snapshot()
    assert after.curation.state_id == before.curation.state_id
    assert np.array_equal(after.curation.assignments, before.curation.assignments)
    assert len(after.curation.cluster_ids()) == 4  # the split's part is still there

    fresh = reloaded.propose_refine()
    assert reloaded.apply(fresh.edit()).moved == fresh.n_changed


def test_an_edit_from_another_process_makes_the_proposal_stale(project) -> None:
    opened, truth = project
    _checked_story(opened, truth)
    proposal = opened.propose_refine()
    other = Project.open(opened.folder, reuse=False)  # another process's view of the same project
    snap = other.snapshot()
    other.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name="zeros"))
    with pytest.raises(StaleEdit):
        opened.apply(proposal.edit())


def test_refine_with_only_confirmed_images_moves_nothing_and_says_why(project) -> None:
    opened, _ = project
    snap = opened.snapshot()
    opened.apply(edits.Confirm(discovery_id=snap.discovery_id, images=snap.keys([0, 1, 2, 60, 61, 62])))
    proposal = opened.propose_refine()
    assert proposal.moves == () and proposal.cutoff is None
    assert opened.refine() == 0
