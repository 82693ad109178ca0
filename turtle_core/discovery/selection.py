"""Label-free model selection: the paper's generalisation score, chance-corrected, over a grid and over C."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from turtle_core.constants import TURTLE_OUTER_STEPS
from turtle_core.discovery.effort import (
    DEFAULT_EFFORT,
    EFFORTS,
    REFINED_CLUSTER_VALUES,
    cluster_values,
    is_screened,
    screening_steps,
    selection_steps,
)
from turtle_core.discovery.features import (
    DEFAULT_N_COMPONENTS,
    DEFAULT_PREPROCESSING,
    PreprocessingMethod,
    SpacePreprocessor,
    effective_components,
)
from turtle_core.discovery.score import (  # noqa: F401 (re-exported: callers import them from here)
    GeneralizationScore,
    generalization_details,
    generalization_score,
)
from turtle_core.discovery.turtle import Turtle, check_spaces, cpu_threads, resolve_device
from turtle_core.progress import Progress, ProgressCallback, ProgressMeter, check_cancel, count_text

Criterion = Literal["kappa", "accuracy"]

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
# while restarts did (see benchmarks/README.md); the paper's grid is available as grid="paper".
DEFAULT_GRID: tuple[dict[str, Any], ...] = ({"inner_lr": 1e-3, "outer_lr": 1e-3, "warm_start": True},)

# Restarts (seeds) per grid point; TURTLE's result varies a lot with the initialisation, and the
# generalisation score picks among restarts (measured on Animal-MNIST, see benchmarks/README.md).
DEFAULT_RESTARTS = EFFORTS[DEFAULT_EFFORT].n_restarts
# k-means starts tried per grid point before the full runs. Each gets a short screening run
# (`effort.screen_steps`) and the score; the full runs start from the best-scoring ones.
DEFAULT_SCREEN = EFFORTS[DEFAULT_EFFORT].n_screen

# Scores closer than this to the best count as ties (about two standard errors of a 10k-row score).
TIE_TOLERANCE = 0.005


@dataclass
class Candidate:
    """One fitted TURTLE run of the selection and its label-free scores."""

    n_clusters: int
    params: dict[str, Any]
    score: float
    labels: np.ndarray = field(repr=False)
    accuracy: float = 0.0
    kappa: float = 0.0
    n_used: int = 0
    agreement: float = 0.0


@dataclass
class SelectionResult:
    """The chosen run (`best`), every candidate, and the best score per number of clusters."""

    best: Turtle
    best_params: dict[str, Any]
    best_n_clusters: int
    candidates: list[Candidate]
    scores_by_k: dict[int, float]
    screened: list[Candidate] = field(default_factory=list)


def used_clusters(labels: np.ndarray, n_clusters: int) -> int:
    """Clusters holding at least 5 % of an even share of the rows (at least 2); the rest are near-empty."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=n_clusters)
    threshold = max(2, int(np.ceil(0.05 * labels.size / n_clusters)))
    return int((counts >= threshold).sum())


def _choose(candidates: Sequence[Candidate], tolerance: float = TIE_TOLERANCE) -> Candidate:
    """Best score; among near-ties the labeling with the most used clusters, then the smallest C, then
    the run that agrees most with the other runs of its C, then the score.

    A perfectly generalisable merge of true groups ties with the true labeling, and a larger C
    whose extra clusters stay empty ties with it too: neither should win. Among full runs of one C
    the score saturates (the probe separates any TURTLE labeling of whitened features almost
    perfectly), while runs that reach the same labeling from different starts are the stable answer.
    """
    top = max(c.score for c in candidates)
    near = [c for c in candidates if c.score >= top - tolerance]
    lead = max(near, key=lambda c: (c.n_used, -c.n_clusters, c.score))
    peers = [c for c in near if c.n_clusters == lead.n_clusters and c.n_used == lead.n_used]
    return max(peers, key=lambda c: (c.agreement, c.score))


def _set_agreements(candidates: Sequence[Candidate]) -> None:
    """`agreement`: mean adjusted Rand index of each run with the other runs of the same C."""
    from turtle_core.discovery.metrics import ari

    for candidate in candidates:
        others = [c for c in candidates if c.n_clusters == candidate.n_clusters and c is not candidate]
        candidate.agreement = (
            float(np.mean([ari(candidate.labels, o.labels) for o in others])) if others else 0.0
        )


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


def _seeds(random_state: int | None, count: int) -> list[int]:
    """`random_state`, +1, ...; fresh random seeds when it is None."""
    if random_state is None:
        return [int(v) for v in np.random.default_rng().integers(0, 2**31 - 1, size=count)]
    return [int(random_state) + i for i in range(count)]


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
    base = dict(turtle_params or {})
    for reserved in ("n_clusters", "progress", "cancel", "preprocessing", "n_components"):
        base.pop(reserved, None)
    base.setdefault("device", device)
    base.setdefault("random_state", random_state)
    full_steps = int(base.get("outer_steps", TURTLE_OUTER_STEPS))
    schedule = _Schedule(
        n_restarts=max(1, int(n_restarts)),
        n_screen=int(n_screen),
        screen_steps=screening_steps(full_steps) if screen_steps is None else int(screen_steps),
        full_steps=full_steps,
        refined=min(max(1, int(refine)), len(ks)),
    )
    scoring = _Scoring(criterion, n_folds, random_state, tolerance)
    dev = resolve_device(base["device"])
    with cpu_threads(base.get("num_threads"), dev):
        check_cancel(cancel)
        run = _SelectionRun(arrays, ks, points, base, schedule, scoring, progress, cancel)
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


@dataclass(frozen=True)
class _Schedule:
    """How many runs and steps one grid point of a selection trains (see `effort.selection_steps`)."""

    n_restarts: int
    n_screen: int
    screen_steps: int
    full_steps: int
    refined: int  # values of C that get the restarts


@dataclass(frozen=True)
class _Scoring:
    """How runs are scored (`generalization_details`) and which scores tie (`_choose`)."""

    criterion: Criterion
    n_folds: int
    random_state: int | None
    tolerance: float


class _SelectionRun:
    """The state one `select_model` call shares between its steps: the prepared features, the k-means
    starts, the progress bar, and the runs so far (screened and full)."""

    def __init__(
        self,
        arrays: list[np.ndarray],
        ks: list[int],
        points: list[dict[str, Any]],
        base: dict[str, Any],
        schedule: _Schedule,
        scoring: _Scoring,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.arrays, self.ks, self.points, self.base = arrays, ks, points, base
        self.schedule, self.scoring = schedule, scoring
        self.progress, self.cancel = progress, cancel
        self.candidates: list[Candidate] = []
        self.screened: list[Candidate] = []
        self.models: dict[int, Turtle] = {}  # id(candidate) -> model, for the near-ties of the best only
        # k-means starts by (C, seed, init): a screened start's full run reuses its clustering.
        self.start_labels: dict[tuple[int, int, str], np.ndarray | None] = {}
        self.message = ""
        # Progress counts TURTLE outer steps of every run (screening and full), so that one bar with one
        # rate and ETA covers the whole selection and never steps back.
        total = sum(self._steps(point) for point in points)
        self.meter = ProgressMeter("select", total, progress, unit="steps")

    def _steps(self, point: dict[str, Any]) -> int:
        plan = self.schedule
        return selection_steps(
            len(self.ks),
            full_steps=plan.full_steps,
            n_restarts=plan.n_restarts,
            n_screen=plan.n_screen if self.screens(point) else 0,
            screen_steps=plan.screen_steps,
            refine=plan.refined,
        )

    def prepare(
        self, preprocessing: PreprocessingMethod, n_components: int | None, device: torch.device
    ) -> None:
        """Fit each space's preprocessing once for every run (at least 2 axes per cluster of the largest C)."""
        self.meter.report(message="Preparing the features", force=True)
        self.preprocessing, self.n_components = preprocessing, n_components
        self.preprocessors = [
            SpacePreprocessor(preprocessing, effective_components(n_components, len(X), max(self.ks))).fit(
                X, device
            )
            for X in self.arrays
        ]
        self.features = [p.transform(X) for p, X in zip(self.preprocessors, self.arrays, strict=True)]
        self.dims = [int(X.shape[1]) for X in self.arrays]

    # ------------------------------------------------------------------ screen
    def screens(self, point: dict[str, Any]) -> bool:
        plan = self.schedule
        init = str({**self.base, **point}.get("init", "kmeans"))
        return is_screened(plan.n_screen, plan.n_restarts, plan.screen_steps, plan.full_steps, init)

    def starts(self, point: dict[str, Any]) -> list[dict[str, Any]]:
        """Seeds, and with the default k-means init alternately Euclidean and cosine k-means starts."""
        count = max(self.schedule.n_restarts, self.schedule.n_screen)
        seeds = _seeds(point.get("random_state", self.base["random_state"]), count)
        if {**self.base, **point}.get("init", "kmeans") != "kmeans":
            return [{"random_state": seed} for seed in seeds]
        return [
            {"random_state": seed, "init": "kmeans" if j % 2 == 0 else "kmeans_cosine"}
            for j, seed in enumerate(seeds)
        ]

    def screen(self, k: int, index: int) -> list[dict[str, Any]]:
        """Screen the starts of C = `k` at grid point `index`: the full runs' starts, best-screened first."""
        point = self.points[index]
        options = self.starts(point)
        if not self.screens(point):
            return options[: self.schedule.n_restarts]
        steps = self.schedule.screen_steps
        scored = []
        for j, start in enumerate(options):
            self.message = (
                f"Trying start {j + 1} of {len(options)} {self._for_what(k, index)}: "
                f"a short run of {count_text(steps)} steps, then a score"
            )
            _, candidate = self.fit(k, point, start, steps)
            self.screened.append(candidate)
            scored.append((candidate.score, -j))
            self.meter.advance(steps, message=self.message)
        chosen = [options[-j] for _, j in sorted(scored, reverse=True)][: self.schedule.n_restarts]
        keep = {self._start_key(k, {**self.base, **point, **start}) for start in chosen}
        for key in [key for key in self.start_labels if key[0] == k and key not in keep]:
            del self.start_labels[key]
        return chosen

    def first_start_name(self, index: int) -> str:
        return "the best-scoring start" if self.screens(self.points[index]) else "start 1"

    # ------------------------------------------------------------------ train
    def fit(
        self, k: int, point: dict[str, Any], start: dict[str, Any], steps: int | None
    ) -> tuple[Turtle, Candidate]:
        """One TURTLE run from `start` (`steps` outer steps, None: the full run's) and its score."""
        check_cancel(self.cancel)
        params = {**self.base, **point, **start}
        if steps is not None:
            params["outer_steps"] = steps
        model = Turtle(
            n_clusters=k,
            preprocessing=self.preprocessing,
            n_components=self.n_components,
            progress=self._forward if self.progress is not None else None,
            cancel=self.cancel,
            **params,
        )
        key = self._start_key(k, params)
        if key not in self.start_labels:
            self.start_labels[key] = model.initial_labels(self.arrays)
        model._fit_prepared(self.features, self.preprocessors, self.dims, self.start_labels[key])
        return model, self._candidate(k, {**point, **start}, model.labels_)

    def _candidate(self, k: int, params: dict[str, Any], labels: np.ndarray) -> Candidate:
        scoring = self.scoring
        details = generalization_details(
            self.features,
            labels,
            n_folds=scoring.n_folds,
            random_state=scoring.random_state,
            device=self.base.get("device"),
        )
        score = details.kappa if scoring.criterion == "kappa" else details.accuracy
        used = used_clusters(labels, k)
        return Candidate(k, params, float(score), labels.copy(), details.accuracy, details.kappa, used)

    def train(self, k: int, index: int, start: dict[str, Any], which: str) -> None:
        """A full run from `start`; its model is kept while its score is among the near-ties of the best."""
        full = self.schedule.full_steps
        self.message = f"Training {which} {self._for_what(k, index)}: {count_text(full)} steps, then a score"
        model, candidate = self.fit(k, self.points[index], start, None)
        self.candidates.append(candidate)
        # The best score only grows, so a run that falls out of the near-tie set can never win again.
        self.models[id(candidate)] = model
        top = max(c.score for c in self.candidates)
        alive = {id(c) for c in self.candidates if c.score >= top - self.scoring.tolerance}
        self.models = {key: value for key, value in self.models.items() if key in alive}
        done_text = f"Trained {which} {self._for_what(k, index)}: score {candidate.score:.3f}"
        self.meter.advance(full, message=done_text)

    def most_promising(self, count: int) -> list[int]:
        """The `count` values of C whose best full run scored highest."""
        by_k = {k: max(c.score for c in self.candidates if c.n_clusters == k) for k in self.ks}
        return sorted(self.ks, key=lambda k: by_k[k], reverse=True)[:count]

    # ------------------------------------------------------------------ choose
    def result(self) -> SelectionResult:
        """The chosen run (`_choose` after `_set_agreements`) and every run's scores."""
        _set_agreements(self.candidates)
        best = _choose(self.candidates, self.scoring.tolerance)
        scores_by_k = {k: max(c.score for c in self.candidates if c.n_clusters == k) for k in self.ks}
        return SelectionResult(
            best=self.models[id(best)],
            best_params=dict(best.params),
            best_n_clusters=best.n_clusters,
            candidates=self.candidates,
            scores_by_k=scores_by_k,
            screened=self.screened,
        )

    # ------------------------------------------------------------------ helpers
    def _forward(self, report: Progress) -> None:
        # A run's own steps, shown on top of the runs already counted.
        self.meter.report(message=self.message, extra=report.done, force=report.done == 0)

    def _for_what(self, k: int, index: int) -> str:
        setting = f", setting {index + 1} of {len(self.points)}" if len(self.points) > 1 else ""
        return f"for {k} categories{setting}"

    @staticmethod
    def _start_key(k: int, params: dict[str, Any]) -> tuple[int, int, str]:
        return (k, int(params["random_state"]), str(params.get("init", "kmeans")))
