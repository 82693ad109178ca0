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
    assert part_names(curation, 0, 3) == ["cats 1", "cats 2", "cats 3"]
    curation.rename(1, "cats 2")
    assert part_names(curation, 0, 3) == ["cats 1", "cats 3", "cats 4"]
    ids = apply_parts(curation, 0, [0, 1, 0, 1, 2, 2])
    assert [curation.name_of(c) for c in ids] == ["cats 1", "cats 3", "cats 4"]
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
    assert [curation.name_of(cid) for cid in ids] == ["warm 1", "warm 2"]
    assert int(curation.assignments[outsider]) in ids, "the image moved in meanwhile is split too"
    assert discovered.current_metrics()["accuracy"] >= 0.8
    assert {r.stage for r in reports} == {"split"} and {r.unit for r in reports} == {"steps"}
    # The quick effort's schedule for a 17-image cluster: 2 screened starts of 20 steps, the best trained
    # for 100 (a tenth of 1,000: the schedule shrinks below 200 images).
    assert reports[-1].done == reports[-1].total == 2 * 20 + 100
    assert curation.history()[-1].startswith("Split 'warm' into 'warm 1', 'warm 2'")
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
