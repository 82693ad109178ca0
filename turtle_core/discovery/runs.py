"""One model selection's runs, step by step: prepare the features, screen k-means starts with short
TURTLE runs, train the best ones in full, and choose among them (`selection.select_model` drives it)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from turtle_core.discovery.candidates import Candidate, SelectionResult, choose, set_agreements, used_clusters
from turtle_core.discovery.effort import is_screened, selection_steps
from turtle_core.discovery.features import PreprocessingMethod, SpacePreprocessor, effective_components
from turtle_core.discovery.score import generalization_details
from turtle_core.discovery.turtle import Turtle
from turtle_core.progress import Progress, ProgressCallback, ProgressMeter, check_cancel, count_text

Criterion = Literal["kappa", "accuracy"]


def start_seeds(random_state: int | None, count: int) -> list[int]:
    """`random_state`, +1, ...; fresh random seeds when it is None."""
    if random_state is None:
        return [int(v) for v in np.random.default_rng().integers(0, 2**31 - 1, size=count)]
    return [int(random_state) + i for i in range(count)]


@dataclass(frozen=True)
class RunSchedule:
    """How many runs and steps one grid point of a selection trains (see `effort.selection_steps`)."""

    n_restarts: int
    n_screen: int
    screen_steps: int
    full_steps: int
    refined: int  # values of C that get the restarts


@dataclass(frozen=True)
class Scoring:
    """How runs are scored (`generalization_details`) and which scores tie (`choose`)."""

    criterion: Criterion
    n_folds: int
    random_state: int | None
    tolerance: float


class SelectionRun:
    """The state one `select_model` call shares between its steps: the prepared features, the k-means
    starts, the progress bar, and the runs so far (screened and full)."""

    def __init__(
        self,
        arrays: list[np.ndarray],
        ks: list[int],
        points: list[dict[str, Any]],
        base: dict[str, Any],
        schedule: RunSchedule,
        scoring: Scoring,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
        total_steps: int | None = None,
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
        total = sum(self._steps(point) for point in points) if total_steps is None else total_steps
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
        seeds = start_seeds(point.get("random_state", self.base["random_state"]), count)
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
        keep = {self.start_key(k, {**self.base, **point, **start}) for start in chosen}
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
        key = self.start_key(k, params)
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
        """The chosen run (`choose` after `set_agreements`) and every run's scores."""
        set_agreements(self.candidates)
        best = choose(self.candidates, self.scoring.tolerance)
        scores_by_k = {
            k: max(c.score for c in self.candidates if c.n_clusters == k)
            for k in self.ks
            if any(c.n_clusters == k for c in self.candidates)
        }
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
    def start_key(k: int, params: dict[str, Any]) -> tuple[int, int, str]:
        """What identifies a start: C, seed and k-means geometry."""
        return (k, int(params["random_state"]), str(params.get("init", "kmeans")))
