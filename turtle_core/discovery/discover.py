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

from turtle_core.discovery.effort import Effort, discovery_plan
from turtle_core.discovery.selection import SelectionResult, select_model
from turtle_core.discovery.stability import PartitionChoice, choose_partition
from turtle_core.progress import Progress, ProgressCallback


@dataclass
class Discovery:
    """The kept partition and how it was reached."""

    selection: SelectionResult = field(repr=False)
    choice: PartitionChoice = field(repr=False)
    partition: str = "auto"  # what was asked: the stability choice, or a forced method

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
        return {
            **self.selection.best_params,
            "method": self.choice.method,
            "partition": self.partition,
            "turtle_agreement": _rounded(self.choice.turtle_agreement),
            "kmeans_agreement": _rounded(self.choice.kmeans_agreement),
        }


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
    """TURTLE's selection at `effort`, then `choose_partition` against k-means at its number of clusters.

    The selections run are `effort.discovery_plan`'s: TURTLE's stability is the agreement of
    `STABILITY_TURTLE_RUNS` independent quick selections (seeds `random_state`, +1, ...); the quick effort
    keeps the best-scoring of them, a larger effort runs its own selection and these beside it. The
    agreement *within* one selection (its full runs start from the best-screened starts, which look
    alike) did not tell the cases apart: on digits it chose k-means' 0.64 over TURTLE's 0.83.
    `partition="turtle"` or `"kmeans"` skips the comparison (one selection at `effort`) and keeps that method.
    """
    plan = discovery_plan(effort, partition, random_state)
    steps = plan.steps(n_clusters)
    selections: list[SelectionResult] = []
    for index, planned in enumerate(plan.selections):
        selections.append(
            select_model(
                spaces,
                n_clusters,
                progress=_offset(progress, sum(steps[:index]), sum(steps)),
                cancel=cancel,
                random_state=planned.random_state,
                **planned.effort.select_kwargs(),
            )
        )
    stability_runs = [selections[i] for i in plan.stability]
    kept = max((selections[i] for i in plan.kept_from), key=_best_score)
    if progress is not None and partition != "turtle":
        message = "Comparing with k-means: which partition do independent runs agree on more?"
        progress(Progress("stability", 0, 0, message=message))
    choice = choose_partition(
        spaces,
        [run.best.labels_ for run in stability_runs],
        kept.best.labels_,
        kept.best.probabilities_,
        random_state=random_state,
        cancel=cancel,
        keep=partition,
    )
    return Discovery(kept, choice, partition)


def _best_score(selection: SelectionResult) -> float:
    return max(c.score for c in selection.candidates if c.n_clusters == selection.best_n_clusters)


def _offset(progress: ProgressCallback | None, before: int, total: int) -> ProgressCallback | None:
    """Progress of one selection shown as part of all of them: one bar that never steps back."""
    if progress is None:
        return None

    def report(item: Progress) -> None:
        if item.unit == "steps" and item.total:
            item = replace(item, done=before + item.done, total=total, eta_s=None)
        progress(item)

    return report
