"""The schedule fits the folder: rows per step, steps and starts; the plan discover runs; the final runs' starts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from turtle_core.discovery.candidates import Candidate, SelectionResult
from turtle_core.discovery.effort import (
    BATCH_ROWS,
    EFFORTS,
    SMALL_FOLDER_ROWS,
    discovery_plan,
    folder_scale,
    legacy_plan,
)
from turtle_core.discovery.selection import final_starts


def test_rows_per_step_stop_at_the_batch_and_small_folders_get_fewer_steps_and_starts() -> None:
    quick, standard = EFFORTS["quick"], EFFORTS["standard"]
    assert quick.schedule(300).batch_size == 300 and quick.schedule(10_000).batch_size == BATCH_ROWS
    # the full schedule from 200 images up (only the batch, the whole folder, differs)
    assert quick.schedule(2000) == replace(quick.schedule(SMALL_FOLDER_ROWS), batch_size=2000)
    big, tiny = standard.schedule(2000), standard.schedule(12)
    assert (big.outer_steps, big.n_screen, big.screen_steps) == (3000, 16, 300)
    assert (
        folder_scale(12) == 0.1 and tiny.outer_steps == 300 and tiny.n_screen == 4 and tiny.screen_steps == 60
    )
    assert quick.schedule(12).n_screen == 2  # still one start more than the full runs: still screened
    assert quick.steps(10, 12) == 2 * 20 + 100 < quick.steps(10, 2000) / 10


def test_the_plan_runs_three_quick_selections_and_standard_trains_their_best_starts() -> None:
    quick, standard = EFFORTS["quick"], EFFORTS["standard"]
    fast = discovery_plan(quick, "auto", 5, 2000)
    assert [p.random_state for p in fast.selections] == [5, 6, 7] and fast.finals is None
    assert fast.stability == fast.kept_from == (0, 1, 2)
    assert [p.random_state for p in discovery_plan(quick, "turtle", 5, 2000).selections] == [5]
    full = discovery_plan(standard, "auto", 0, 2000)
    assert all(p.schedule == quick.schedule(2000) for p in full.selections)
    assert full.finals is not None and (full.finals.count, full.finals.steps) == (3, 3000)
    assert full.steps(10) == [2200, 2200, 2200, 9000]
    assert discovery_plan(standard, "kmeans", 0, 2000).finals is not None  # forced: same TURTLE work
    # What ran before the schedule fitted the folder: 29,400 steps at C = 10, on 10,000-row batches.
    old = legacy_plan(standard)
    assert sum(old.steps(10)) == 29_400 and old.kept_from == (0,) and old.stability == (1, 2, 3)
    assert all(p.schedule.batch_size == 10_000 for p in old.selections)
    assert sum(legacy_plan(quick).steps(10)) == 6_600


def _selection(best: tuple[int, str], screened: list[tuple[int, str, float]], k: int = 4) -> SelectionResult:
    labels = np.zeros(8, dtype=np.int64)
    runs = [Candidate(k, {"random_state": s, "init": i}, score, labels) for s, i, score in screened]
    chosen = Candidate(k, {"random_state": best[0], "init": best[1]}, 0.9, labels)
    return SelectionResult(None, dict(chosen.params), k, [chosen], {k: 0.9}, runs)  # type: ignore[arg-type]


def test_final_runs_take_each_selections_best_start_then_its_next_best_when_taken() -> None:
    first = _selection((2, "kmeans"), [(0, "kmeans", 0.5), (1, "kmeans_cosine", 0.8), (2, "kmeans", 0.9)])
    second = _selection((3, "kmeans"), [(3, "kmeans", 0.9), (4, "kmeans_cosine", 0.7)])
    same_best = _selection((2, "kmeans"), [(2, "kmeans", 0.9), (3, "kmeans_cosine", 0.6), (4, "kmeans", 0.4)])
    starts = final_starts([first, second, same_best], 3)
    assert [(k, p["random_state"], p["init"]) for k, p in starts] == [
        (4, 2, "kmeans"),
        (4, 3, "kmeans"),
        (4, 3, "kmeans_cosine"),  # the third selection's best was taken: its next best-screened start
    ]
    assert len(final_starts([first], 5)) == 3  # no more distinct starts than were screened
