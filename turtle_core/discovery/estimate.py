"""How long a discovery will take, said before it starts: from the image count, the backbones (and how
many images each still has to embed), the effort and the number of categories.

Embedding: the images/s a backbone reached on this machine in its last embedding run (`rates.json`,
`record_embedding_rate`), else the 2-core CPU rates measured by `benchmarks/first_hour.py`.
Discovery: the plan `discover` runs for this folder (`effort.discovery_plan`, the one home of the
schedule) priced part by part — TURTLE steps (per row of the batch and per operation), label-free scores,
k-means starts, the preprocessing, the stability choice's k-means runs and the confidence — at costs
measured on the idle 2-core CPU with one torch thread (`benchmarks/estimate_accuracy.py`), times this
machine's speed at its last discovery (`record_discovery_speed`), or before its first one as the speed probe
measured it (`discovery.speed_probe`). An estimate, not a promise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from turtle_core.constants import (
    DISCOVERY_SAMPLE_ROWS,
    DISCOVERY_WORK_ROWS,
    STABILITY_KMEANS_INITS,
    STABILITY_KMEANS_RUNS,
    STABILITY_KMEANS_SAMPLE_ROWS,
)
from turtle_core.discovery.effort import (
    REFINED_CLUSTER_VALUES,
    DiscoveryPlan,
    Effort,
    Schedule,
    choice_before_finals,
    cluster_values,
    discovery_plan,
)
from turtle_core.embedding.rates import (
    MAX_SPEED,
    MODEL_LOAD_S,
    PROBE_KEY,
    RELATIVE_COST,
    embedding_rate,
    read_rate,
    record_rate,
)

# Reference costs in seconds: the idle 2-core CPU, one torch thread. Measured part by part in one process
# (benchmarks/discovery_costs.py) and scaled to the idle demo's three quick selections (20 s,
# benchmarks/README.md). A TURTLE step: a fixed part per space (about 90 small tensor operations)
# and a part per batch row, of which some grows with C × whitened axes (per 10 clusters × 64 axes).
STEP_S_PER_SPACE = 0.00036
STEP_S_PER_ROW = 0.00000062
STEP_ROW_AT_WIDTH = 0.00000040
# A label-free score (10-fold probes): fixed, and per row at 10 clusters × 64 axes.
SCORE_S = 0.04
SCORE_S_PER_ROW = 0.000074
# One k-means start (k-means++ and Lloyd's iterations; TURTLE's starts and the stability choice's runs):
# fixed, and per row × input dimension, growing with C as (1 + C / 10).
KMEANS_S = 0.005
KMEANS_S_PER_VALUE = 0.00000003
# The preprocessing (one per selection): per row × input dimension².
PREP_S_PER_VALUE = 0.000000000046
# The confidence and atypicality after the discovery: per row × neighbour reference row, and per row ×
# input dimension (the joint space's PCA).
FINISH_S_PER_PAIR = 0.000000003
FINISH_S_PER_VALUE = 0.00000004
WIDTH_UNIT = 10 * 64
DISCOVERY_SPEED_KEY = "discovery@cpu"
MIN_SPEED_REFERENCE_S = 5.0


@dataclass(frozen=True)
class DiscoveryEstimate:
    """Seconds a discovery is expected to take, by part; `turtle_s_if_kmeans`: the discovery's seconds when
    the stability choice keeps k-means' partition and the final runs are skipped (None: they never are)."""

    embed_s: float
    turtle_s: float
    to_embed: dict[str, int]  # backbone -> images it still has to compute
    turtle_s_if_kmeans: float | None = None

    @property
    def total_s(self) -> float:
        return self.embed_s + self.turtle_s


@dataclass(frozen=True)
class PlanSeconds:
    """Reference seconds of a plan's parts: each TURTLE selection then the final runs (`turtle_s`), the
    stability choice's k-means runs, and what follows the discovery (confidence, the assignment of every
    image when the discovery ran on a sample)."""

    turtle_s: list[float]
    stability_s: float
    finish_s: float

    @property
    def total_s(self) -> float:
        """The discovery itself (`discover`): TURTLE and the stability choice."""
        return sum(self.turtle_s) + self.stability_s


def whitened_axes(n_rows: int, n_clusters: int) -> int:
    """`features.effective_components` at the default 64 axes (restated: that module imports torch)."""
    return max(2, min(max(64, 2 * n_clusters), n_rows // 10))


def step_seconds(batch_rows: int, n_clusters: int, axes: Sequence[int]) -> float:
    """One TURTLE outer step on `batch_rows` rows, C clusters, spaces whitened to `axes`."""
    row = sum(STEP_S_PER_ROW + STEP_ROW_AT_WIDTH * n_clusters * (a + 1) / WIDTH_UNIT for a in axes)
    return STEP_S_PER_SPACE * len(axes) + batch_rows * row


def score_seconds(probe_rows: int, n_clusters: int, axes: Sequence[int]) -> float:
    """One label-free score whose probes are fitted and tested on `probe_rows` rows."""
    return sum(SCORE_S + SCORE_S_PER_ROW * probe_rows * n_clusters * (a + 1) / WIDTH_UNIT for a in axes)


def kmeans_seconds(n_rows: int, dims: int, n_clusters: int) -> float:
    """One k-means start (k-means++ and Lloyd's iterations) on `n_rows` × `dims`."""
    return KMEANS_S + KMEANS_S_PER_VALUE * n_rows * dims * (1 + n_clusters / 10)


def selection_seconds(
    schedule: Schedule, n_rows: int, ks: list[int], dims: Sequence[int], work_rows: int = DISCOVERY_WORK_ROWS
) -> float:
    """One `select_model` with `schedule`: the preprocessing, then per C its screening runs (a k-means
    start, steps and a score each) and its full runs (the restarts counted for the largest Cs). Scores and
    k-means starts work on at most `work_rows` rows."""
    axes = [whitened_axes(n_rows, max(ks))] * len(dims)
    batch = min(schedule.batch_size, n_rows)
    screens = schedule.n_screen if schedule.screened else 0
    refined = min(REFINED_CLUSTER_VALUES, len(ks))
    total = PREP_S_PER_VALUE * n_rows * sum(d * d for d in dims)
    for index, k in enumerate(ks):
        step, score = step_seconds(batch, k, axes), score_seconds(min(n_rows, work_rows), k, axes)
        start = kmeans_seconds(min(n_rows, work_rows), sum(dims), k)
        runs = 1 + (schedule.n_restarts - 1 if index >= len(ks) - refined else 0)
        total += screens * (start + schedule.screen_steps * step + score)
        total += runs * (schedule.outer_steps * step + score + (0 if screens else start))
    return total


def plan_seconds(
    plan: DiscoveryPlan,
    n_clusters: int | tuple[int, int],
    n_rows: int,
    dims: Sequence[int],
    partition: str = "auto",
    work_rows: int = DISCOVERY_WORK_ROWS,
) -> PlanSeconds:
    """Reference seconds of each part of `plan` on `n_rows` images with input spaces of `dims` (`work_rows`:
    the rows scores and k-means starts work on at most; benchmarks price earlier engines with theirs)."""
    ks = cluster_values(n_clusters)
    fit_rows = min(n_rows, DISCOVERY_SAMPLE_ROWS)
    work = min(fit_rows, work_rows)
    turtle = [selection_seconds(p.schedule, fit_rows, ks, dims, work_rows) for p in plan.selections]
    if plan.finals is not None:
        axes = [whitened_axes(fit_rows, ks[-1])] * len(dims)
        step = step_seconds(min(plan.finals.batch_size, fit_rows), ks[-1], axes)
        run = plan.finals.steps * step + score_seconds(work, ks[-1], axes)
        run += kmeans_seconds(work, sum(dims), ks[-1])
        turtle.append(plan.finals.count * run + PREP_S_PER_VALUE * fit_rows * sum(d * d for d in dims))
    stability = 0.0
    if partition != "turtle":
        rows = min(fit_rows, STABILITY_KMEANS_SAMPLE_ROWS)
        starts = STABILITY_KMEANS_RUNS * STABILITY_KMEANS_INITS
        stability = starts * kmeans_seconds(rows, sum(dims), ks[-1])
    reference = min(n_rows, 20_000 if n_rows <= DISCOVERY_SAMPLE_ROWS else 10_000)
    finish = FINISH_S_PER_PAIR * n_rows * reference + FINISH_S_PER_VALUE * n_rows * sum(dims)
    return PlanSeconds(turtle, stability, finish)


def discovery_speed() -> float:
    """This machine's discovery time over the reference estimate at its last discovery; before any, the
    speed probe's (`discovery.speed_probe`), else 1."""
    measured = read_rate(DISCOVERY_SPEED_KEY)
    if measured is None:
        measured = read_rate(PROBE_KEY)
    return measured if measured is not None else 1.0


def speed_unknown() -> bool:
    """Whether no discovery and no speed probe has measured this machine's speed yet (`TURTLE_SPEED_PROBE=0`:
    never probe, the reference speed stands)."""
    if os.environ.get("TURTLE_SPEED_PROBE", "1") == "0":
        return False
    return read_rate(DISCOVERY_SPEED_KEY) is None and read_rate(PROBE_KEY) is None


def record_discovery_speed(reference_s: float, seconds: float) -> None:
    """Remember how this machine compared with the reference estimate: half this discovery's ratio, half
    the remembered one (a machine shared with other work changes speed). Discoveries expected to take
    under `MIN_SPEED_REFERENCE_S` say little (one-off costs such as library imports dominate them)."""
    if reference_s < MIN_SPEED_REFERENCE_S or seconds <= 0:
        return
    ratio = min(MAX_SPEED, max(1 / MAX_SPEED, seconds / reference_s))
    previous = read_rate(DISCOVERY_SPEED_KEY)
    record_rate(DISCOVERY_SPEED_KEY, ratio if previous is None else (ratio + previous) / 2)


def discovery_seconds(
    n_images: int,
    n_clusters: int | tuple[int, int],
    effort: Effort,
    partition: str = "auto",
    dims: Sequence[int] = (1280,),
    *,
    final_runs: bool = True,
) -> float:
    """Reference seconds of the discovery `discover_features` runs on `n_images` embedded images;
    `final_runs=False`: the discovery whose stability choice kept k-means' partition before them."""
    plan = discovery_plan(effort, partition, 0, min(n_images, DISCOVERY_SAMPLE_ROWS))
    if choice_before_finals(plan, n_clusters, partition) and (not final_runs or partition == "kmeans"):
        plan = replace(plan, finals=None)
    parts = plan_seconds(plan, n_clusters, max(1, n_images), dims, partition)
    return parts.total_s + parts.finish_s


def turtle_seconds(
    n_images: int,
    n_clusters: int | tuple[int, int],
    effort: Effort,
    partition: str = "auto",
    dims: Sequence[int] = (1280,),
    *,
    final_runs: bool = True,
) -> float:
    """The discovery's expected time on this machine (`discovery_seconds` times its measured speed)."""
    seconds = discovery_seconds(n_images, n_clusters, effort, partition, dims, final_runs=final_runs)
    return seconds * discovery_speed()


def estimate_discovery(
    n_images: int,
    backbones: Sequence[str],
    effort: Effort,
    n_clusters: int | tuple[int, int],
    *,
    to_embed: Mapping[str, int] | None = None,
    device: str = "cpu",
    partition: str = "auto",
) -> DiscoveryEstimate:
    """Expected seconds for a discovery of `n_images` images. `to_embed`: images each backbone still
    has to compute (default: all of them; 0 when its embeddings are all cached)."""
    from turtle_core.embedding.registry import BACKBONES

    pending = {name: int((to_embed or {}).get(name, n_images)) for name in backbones}
    embed_s = 0.0
    for name, count in pending.items():
        if count > 0:
            rate, _ = embedding_rate(name, device)
            embed_s += count / rate + MODEL_LOAD_S * max(1.0, RELATIVE_COST.get(name, 100.0) / 40)
    dims = [BACKBONES[name].embed_dim if name in BACKBONES else 1024 for name in backbones] or [1280]
    turtle_s = turtle_seconds(n_images, n_clusters, effort, partition, dims)
    if_kmeans = None
    if partition == "auto":
        shorter = turtle_seconds(n_images, n_clusters, effort, partition, dims, final_runs=False)
        if_kmeans = shorter if shorter < turtle_s else None
    return DiscoveryEstimate(embed_s, turtle_s, pending, if_kmeans)


def rounded_seconds(seconds: float) -> float:
    """Round an estimate up to a figure that does not pretend precision (5 s, 30 s or 5 min steps)."""
    step = 5 if seconds < 120 else 30 if seconds < 1800 else 300
    return float(-(-int(seconds) // step) * step)
