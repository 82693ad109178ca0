"""The default discovery: TURTLE's label-free model selection, then the stability choice against k-means.

One function, so that the app, the CLI and the curator-effort suite run exactly the same thing.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from turtle_core.discovery.clock import DiscoveryClock
from turtle_core.discovery.effort import Effort, choice_before_finals, discovery_plan
from turtle_core.discovery.runtime import check_spaces
from turtle_core.discovery.selection import SelectionResult, select_model, train_final_runs
from turtle_core.discovery.stability import PartitionChoice, choose_partition
from turtle_core.progress import ProgressCallback


@dataclass
class Discovery:
    """The kept partition and how it was reached."""

    selection: SelectionResult = field(repr=False)
    choice: PartitionChoice = field(repr=False)
    partition: str = "auto"  # what was asked: the stability choice, or a forced method
    # The effort's final runs were not trained: the stability choice, made first, kept k-means' partition.
    final_runs_skipped: bool = False

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.choice.labels, dtype=np.int64)

    @property
    def probabilities(self) -> np.ndarray:
        return np.asarray(self.choice.probabilities, dtype=np.float32)

    def partition_model(self) -> Any:
        """What labels new rows as the kept partition does: TURTLE's chosen model or k-means' centroids
        (both with `predict_proba(spaces)` and `n_clusters`)."""
        if self.choice.method == "kmeans" and self.choice.centroids is not None:
            return self.choice.centroids
        return self.selection.best

    @property
    def n_clusters(self) -> int:
        return int(self.selection.best_n_clusters)

    @property
    def params(self) -> dict[str, Any]:
        """The chosen TURTLE run's settings, which method's partition was kept, and both agreements."""
        params = {
            **self.selection.best_params,
            "method": self.choice.method,
            "partition": self.partition,
            "turtle_agreement": _rounded(self.choice.turtle_agreement),
            "kmeans_agreement": _rounded(self.choice.kmeans_agreement),
        }
        if self.final_runs_skipped:
            params["final_runs"] = "skipped: k-means' partition was kept"
        return params


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


def discover(
    spaces: Sequence[np.ndarray | torch.Tensor],
    n_clusters: int | tuple[int, int],
    effort: Effort,
    *,
    random_state: int = 0,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    partition: str = "auto",
) -> Discovery:
    """TURTLE's selections at `effort`, then `choose_partition` against k-means at their number of clusters.

    The runs are `effort.discovery_plan`'s for this folder: TURTLE's stability is the agreement of
    `STABILITY_TURTLE_RUNS` independent quick selections (seeds `random_state`, +1, ...); the quick effort
    keeps the best-scoring of them, a larger effort trains their best starts for longer (its final runs)
    and keeps the best of those. The agreement *within* one selection (its full runs start from the
    best-screened starts, which look alike) did not tell the cases apart: on digits it chose k-means'
    0.64 over TURTLE's 0.83.
    `partition="turtle"` or `"kmeans"` skips the comparison and keeps that method.
    With final runs and one C, the comparison comes before them (`choice_before_finals`: it reads only the
    selections' agreement and k-means'): when it keeps k-means' partition the final runs, half a standard
    discovery's time, are not trained (`final_runs_skipped`).
    """
    arrays = check_spaces(spaces)
    plan = discovery_plan(effort, partition, random_state, arrays[0].shape[0])
    choose_first = choice_before_finals(plan, n_clusters, partition)
    clock = DiscoveryClock(
        plan, n_clusters, arrays[0].shape[0], [X.shape[1] for X in arrays], progress, partition, choose_first
    )
    selections: list[SelectionResult] = []
    for index, planned in enumerate(plan.selections):
        selections.append(
            select_model(
                arrays,
                n_clusters,
                progress=clock.part(index),
                cancel=cancel,
                random_state=planned.random_state,
                **planned.schedule.select_kwargs(),
            )
        )
    stability_runs = [selections[i].best.labels_ for i in plan.stability]

    def choose(kept: SelectionResult) -> PartitionChoice:
        return choose_partition(
            arrays,
            stability_runs,
            kept.best.labels_,
            kept.best.probabilities_,
            random_state=random_state,
            cancel=cancel,
            keep=partition,
            progress=clock.stability(),
        )

    kept = max((selections[i] for i in plan.kept_from), key=_best_score)
    if plan.finals is None:
        return Discovery(kept, choose(kept), partition)
    choice = choose(kept) if choose_first else None
    if choice is not None and choice.method == "kmeans":
        return Discovery(kept, choice, partition, final_runs_skipped=True)
    kept = train_final_runs(
        arrays,
        n_clusters,
        selections,
        plan.finals.count,
        outer_steps=plan.finals.steps,
        batch_size=plan.finals.batch_size,
        random_state=random_state,
        progress=clock.part(len(plan.selections)),
        cancel=cancel,
    )
    if choice is None:
        return Discovery(kept, choose(kept), partition)
    turtle = replace(choice, labels=kept.best.labels_, probabilities=kept.best.probabilities_)
    return Discovery(kept, turtle, partition)


def _best_score(selection: SelectionResult) -> float:
    return max(c.score for c in selection.candidates if c.n_clusters == selection.best_n_clusters)
