from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from turtle_core.constants import EXCLUDED
from turtle_core.state import curation as curation_module
from turtle_core.state.curation import Curation, CurationError, CurationMismatch, image_list_key


def _state(c: Curation) -> tuple:
    return (c.assignments.copy().tolist(), c.checked.copy().tolist(), c.names, c.labels_as_names())


@pytest.fixture
def cur() -> Curation:
    # 10 images: cluster 0 = rows 0-3, cluster 1 = rows 4-6, cluster 2 = rows 7-9
    return Curation.from_discovery(np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2]), names={0: "cats"})


def test_from_discovery_queries(cur: Curation) -> None:
    assert cur.n_images == 10
    assert cur.cluster_ids() == [0, 1, 2]
    assert cur.sizes() == {0: 4, 1: 3, 2: 3}
    assert cur.names == {0: "cats", 1: "Cluster 1", 2: "Cluster 2"}
    assert cur.members(1).tolist() == [4, 5, 6]
    assert cur.labels_as_names()[:5] == ["cats"] * 4 + ["Cluster 1"]
    assert not cur.checked.any()
    assert cur.version == 0
    assert not cur.can_undo and not cur.can_redo
    assert cur.assignments.dtype == np.int32
    with pytest.raises(ValueError):
        cur.assignments[0] = 5  # read-only view: edits must go through the undoable methods


def test_rename_validation_and_undo(cur: Curation) -> None:
    assert cur.rename(1, "  dogs  ") == "dogs"
    assert cur.name_of(1) == "dogs"
    assert cur.history() == ["Renamed 'Cluster 1' to 'dogs'"]
    for bad in ("", "   ", "\t\n"):
        with pytest.raises(ValueError, match="empty"):
            cur.rename(1, bad)
    with pytest.raises(ValueError, match="unknown cluster 7"):
        cur.rename(7, "x")
    with pytest.raises(ValueError, match="already named 'cats'"):
        cur.rename(2, "cats")
    assert cur.undo()
    assert cur.name_of(1) == "Cluster 1"
    assert cur.redo()
    assert cur.name_of(1) == "dogs"
    assert cur.version == 3


def test_merge_into_first_keeps_id_and_history(cur: Curation) -> None:
    before = _state(cur)
    target = cur.merge([0, 2])
    assert target == 0
    assert cur.cluster_ids() == [0, 1]
    assert cur.members(0).tolist() == [0, 1, 2, 3, 7, 8, 9]
    assert cur.history() == ["Merged 'cats', 'Cluster 2' into 'cats'"]
    assert not cur.checked.any()
    assert cur.undo()
    assert _state(cur) == before
    assert cur.merge([2, 1], name="pets") == 2
    assert cur.names == {0: "cats", 2: "pets"}
    with pytest.raises(ValueError, match="at least two"):
        cur.merge([0, 0])
    with pytest.raises(ValueError, match="unknown cluster 1"):
        cur.merge([0, 1])  # cluster 1 no longer exists


def test_move_and_new_cluster(cur: Curation) -> None:
    assert cur.move([0, 1, 4], 2) == 3  # row 4 moves from cluster 1, rows 0-1 from cluster 0
    assert cur.members(2).tolist() == [0, 1, 4, 7, 8, 9]
    assert cur.checked.tolist() == [True, True, False, False, True] + [False] * 5
    assert cur.move([0, 1], 2) == 0  # nothing changes: no new undo step
    assert len(cur.history()) == 1
    new_id = cur.move_to_new_cluster([2, 3], name="kittens")
    assert new_id == 3
    assert cur.name_of(3) == "kittens"
    assert cur.cluster_ids() == [1, 2, 3]  # cluster 0 is now empty
    assert cur.history()[-1] == "Moved 2 images to new cluster 'kittens'"
    # The id of an emptied cluster is not reused.
    assert cur.move_to_new_cluster([5]) == 4
    with pytest.raises(ValueError, match="no images selected"):
        cur.move([], 1)
    with pytest.raises(ValueError, match="out of range"):
        cur.move([10], 1)
    with pytest.raises(ValueError, match="unknown cluster"):
        cur.move([1], 99)
    with pytest.raises(ValueError, match="already named"):
        cur.move_to_new_cluster([6], name="kittens")


def test_exclude_restore_goes_back_to_cluster_at_exclusion(cur: Curation) -> None:
    cur.move([4], 2)  # row 4 now in cluster 2
    assert cur.exclude([4, 0]) == 2
    assert cur.labels_as_names()[0] is None and cur.labels_as_names()[4] is None
    assert cur.excluded().tolist() == [0, 4]
    assert cur.exclude([0]) == 0
    assert cur.restore([4, 0, 9]) == 2  # row 9 is not excluded: ignored
    assert cur.assignments[[0, 4]].tolist() == [0, 2]
    assert cur.checked[[0, 4]].all()


def test_restore_after_merge_follows_the_merge(cur: Curation) -> None:
    cur.exclude([7])  # from cluster 2
    cur.merge([1, 2])  # cluster 2 becomes part of cluster 1
    assert cur.restore([7]) == 1
    assert cur.assignments[7] == 1
    assert cur.cluster_ids() == [0, 1]
    # Undo all the way back, redo all the way forward: identical states.
    states = [_state(cur)]
    while cur.undo():
        states.append(_state(cur))
    assert states[-1] == _state(
        Curation.from_discovery(np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2]), {0: "cats"})
    )
    for expected in reversed(states[:-1]):
        assert cur.redo()
        assert _state(cur) == expected


def test_split(cur: Curation) -> None:
    ids = cur.split(0, np.array([5, 9, 5, 9]), names=["tabby", "black"])
    assert ids == [0, 3]
    assert cur.members(0).tolist() == [0, 2]
    assert cur.members(3).tolist() == [1, 3]
    assert cur.names[0] == "tabby" and cur.names[3] == "black"
    assert cur.history()[-1] == "Split 'cats' into 'tabby', 'black'"
    ids = cur.split(1, [0, 1, 2])
    assert ids == [1, 4, 5]
    assert cur.name_of(4) == "Cluster 4"
    with pytest.raises(ValueError, match="one sub-label per member"):
        cur.split(2, [0, 1])
    with pytest.raises(ValueError, match="at least two"):
        cur.split(2, [1, 1, 1])
    with pytest.raises(ValueError, match="needs 2 names"):
        cur.split(2, [0, 1, 1], names=["a"])
    cur.undo()
    cur.undo()
    assert cur.sizes() == {0: 4, 1: 3, 2: 3}
    assert cur.name_of(0) == "cats"


def test_new_edit_after_undo_clears_redo(cur: Curation) -> None:
    cur.rename(1, "dogs")
    cur.rename(2, "birds")
    cur.undo()
    assert cur.can_redo
    assert cur.redo_history() == ["Renamed 'Cluster 2' to 'birds'"]
    cur.exclude([0])
    assert not cur.can_redo
    assert not cur.redo()
    assert cur.history() == ["Renamed 'Cluster 1' to 'dogs'", "Excluded 1 image"]


def test_random_edit_sequence_undoes_exactly() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, 500)
    cur = Curation.from_discovery(labels)
    states = [_state(cur)]
    for step in range(60):
        ids = cur.cluster_ids()
        kind = step % 6
        if kind == 0:
            cur.move(rng.choice(500, 20, replace=False), int(rng.choice(ids)))
        elif kind == 1:
            cur.exclude(rng.choice(500, 10, replace=False))
        elif kind == 2:
            cur.restore(np.arange(500))
        elif kind == 3 and len(ids) > 2:
            cur.merge([int(i) for i in rng.choice(ids, 2, replace=False)])
        elif kind == 4:
            big = max(ids, key=lambda c: cur.sizes()[c])
            cur.split(big, rng.integers(0, 2, cur.sizes()[big]))
        else:
            cur.move_to_new_cluster(rng.choice(500, 5, replace=False))
        if states[-1] != _state(cur):
            states.append(_state(cur))
    assert len(cur.history()) == len(states) - 1
    for expected in reversed(states[:-1]):
        assert cur.undo()
        assert _state(cur) == expected
    assert not cur.undo()


def test_save_load_round_trip_with_stacks(tmp_path: Path, cur: Curation) -> None:
    cur.rename(0, "Chats 🐱")
    cur.merge([1, 2], name="chiens")
    cur.exclude([3])
    cur.undo()
    path = tmp_path / "curation.npz"
    key = image_list_key([f"img_{i}.png" for i in range(10)])
    cur.save(path, image_key=key)
    loaded = Curation.load(path, expected_image_key=key, expected_n_images=10)
    assert _state(loaded) == _state(cur)
    assert loaded.version == cur.version
    assert loaded.history() == cur.history()
    assert loaded.redo_history() == ["Excluded 1 image"]
    assert loaded.redo() and loaded.assignments[3] == EXCLUDED
    assert loaded.undo() and loaded.undo()
    assert loaded.names == {0: "Chats 🐱", 1: "Cluster 1", 2: "Cluster 2"}
    assert [p.name for p in tmp_path.iterdir()] == ["curation.npz"]  # no temp files left


def test_load_refuses_other_image_list(tmp_path: Path, cur: Curation) -> None:
    path = tmp_path / "c.npz"
    cur.save(path, image_key=image_list_key(["a.png", "b.png"]))
    with pytest.raises(CurationMismatch, match="different list of images"):
        Curation.load(path, expected_image_key=image_list_key(["b.png", "a.png"]))
    with pytest.raises(CurationMismatch, match="for 10 images"):
        Curation.load(path, expected_n_images=11)
    assert image_list_key(["a.png"]) != image_list_key(["a.pn", "g"])


def test_corrupt_and_crashed_writes_keep_last_good_state(tmp_path: Path, cur: Curation, monkeypatch) -> None:
    path = tmp_path / "c.npz"
    cur.rename(1, "dogs")
    cur.save(path)
    good = path.read_bytes()
    # A crash mid-write leaves a garbage temp file beside the real one: it is never read.
    (tmp_path / ".c.npz.abc123.tmp").write_bytes(good[: len(good) // 2])
    # A crash before the rename: the old file stays as it was.
    cur.exclude([0])

    def crash(*args, **kwargs):
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        cur.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert Curation.load(path).name_of(1) == "dogs"
    assert Curation.load(path).excluded().size == 0
    for garbage in (good[: len(good) // 2], b"", b"not a zip at all", good[:-20]):
        path.write_bytes(garbage)
        with pytest.raises(CurationError, match="corrupt"):
            Curation.load(path)


def test_bad_inputs_have_clear_messages() -> None:
    with pytest.raises(ValueError, match="integers"):
        Curation.from_discovery(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="one-dimensional"):
        Curation.from_discovery(np.zeros((2, 2), int))
    cur = Curation.from_discovery(np.array([0, 1]))
    with pytest.raises(ValueError, match="boolean mask"):
        cur.exclude(np.array([True, False]))
    with pytest.raises(ValueError, match="must be text"):
        cur.rename(0, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("n_images", [10_000, 50_000])
def test_save_after_each_edit_is_fast_and_history_small(tmp_path: Path, n_images: int) -> None:
    rng = np.random.default_rng(1)
    cur = Curation.from_discovery(rng.integers(0, 20, n_images))
    path = tmp_path / "c.npz"
    times = []
    for step in range(200):
        if step % 4 == 0:
            cur.exclude(rng.choice(n_images, 20, replace=False))
        elif step % 4 == 1:
            cur.move(rng.choice(n_images, 50, replace=False), int(rng.choice(cur.cluster_ids())))
        elif step % 4 == 2:
            cur.rename(int(rng.choice(cur.cluster_ids())), f"name {step}")
        else:
            cur.move_to_new_cluster(rng.choice(n_images, 10, replace=False))
        start = time.perf_counter()
        cur.save(path)
        times.append(time.perf_counter() - start)
    cur.merge(cur.cluster_ids()[:5])  # one big cluster-level edit
    start = time.perf_counter()
    cur.save(path)
    times.append(time.perf_counter() - start)
    median, worst = float(np.median(times)), max(times)
    size = path.stat().st_size
    print(
        f"\ncuration save, {n_images} images, 201 edits: median {median * 1000:.1f} ms, "
        f"max {worst * 1000:.1f} ms, file {size / 1024:.0f} KiB, history {cur.history_nbytes() / 1024:.0f} KiB"
    )
    # Loose bound (shared 2-core machine); measured numbers are printed above.
    assert median < 0.1
    # Diffs, not snapshots: 201 snapshots of 50k images would be ~4 MB per array.
    assert cur.history_nbytes() < 30 * n_images + 200_000
    loaded = Curation.load(path)
    assert _state(loaded) == _state(cur)


def test_history_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(curation_module, "MAX_HISTORY", 5)
    cur = Curation.from_discovery(np.array([0, 1]))
    for i in range(8):
        cur.rename(0, f"n{i}")
    assert len(cur.history()) == 5
    assert cur.history()[0] == "Renamed 'n2' to 'n3'"


def test_history_is_bounded_in_bytes(monkeypatch) -> None:
    """A propagation's step holds a value per image; the oldest steps go once the history outgrows its bytes."""
    n = 10_000
    monkeypatch.setattr(curation_module, "MAX_HISTORY_BYTES", 700_000)
    cur = Curation.from_discovery(np.arange(n) % 4)
    rng = np.random.default_rng(0)
    for round_ in range(4):  # each relabel changes every image's confidence: ~300 kB a step
        cur.relabel(np.arange(n), np.arange(n) % 4, rng.uniform(size=n), f"propagation {round_}")
    assert cur.history_nbytes() <= 700_000
    assert cur.history() == ["propagation 2", "propagation 3"]
    monkeypatch.setattr(curation_module, "MAX_HISTORY_BYTES", 1)
    cur.relabel(np.arange(n), np.arange(n) % 4, rng.uniform(size=n), "bigger than the bound")
    assert cur.history() == ["bigger than the bound"]  # the newest step is always kept
    assert cur.undo()


def test_merge_groups_is_one_undoable_edit(cur: Curation) -> None:
    cur.move_to_new_cluster([9], "odd one")  # cluster 3
    cur.exclude([8])  # remembers cluster 2
    before = _state(cur)
    kept = cur.merge_groups([[1, 2], [0, 3], [1]])
    assert kept == [1, 0]
    assert cur.cluster_ids() == [0, 1]
    assert cur.sizes() == {0: 5, 1: 4}
    assert cur.names == {0: "cats", 1: "Cluster 1"}
    cur.restore([8])  # the excluded image comes back into its group's merged cluster
    assert cur.assignments[8] == 1
    cur.undo()
    cur.undo()
    assert _state(cur) == before
    cur.redo()
    assert cur.sizes() == {0: 5, 1: 4}
    assert cur.assignments[8] == EXCLUDED


def test_merge_groups_validation(cur: Curation) -> None:
    with pytest.raises(ValueError, match="at least two"):
        cur.merge_groups([[0], [1]])
    with pytest.raises(ValueError, match="only one group"):
        cur.merge_groups([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="unknown cluster"):
        cur.merge_groups([[0, 9]])
    assert not cur.can_undo


def test_a_file_from_before_checked_was_named_touched_still_loads(cur: Curation) -> None:
    """Format 2 files call the checked flags `touched` (arrays and history columns): read as checked."""
    import io
    import json

    cur.move([0, 7], 1)
    cur.confirm([6])
    with np.load(io.BytesIO(cur.to_bytes("key", "d1"))) as loaded:
        arrays = {name.replace("checked", "touched"): loaded[name] for name in loaded.files}
    meta = json.loads(arrays["meta"].tobytes().decode("ascii"))
    meta["format"] = 2
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("ascii"), np.uint8)
    assert "touched" in arrays and "undo_old_touched" in arrays
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)

    old = Curation.from_bytes(buffer.getvalue(), expected_image_key="key", expected_discovery_id="d1")

    assert old.checked.tolist() == cur.checked.tolist()
    assert old.checked[[0, 7, 6]].all()
    assert old.undo() and old.undo() and not old.checked.any()


def test_state_id_names_one_state_across_edits_undo_saves_and_restarts(cur: Curation) -> None:
    """A proposal is tied to `state_id`: every edit, undo and redo gives a new one, a save and load keeps it,
    and a curation started afresh (a new discovery, a damaged file replaced) never repeats an earlier one."""
    import io
    import json

    seen = [cur.state_id]
    cur.move([0], 1)
    seen.append(cur.state_id)
    cur.undo()
    seen.append(cur.state_id)
    cur.redo()
    seen.append(cur.state_id)
    cur.confirm([5])
    seen.append(cur.state_id)
    assert len(set(seen)) == len(seen)
    assert cur.copy().state_id == cur.state_id
    loaded = Curation.from_bytes(cur.to_bytes("key", "d1"))
    assert loaded.state_id == cur.state_id
    fresh = Curation.from_discovery(np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2]), names={0: "cats"})
    for _ in range(cur.version):
        fresh.confirm([fresh.version % 10])
    assert fresh.version == cur.version and fresh.state_id != cur.state_id

    with np.load(io.BytesIO(cur.to_bytes("key", "d1"))) as saved:  # a file from before the lineage
        arrays = {name: saved[name] for name in saved.files}
    meta = json.loads(arrays["meta"].tobytes().decode("ascii"))
    del meta["lineage"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("ascii"), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    first, second = (Curation.from_bytes(buffer.getvalue()) for _ in range(2))
    assert first.state_id == second.state_id != cur.state_id  # the same in every process that reads it


def test_origins_tell_moved_images_from_confirmed_ones(cur: Curation) -> None:
    cur.move([0, 1], 1)  # two images of 'cats' (cluster 0) were wrong
    cur.confirm([2, 4])  # these were right
    cur.move_to_new_cluster([7])  # from cluster 2 to a new cluster 3
    cur.exclude([8])
    cur.merge([1, 2])  # a cluster-level edit: nothing about single images
    origin = cur.origins()
    moved = np.flatnonzero(cur.checked & (origin != cur.assignments))
    assert moved.tolist() == [0, 1, 7]
    assert origin[[0, 1, 7]].tolist() == [0, 0, 2]
    assert np.array_equal(origin[~cur.checked], cur.assignments[~cur.checked])
    cur.undo()
    cur.undo()
    cur.undo()  # the new cluster's move undone: row 7 unchecked again
    assert np.flatnonzero(cur.checked & (cur.origins() != cur.assignments)).tolist() == [0, 1]
