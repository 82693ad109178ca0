"""A curation carried onto another image list (a rescan) or onto a new discovery, earlier curations kept and
restored, and interrupted installs finished without losing work."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from state_helpers import image_names, open_state, synthetic_discovery

from turtle_core.constants import EXCLUDED
from turtle_core.ingest.scan import ImageRecord
from turtle_core.paths import project_dir
from turtle_core.state import edits
from turtle_core.state.curation import Curation
from turtle_core.state.errors import CurationHasEdits, StaleEdit
from turtle_core.state.project_state import ProjectState
from turtle_core.state.rebase import ImageListUpdate, map_rows, rebase_record


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "photos"
    path.mkdir()
    return path


def _records(paths: list[str], changed: frozenset[str] = frozenset()) -> list[ImageRecord]:
    return [
        ImageRecord(path, 10, 0, f"hash-{path}" + ("-v2" if path in changed else ""), 8, 8, None)
        for path in paths
    ]


def test_rows_are_matched_by_path_and_content() -> None:
    old = _records(["a", "b", "c", "d"])
    new = _records(["a", "c", "d", "e"], changed=frozenset({"d"}))
    rows = map_rows(old, new)
    assert rows.old_to_new.tolist() == [0, -1, 1, -1]  # b removed, d changed
    assert rows.added.tolist() == [2, 3]  # the changed d and the new e
    assert rows.removed == ("b",) and rows.changed == ("d",)
    assert rows.n_new_list == 4 and not rows.unchanged
    assert map_rows(old, old).unchanged


def test_rebase_keeps_every_value_and_renumbers_the_history() -> None:
    curation = Curation.from_discovery(np.array([0, 0, 1, 1, 2, 2]))
    curation.move([0], 1)  # row 0 (a) checked in cluster 1
    curation.exclude([3])  # row 3 (d) excluded
    curation.move([1, 2], 2)  # rows b and c
    old = _records(list("abcdef"))
    new = _records(["a", "c", "d", "f", "g"])  # b and e removed, g added
    rows = map_rows(old, new)

    rebased = Curation.from_record(
        rebase_record(curation.to_record(), rows, np.array([7]), {7: "New images"})
    )

    assert rebased.assignments.tolist() == [1, 2, EXCLUDED, 2, 7]
    assert rebased.checked.tolist() == [True, True, True, False, False]
    assert rebased.names[7] == "New images"
    assert rebased.version > curation.version
    # Undo walks back over the kept rows only: the move of b and c now moves c alone.
    assert rebased.undo() and rebased.assignments.tolist() == [1, 1, EXCLUDED, 2, 7]
    assert rebased.undo() and rebased.assignments.tolist() == [1, 1, 1, 2, 7]
    assert rebased.undo() and rebased.assignments.tolist() == [0, 1, 1, 2, 7]
    assert not rebased.checked.any()
    assert not rebased.undo()


def test_a_step_that_only_touched_removed_images_leaves_the_history() -> None:
    curation = Curation.from_discovery(np.array([0, 0, 1, 1]))
    curation.move([1], 1)
    curation.rename(0, "cats")
    rows = map_rows(_records(list("abcd")), _records(list("acd")))
    rebased = Curation.from_record(rebase_record(curation.to_record(), rows, np.zeros(0, np.int32)))
    assert rebased.history() == ["Renamed 'Cluster 0' to 'cats'"]


def test_a_new_discovery_carries_names_and_checked_labels_over(folder: Path) -> None:
    paths = image_names(60)
    state = open_state(folder)
    first = synthetic_discovery(paths, n_clusters=3)
    state.install_discovery(first)
    snap = state.snapshot()
    members = {cid: snap.curation.members(cid) for cid in range(3)}
    state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name="cats"))
    state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=2, name="owls"))
    moved = snap.keys(members[1][:2])
    state.apply(edits.Move(discovery_id=snap.discovery_id, images=moved, cluster_id=2))  # checked as owls
    state.apply(edits.Exclude(discovery_id=snap.discovery_id, images=snap.keys(members[0][:1])))

    # The same groups, numbered differently: 0 -> 1, 1 -> 2, 2 -> 0
    second = synthetic_discovery(paths, n_clusters=3)
    second.labels = (np.asarray(first.labels) + 1) % 3
    carried = state.install_discovery(second)

    curation = state.curation
    assert curation.name_of(1) == "cats" and curation.name_of(0) == "owls"
    rows = state.snapshot().rows(moved)
    assert curation.assignments[rows].tolist() == [0, 0] and curation.checked[rows].all()
    excluded = state.snapshot().rows(snap.keys(members[0][:1]))
    assert curation.assignments[excluded].tolist() == [EXCLUDED]
    assert carried is not None and carried.rows.size == 3 and not carried.dropped_names
    assert curation.history() == [carried.describe()]
    assert curation.undo() and curation.name_of(1) == "Cluster 1"  # one undoable step
    earlier = state.earlier_curations()
    assert len(earlier) == 1 and earlier[0].n_edits == 4 and set(earlier[0].names) == {"cats", "owls"}


def test_checked_images_of_a_cluster_that_no_longer_exists_keep_their_name(folder: Path) -> None:
    paths = image_names(30)
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(paths, n_clusters=3))
    snap = state.snapshot()
    birds = snap.keys(snap.curation.members(2)[:3])
    state.apply(edits.MoveToNewCluster(discovery_id=snap.discovery_id, images=birds, name="birds"))
    regrouped = synthetic_discovery(paths, n_clusters=2, seed=5)
    carried = state.install_discovery(regrouped)
    rows = state.snapshot().rows(birds)
    cluster = int(state.curation.assignments[rows[0]])
    assert state.curation.name_of(cluster) == "birds"
    assert set(state.curation.assignments[rows].tolist()) == {cluster}
    assert carried is not None and carried.created == {cluster: "birds"}


def test_replace_edits_false_refuses_even_when_the_discovery_is_damaged(folder: Path) -> None:
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(20)))
    snap = state.snapshot()
    state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name="cats"))
    for name in ("discovery.npz", "discovery.copy.npz"):  # both truncated: no discovery to restore
        discovery_file = project_dir(folder) / name
        discovery_file.write_bytes(discovery_file.read_bytes()[:200])

    reopened = open_state(folder)
    assert reopened.discovery is None
    assert reopened.has_edits()
    with pytest.raises(CurationHasEdits):
        reopened.install_discovery(synthetic_discovery(image_names(20), seed=1), replace_edits=False)
    assert (project_dir(folder) / "curation.npz").exists()

    # Replaced on purpose: the rename carries over (its images are known from the kept image list) and the
    # old curation is kept among the earlier ones.
    reopened.install_discovery(synthetic_discovery(image_names(20)))
    assert "cats" in reopened.curation.names.values()
    assert reopened.earlier_curations()[0].n_edits == 1


def test_an_earlier_curation_comes_back(folder: Path) -> None:
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(20)))
    snap = state.snapshot()
    state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=1, name="dogs"))
    state.install_discovery(synthetic_discovery(image_names(20), n_clusters=4, seed=3), carry_over=False)
    assert "dogs" not in state.curation.names.values()
    [earlier] = state.earlier_curations()
    assert earlier.restorable

    kept = state.restore(earlier.name)

    assert state.discovery.discovery_id == snap.discovery_id
    assert state.curation.name_of(1) == "dogs" and state.curation.history()[-1].startswith("Renamed")
    assert kept is None  # the replacing curation held no work of its own
    assert open_state(folder).curation.name_of(1) == "dogs"  # saved


def test_only_the_newest_earlier_curations_are_kept(folder: Path, monkeypatch) -> None:
    from turtle_core.state import archive

    monkeypatch.setattr(archive, "KEEP", 2)
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(10)))
    for round_ in range(4):
        snap = state.snapshot()
        state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name=f"name {round_}"))
        state.install_discovery(synthetic_discovery(image_names(10), seed=round_), carry_over=False)
    assert [entry.names for entry in state.earlier_curations()] == [("name 3",), ("name 2",)]


def _update(state: ProjectState, paths: list[str], labels: dict[str, int]) -> ImageListUpdate:
    """The next revision of the current discovery for the image list `paths`, labels for the added ones."""
    current = state.discovery
    by_path = {record.path: row for row, record in enumerate(current.images)}
    images = [current.images[by_path[p]] if p in by_path else _records([p])[0] for p in paths]
    kept = [by_path.get(p, -1) for p in paths]
    fill = np.asarray([labels.get(p, 0) for p in paths])
    source = np.asarray(kept)
    revision = replace(
        current,
        images=images,
        labels=np.where(source >= 0, np.asarray(current.labels)[source], np.maximum(fill, 0)).astype(
            np.int32
        ),
        probabilities=np.asarray(current.probabilities)[np.maximum(source, 0)],
        confidence=np.asarray(current.confidence)[np.maximum(source, 0)],
        revision=current.revision + 1,
        added=np.where(source >= 0, 0, current.revision + 1).astype(np.int32),
    )
    added = tuple(p for p in paths if p not in by_path)
    return ImageListUpdate(
        revision,
        current.rows_key,
        added,
        np.asarray([labels[p] for p in added], dtype=np.int64),
        np.full(len(added), 0.5, np.float32),
        3,
    )


def test_an_update_labels_new_images_in_one_undoable_step_and_drops_removed_ones(folder: Path) -> None:
    paths = image_names(12)
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(paths, n_clusters=3))
    snap = state.snapshot()
    state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name="cats"))
    stale_move = edits.Move(discovery_id=snap.discovery_id, images=snap.keys([0, 1]), cluster_id=2)
    fine_move = edits.Move(discovery_id=snap.discovery_id, images=snap.keys([2]), cluster_id=0)
    new_paths = [p for p in paths if p != paths[0]] + ["new_a.png", "new_b.png", "new_c.png"]

    moved = state.install_update(_update(state, new_paths, {"new_a.png": 0, "new_b.png": 2, "new_c.png": -1}))

    snap2 = state.snapshot()
    assert moved == 2 and snap2.curation.n_images == 14
    rows = snap2.rows(["new_a.png", "new_b.png", "new_c.png"])
    holding = int(snap2.curation.assignments[rows[2]])
    assert snap2.curation.assignments[rows].tolist() == [0, 2, holding]
    assert snap2.curation.name_of(holding) == "New images"
    assert snap2.new[rows].all() and not snap2.new[: len(paths) - 1].any()
    assert snap2.curation.history()[-1] == (
        "Labelled 2 new images with your 3 categories (1 image fits none: left in 'New images')"
    )
    assert snap2.curation.name_of(0) == "cats"  # names stay
    # An edit chosen before the rescan that names a removed image is refused whole; one that does not applies.
    with pytest.raises(StaleEdit, match="no longer in this project"):
        state.apply(stale_move)
    assert state.apply(fine_move) == 1
    # The labelling undoes as one step: every new image back in the added images' own cluster.
    state.apply(edits.Undo(discovery_id=snap.discovery_id))
    state.apply(edits.Undo(discovery_id=snap.discovery_id))
    assert set(state.curation.assignments[rows].tolist()) == {holding}
    reopened = open_state(folder)
    assert reopened.curation.n_images == 14 and reopened.discovery.revision == 1


def test_an_update_computed_on_an_old_image_list_is_refused(folder: Path) -> None:
    paths = image_names(6)
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(paths, n_clusters=2))
    first = _update(state, paths + ["x.png"], {"x.png": 1})
    second = _update(state, paths + ["y.png"], {"y.png": 0})
    state.install_update(first)
    with pytest.raises(StaleEdit):
        state.install_update(second)
    assert state.curation.n_images == 7


def test_a_rescan_cut_short_between_its_writes_is_finished_on_open(folder: Path) -> None:
    paths = image_names(10)
    state = open_state(folder)
    state.install_discovery(synthetic_discovery(paths, n_clusters=2))
    snap = state.snapshot()
    state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=1, name="dogs"))
    state.apply(edits.Move(discovery_id=snap.discovery_id, images=snap.keys([0]), cluster_id=1))
    update = _update(state, paths[1:] + ["late.png"], {"late.png": 1})
    state.store.image_lists.write(state.discovery.image_key(), state.discovery.images)
    state.store.write_discovery(update.discovery)  # ... and the process dies before the curation is saved

    reopened = open_state(folder)

    assert any("rescan was interrupted" in notice for notice in reopened.take_notices())
    assert reopened.curation.n_images == 10 and reopened.curation.name_of(1) == "dogs"
    assert reopened.curation.history() == ["Renamed 'Cluster 1' to 'dogs'"]  # the move named a removed image
    assert int(reopened.curation.assignments[reopened.snapshot().rows(["late.png"])[0]]) == 1


def test_a_discovery_never_replaces_edits_made_after_the_curator_agreed(folder: Path) -> None:
    from turtle_core.state.errors import CurationChanged

    state = open_state(folder)
    state.install_discovery(synthetic_discovery(image_names(20)))
    snap = state.snapshot()
    state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=0, name="cats"))
    agreed = state.work_token()  # the page was drawn, the curator ticked "replace"
    state.apply(edits.Rename(discovery_id=snap.discovery_id, cluster_id=1, name="dogs", origin="tab:other"))

    new = synthetic_discovery(image_names(20), seed=2)
    with pytest.raises(CurationChanged) as held:
        state.install_discovery(new, replaceable=agreed)
    assert held.value.discovery is new
    assert state.discovery.discovery_id == snap.discovery_id and state.curation.name_of(1) == "dogs"

    state.install_discovery(
        held.value.discovery, replaceable=state.work_token()
    )  # agreed again, as it is now
    assert state.discovery.discovery_id == new.discovery_id
    assert state.earlier_curations()[0].n_edits == 2
