"""Label-free model selection: the paper's generalisation score, chance-corrected, over a grid and over C;
and the final runs that train the best starts of several selections for longer."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from turtle_core.constants import TURTLE_OUTER_STEPS
from turtle_core.discovery.candidates import (  # noqa: F401 (re-exported: callers import them from here)
    TIE_TOLERANCE,
    Candidate,
    SelectionResult,
    choose,
    set_agreements,
    used_clusters,
)
from turtle_core.discovery.effort import (
    DEFAULT_EFFORT,
    EFFORTS,
    REFINED_CLUSTER_VALUES,
    cluster_values,
    screening_steps,
)
from turtle_core.discovery.features import DEFAULT_N_COMPONENTS, DEFAULT_PREPROCESSING, PreprocessingMethod
from turtle_core.discovery.runs import Criterion, RunSchedule, Scoring, SelectionRun
from turtle_core.discovery.score import (  # noqa: F401 (re-exported: callers import them from here)
    GeneralizationScore,
    generalization_details,
    generalization_score,
)
from turtle_core.discovery.turtle import check_spaces, cpu_threads, resolve_device
from turtle_core.progress import ProgressCallback, check_cancel

# The paper's grid (appendix B.3): inner lr × outer lr × {warm, cold} = 50 runs.
PAPER_LEARNING_RATES: tuple[float, ...] = (1e-2, 5e-3, 1e-3, 5e-4, 1e-4)
PAPER_GRID: tuple[dict[str, Any], ...] = tuple(
    {"inner_lr": inner, "outer_lr": outer, "warm_start": warm}
    for warm in (True, False)
    for inner in PAPER_LEARNING_RATES
    for outer in PAPER_LEARNING_RATES
)
# Default grid: the Turtle defaults (warm start, both learning rates 1e-3, k-means initialisation),
# restarted DEFAULT_RESTARTS times. On Animal-MNIST cold start and other learning rates did not help
# while restarts did (see docs/decisions.md); the paper's grid is available as grid="paper".
DEFAULT_GRID: tuple[dict[str, Any], ...] = ({"inner_lr": 1e-3, "outer_lr": 1e-3, "warm_start": True},)

# Restarts (seeds) per grid point; TURTLE's result varies a lot with the initialisation, and the
# generalisation score picks among restarts (measured on Animal-MNIST, see docs/decisions.md).
DEFAULT_RESTARTS = EFFORTS[DEFAULT_EFFORT].n_restarts
# k-means starts tried per grid point before the full runs. Each gets a short screening run
# (`effort.screen_steps`) and the score; the full runs start from the best-scoring ones (docs/decisions.md).
DEFAULT_SCREEN = EFFORTS[DEFAULT_EFFORT].n_screen


def _resolve_grid(grid: Sequence[dict[str, Any]] | str | None) -> list[dict[str, Any]]:
    if grid is None or grid == "default":
        return [dict(g) for g in DEFAULT_GRID]
    if grid == "paper":
        return [dict(g) for g in PAPER_GRID]
    if isinstance(grid, str):
        raise ValueError(f"grid must be a list of parameter dicts, 'default' or 'paper'; got {grid!r}")
    points = [dict(g) for g in grid]
    if not points:
        raise ValueError("grid is empty")
    return points


def _cluster_range(n_clusters: int | tuple[int, int], n_rows: int) -> list[int]:
    ks = cluster_values(n_clusters)
    if ks[0] < 2 or ks[-1] > n_rows:
        raise ValueError(
            f"numbers of clusters must lie between 2 and the number of images ({n_rows}); got {n_clusters}"
        )
    return ks


def select_model(
    spaces: Sequence[np.ndarray | torch.Tensor],
    n_clusters: int | tuple[int, int],
    *,
    grid: Sequence[dict[str, Any]] | Literal["default", "paper"] | None = None,
    n_restarts: int = DEFAULT_RESTARTS,
    n_screen: int = DEFAULT_SCREEN,
    screen_steps: int | None = None,
    refine: int = REFINED_CLUSTER_VALUES,
    criterion: Criterion = "kappa",
    n_folds: int = 10,
    tolerance: float = TIE_TOLERANCE,
    preprocessing: PreprocessingMethod = DEFAULT_PREPROCESSING,
    n_components: int | None = DEFAULT_N_COMPONENTS,
    turtle_params: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    random_state: int | None = 0,
) -> SelectionResult:
    """Fit TURTLE for every grid point and every C in `n_clusters` (an int or an inclusive (lo, hi)) and
    keep the run whose labeling linear probes generalise best, without labels.

    Every grid point runs `n_restarts` times (seeds `random_state`, +1, ...); with a range of C, the
    extra restarts run only for the `refine` best-scoring values of C. With k-means starts (the
    default `init`, alternately Euclidean and cosine), `n_screen` seeds are first screened: each runs
    `screen_steps` outer steps (default: `effort.screening_steps`, 300 and at most a fifth of the full
    runs' steps) and is scored, and the full runs take the best-screened seeds in order.
    `criterion="kappa"` (default) compares runs by chance-corrected probe agreement, which does not
    favour few clusters; `"accuracy"` is the paper's raw score. Scores within `tolerance` of the best
    are ties, won by the labeling with the most used (non-empty) clusters, then by the smaller C, then
    by the run the other runs of its C agree with most.
    `turtle_params` are passed to every `Turtle` (e.g. `outer_steps`, `gamma`, `precision`, `num_threads`).
    """
    if criterion not in ("kappa", "accuracy"):
        raise ValueError(f"criterion must be 'kappa' or 'accuracy', got {criterion!r}")
    arrays = check_spaces(spaces)
    ks = _cluster_range(n_clusters, arrays[0].shape[0])
    points = _resolve_grid(grid)
    base = _turtle_base(turtle_params, device, random_state)
    full_steps = int(base.get("outer_steps", TURTLE_OUTER_STEPS))
    schedule = RunSchedule(
        n_restarts=max(1, int(n_restarts)),
        n_screen=int(n_screen),
        screen_steps=screening_steps(full_steps) if screen_steps is None else int(screen_steps),
        full_steps=full_steps,
        refined=min(max(1, int(refine)), len(ks)),
    )
    scoring = Scoring(criterion, n_folds, random_state, tolerance)
    dev = resolve_device(base["device"])
    with cpu_threads(base.get("num_threads"), dev):
        check_cancel(cancel)
        run = SelectionRun(arrays, ks, points, base, schedule, scoring, progress, cancel)
        run.prepare(preprocessing, n_components, dev)
        orders: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for k in ks:
            for index in range(len(points)):
                orders[k, index] = run.screen(k, index)
                run.train(k, index, orders[k, index][0], run.first_start_name(index))
        # Restarts only for the most promising numbers of clusters.
        for k in run.most_promising(schedule.refined):
            for index in range(len(points)):
                for number, start in enumerate(orders[k, index][1:], 2):
                    run.train(k, index, start, f"start {number} of {len(orders[k, index])}")
        run.meter.report(message="Comparing the runs and choosing the best", force=True)
    return run.result()


def _turtle_base(
    turtle_params: dict[str, Any] | None, device: str | torch.device | None, random_state: int | None
) -> dict[str, Any]:
    """The parameters every `Turtle` of a selection shares (the selection sets the reserved ones)."""
    base = dict(turtle_params or {})
    for reserved in ("n_clusters", "progress", "cancel", "preprocessing", "n_components"):
        base.pop(reserved, None)
    base.setdefault("device", device)
    base.setdefault("random_state", random_state)
    return base


def final_starts(selections: Sequence[SelectionResult], count: int) -> list[tuple[int, dict[str, Any]]]:
    """Up to `count` distinct starts (C, run parameters) for final runs, taken in turns from each
    selection: its chosen run's start first, then its next best-screened starts at that C."""
    ranked = []
    for selection in selections:
        k = selection.best_n_clusters
        runs = [c for c in (*selection.candidates, *selection.screened) if c.n_clusters == k]
        ranked.append((k, [selection.best_params, *(c.params for c in sorted(runs, key=lambda c: -c.score))]))
    chosen: list[tuple[int, dict[str, Any]]] = []
    taken: set[tuple[int, int, str]] = set()
    while len(chosen) < count:
        before = len(chosen)
        for k, options in ranked:
            fresh = [o for o in options if SelectionRun.start_key(k, o) not in taken]
            if fresh and len(chosen) < count:
                taken.add(SelectionRun.start_key(k, fresh[0]))
                chosen.append((k, dict(fresh[0])))
        if len(chosen) == before:
            break
    return chosen


def train_final_runs(
    spaces: Sequence[np.ndarray | torch.Tensor],
    n_clusters: int | tuple[int, int],
    selections: Sequence[SelectionResult],
    count: int,
    *,
    outer_steps: int,
    batch_size: int,
    random_state: int | None = 0,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> SelectionResult:
    """Train `count` of the selections' best starts (`final_starts`) for `outer_steps` steps each and choose
    among them as `select_model` does (near-ties go to the run the others agree with most).
    `n_clusters` is the selections' request (it sets the preprocessing, as theirs)."""
    arrays = check_spaces(spaces)
    ks = _cluster_range(n_clusters, arrays[0].shape[0])
    starts = final_starts(selections, count)
    base = _turtle_base({"outer_steps": outer_steps, "batch_size": batch_size}, None, random_state)
    schedule = RunSchedule(len(starts), 0, 0, int(outer_steps), len(ks))
    dev = resolve_device(None)
    with cpu_threads(None, dev):
        check_cancel(cancel)
        run = SelectionRun(
            arrays, ks, [{}], base, schedule, Scoring("kappa", 10, random_state, TIE_TOLERANCE),
            progress, cancel, total_steps=len(starts) * int(outer_steps),
        )  # fmt: skip
        run.prepare(DEFAULT_PREPROCESSING, DEFAULT_N_COMPONENTS, dev)
        for number, (k, start) in enumerate(starts, 1):
            run.train(k, 0, start, f"final run {number} of {len(starts)}")
        run.meter.report(message="Comparing the final runs and choosing the best", force=True)
    return run.result()
