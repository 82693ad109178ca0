"""Splitting a cluster in the engine: names "<old name> 1/2/…", a small budget with progress and cancel, and
edits made while the split runs are respected."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from test_project import _colour_tree

from turtle_core.operations.project import Project, ProjectError
from turtle_core.operations.split import SplitError, apply_parts, part_names, split_request
from turtle_core.progress import Cancelled, Progress
from turtle_core.state.curation import Curation

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def _curation() -> Curation:
    curation = Curation.from_discovery(np.array([0] * 6 + [1] * 4 + [2] * 4, dtype=np.int32))
    curation.rename(0, "cats")
    return curation


def test_parts_are_numbered_after_the_cluster_and_skip_taken_names() -> None:
    curation = _curation()
    assert part_names(curation, 0, 3) == ["cats · part 1", "cats · part 2", "cats · part 3"]
    curation.rename(1, "cats · part 2")
    assert part_names(curation, 0, 3) == ["cats · part 1", "cats · part 3", "cats · part 4"]
    ids = apply_parts(curation, 0, [0, 1, 0, 1, 2, 2])
    assert [curation.name_of(c) for c in ids] == ["cats · part 1", "cats · part 3", "cats · part 4"]
    assert "cats" not in curation.names.values()
    curation.undo()
    assert curation.name_of(0) == "cats" and curation.sizes()[0] == 6
    with pytest.raises(SplitError, match="no split in 'cats'"):
        apply_parts(curation, 0, [1] * 6)


def test_split_request() -> None:
    assert split_request(100, None) == (2, 4)
    assert split_request(5, None) == 2
    assert split_request(100, 3) == 3
    with pytest.raises(SplitError, match="too few"):
        split_request(3, None)
    with pytest.raises(SplitError, match="into 4 parts"):
        split_request(6, 4)
    assert issubclass(SplitError, ProjectError)


@pytest.fixture
def discovered(tmp_path: Path) -> Project:
    project = Project.open(_colour_tree(tmp_path / "images"))
    project.set_backbones(["effnet-lite0"])
    project.run_discovery(3, effort="quick")
    return project


def test_split_finds_merged_classes_with_progress_and_respects_edits_made_meanwhile(
    discovered: Project,
) -> None:
    curation = discovered.curation
    a, b, c = curation.cluster_ids()
    curation.rename(a, "warm")
    merged = curation.merge([a, b])
    outsider = int(curation.members(c)[0])
    reports: list[Progress] = []

    def progress(report: Progress) -> None:
        if not reports:  # the curator moves an image into the cluster while it is being split
            curation.move([outsider], merged)
        reports.append(report)

    ids = discovered.split_cluster(merged, 2, progress=progress)
    assert [curation.name_of(cid) for cid in ids] == ["warm · part 1", "warm · part 2"]
    assert int(curation.assignments[outsider]) in ids, "the image moved in meanwhile is split too"
    assert discovered.current_metrics()["accuracy"] >= 0.8
    assert {r.stage for r in reports} == {"split"} and {r.unit for r in reports} == {"steps"}
    # The quick effort's schedule for a 17-image cluster: 2 screened starts of 20 steps, the best trained
    # for 100 (a tenth of 1,000: the schedule shrinks below 200 images).
    assert reports[-1].done == reports[-1].total == 2 * 20 + 100
    assert curation.history()[-1].startswith("Split 'warm' into 'warm · part 1', 'warm · part 2'")
    reopened = Project.open(discovered.folder)
    assert sorted(reopened.curation.names.values()) == sorted(curation.names.values())


def test_split_cancels_and_changes_nothing(discovered: Project) -> None:
    curation = discovered.curation
    before = curation.assignments.copy()
    cancel = threading.Event()

    def stop(report: Progress) -> None:
        if report.done > 0:
            cancel.set()

    with pytest.raises(Cancelled):
        discovered.split_cluster(curation.cluster_ids()[0], None, progress=stop, cancel=cancel)
    np.testing.assert_array_equal(curation.assignments, before)
    assert not curation.can_undo


def test_split_of_a_cluster_merged_away_meanwhile_says_so(discovered: Project) -> None:
    curation = discovered.curation
    a, b, _ = curation.cluster_ids()

    def merge_it_away(report: Progress) -> None:
        if a in curation.cluster_ids():
            curation.merge([b, a])

    with pytest.raises(SplitError, match="no longer exists"):
        discovered.split_cluster(a, 2, progress=merge_it_away)


def test_a_cluster_larger_than_the_sample_is_split_as_discovery_samples(tmp_path: Path, monkeypatch) -> None:
    from turtle_core.discovery import sampled, selection
    from turtle_core.ingest.scan import ImageRecord
    from turtle_core.operations.split import split_cluster
    from turtle_core.state.discovery_result import DiscoveryResult
    from turtle_core.state.project_state import ProjectState
    from turtle_core.state.store import ProjectStore

    rng = np.random.default_rng(0)
    n_big, n_other = 2400, 200
    halves = np.repeat([0, 1], n_big // 2)  # two well-separated kinds merged into cluster 0
    centres = rng.standard_normal((3, 16)) * 6
    truth = np.concatenate([halves, np.full(n_other, 2)])
    features = (centres[truth] + rng.standard_normal((truth.size, 16))).astype(np.float32)
    order = rng.permutation(truth.size)  # the cluster's members are spread over the rows
    features, truth = features[order], truth[order]
    labels = (truth == 2).astype(np.int32)
    images = [ImageRecord(f"img_{i:05d}.png", 1, 0, f"h{i}", 8, 8, None) for i in range(truth.size)]
    discovery = DiscoveryResult(
        images, labels, np.eye(2, dtype=np.float32)[labels], np.full(truth.size, 0.5, np.float32), 2, 0.5,
        {2: 0.5}, {}, ["synthetic"], ["synthetic"], 0.0,
    )  # fmt: skip
    state = ProjectState(ProjectStore(tmp_path / "work"), tmp_path)
    state.install_discovery(discovery)

    fitted_rows: list[int] = []
    real_select = selection.select_model

    def recording(spaces, *args, **kwargs):
        fitted_rows.append(int(spaces[0].shape[0]))
        return real_select(spaces, *args, **kwargs)

    predicted_blocks: list[int] = []
    real_predict = sampled.predict_rows_chunked

    def chunked(model, spaces, rows, chunk=None):
        predicted_blocks.append(int(np.asarray(rows).size))
        return real_predict(model, spaces, rows, chunk=256)

    monkeypatch.setattr(selection, "select_model", recording)
    monkeypatch.setattr("turtle_core.operations.split.predict_rows_chunked", chunked)
    parts = split_cluster(state, state.snapshot(), [features], 0, 2, sample_rows=600)

    assert fitted_rows == [600]  # TURTLE saw the sample only, never a copy of all 2,400 members
    assert predicted_blocks == [n_big]  # and every member was then labelled by the fitted model
    curation = state.snapshot().curation
    assert all(abs(curation.sizes()[p] - n_big // 2) <= 24 for p in parts)
    members = np.flatnonzero(truth != 2)
    for part in parts:
        kinds = truth[members[np.isin(members, curation.members(part))]]
        assert np.bincount(kinds).max() / kinds.size >= 0.99


def test_split_parts_are_remembered_until_undone() -> None:
    curation = _curation()
    assert curation.split_parts() == []
    ids = apply_parts(curation, 0, [0, 1, 0, 1, 0, 1])
    assert curation.split_parts() == [frozenset(ids)]
    curation.merge([2, ids[1]])  # one of the two parts merged into another cluster
    assert curation.split_parts() == []  # a single part left: nothing to keep apart
    curation.undo()
    assert curation.split_parts() == [frozenset(ids)]
    curation.undo()
    assert curation.split_parts() == []
