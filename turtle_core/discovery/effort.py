"""Discovery effort levels and the schedule they imply for a folder: how many TURTLE starts, steps and rows
per step a discovery spends, and which runs `discovery.discover` makes (no torch import here, so the
app's pages and the time estimate read the same schedule cheaply).

The schedule scales with the folder. Rows per step stop at `BATCH_ROWS` (the paper's 10,000 cost 2.3x as
much per step on the CPU and reached the same labels, benchmarks/README.md); below `SMALL_FOLDER_ROWS`
images, steps and starts shrink in proportion (a 12-image folder paid the full schedule: 10 min).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from turtle_core.constants import DISCOVERY_WORK_ROWS, STABILITY_TURTLE_RUNS

# Steps of one screening run (at most a fifth of a full run's). On Animal-MNIST (Lite0) about 1 k-means
# start in 10 leads TURTLE to the good solution, and after 300 steps the score ranks those starts first
# while it does not yet after 100 (benchmarks/README.md).
SCREEN_STEPS = 300
# Rows per TURTLE step of a discovery (a random batch above it, the whole folder below).
BATCH_ROWS = DISCOVERY_WORK_ROWS
# Below this many images the schedule's steps and screened starts shrink in proportion, to a tenth at least.
SMALL_FOLDER_ROWS = 200
MIN_FOLDER_SCALE = 0.1
# With a range of C, the extra restarts run only for this many best-scoring values of C.
REFINED_CLUSTER_VALUES = 2


@dataclass(frozen=True)
class Schedule:
    """One `select_model`'s runs: `n_screen` starts each screened for `screen_steps` steps and scored, the
    `n_restarts` best trained for `outer_steps`; `batch_size` rows per step."""

    n_screen: int
    screen_steps: int
    n_restarts: int
    outer_steps: int
    batch_size: int

    def select_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `select_model` that run this schedule."""
        return {
            "n_restarts": self.n_restarts,
            "n_screen": self.n_screen,
            "screen_steps": self.screen_steps,
            "turtle_params": {"outer_steps": self.outer_steps, "batch_size": self.batch_size},
        }

    @property
    def screened(self) -> bool:
        return is_screened(self.n_screen, self.n_restarts, self.screen_steps, self.outer_steps)

    def steps(self, n_clusters: int | tuple[int, int]) -> int:
        """TURTLE outer steps of the selection over one C or a range (screening and full runs)."""
        return selection_steps(
            len(cluster_values(n_clusters)),
            full_steps=self.outer_steps,
            n_restarts=self.n_restarts,
            n_screen=self.n_screen if self.screened else 0,
            screen_steps=self.screen_steps,
        )


@dataclass(frozen=True)
class Effort:
    """What a discovery spends: `n_screen` k-means starts screened (short runs, scored without labels), the
    `n_restarts` best trained for `outer_steps` (T). `final_runs`: a discovery's stability runs are quick
    selections; an effort above quick then trains their best starts for its own T (its final runs)."""

    name: str
    outer_steps: int
    n_restarts: int
    n_screen: int
    summary: str
    final_runs: bool = False

    def schedule(self, n_rows: int | None = None) -> Schedule:
        """The effort's `select_model` schedule for a folder of `n_rows` images (None: unscaled)."""
        scale = folder_scale(n_rows)
        outer = max(1, round(self.outer_steps * scale))
        n_screen = self.n_screen
        if n_screen > self.n_restarts:
            n_screen = max(self.n_restarts + 1, round(n_screen * scale))
        batch = BATCH_ROWS if n_rows is None else max(1, min(BATCH_ROWS, int(n_rows)))
        return Schedule(n_screen, screening_steps(outer), self.n_restarts, outer, batch)

    def select_kwargs(self, n_rows: int | None = None) -> dict[str, Any]:
        """Keyword arguments for `turtle_core.selection.select_model` that apply this effort."""
        return self.schedule(n_rows).select_kwargs()

    def steps(self, n_clusters: int | tuple[int, int], n_rows: int | None = None) -> int:
        """TURTLE outer steps one `select_model` at this effort trains (screening and full runs)."""
        return self.schedule(n_rows).steps(n_clusters)


EFFORTS: dict[str, Effort] = {
    "quick": Effort(
        "quick",
        1000,
        1,
        6,
        "6 starts screened, the best trained for 1,000 steps; three such runs compared with k-means",
    ),
    "standard": Effort(
        "standard",
        3000,
        3,
        16,
        "three quick runs compared with k-means, then their 3 best starts trained for 3,000 steps "
        "and the best kept",
        final_runs=True,
    ),
}
DEFAULT_EFFORT = "standard"
# The demo's first run: on its 2,000 images quick effort matched standard's accuracy (0.758 against 0.743,
# means of three seeds, benchmarks/README.md) in about a tenth of the TURTLE time (benchmarks/first_hour.py).
DEMO_EFFORT = "quick"


def resolve_effort(name: str | None) -> Effort:
    """The named effort (`None`: the default); a clear error for unknown names."""
    key = name or DEFAULT_EFFORT
    if key not in EFFORTS:
        raise ValueError(f"unknown effort {name!r}; choose one of {', '.join(EFFORTS)}")
    return EFFORTS[key]


def folder_scale(n_rows: int | None) -> float:
    """The share of an effort's steps and screened starts a folder of `n_rows` images gets (1 from
    `SMALL_FOLDER_ROWS` up)."""
    if n_rows is None:
        return 1.0
    return max(MIN_FOLDER_SCALE, min(1.0, int(n_rows) / SMALL_FOLDER_ROWS))


def cluster_values(n_clusters: int | tuple[int, int]) -> list[int]:
    """The numbers of clusters a request tries: one C, or every C of an inclusive (lo, hi) range."""
    if isinstance(n_clusters, (tuple, list)):
        lo, hi = sorted(int(v) for v in n_clusters)
        return list(range(lo, hi + 1))
    return [int(n_clusters)]


def screening_steps(full_steps: int) -> int:
    """Steps of one screening run for full runs of `full_steps`: `SCREEN_STEPS`, at most a fifth of them."""
    return max(1, min(SCREEN_STEPS, int(full_steps) // 5))


def is_screened(n_screen: int, n_restarts: int, screen: int, full_steps: int, init: str = "kmeans") -> bool:
    """Whether starts are screened: with k-means starts, when there are more starts than full runs and a
    screening run is shorter than a full one (otherwise the seeds are the restarts themselves)."""
    return init != "random" and int(n_screen) > int(n_restarts) and int(screen) < int(full_steps)


def selection_steps(
    n_values: int,
    *,
    full_steps: int,
    n_restarts: int,
    n_screen: int,
    screen_steps: int,
    refine: int = REFINED_CLUSTER_VALUES,
) -> int:
    """TURTLE outer steps of one grid point of `select_model` over `n_values` numbers of clusters: per C
    `n_screen` screening runs (0: none) and one full run, then `n_restarts - 1` more full runs for the
    `refine` best values of C."""
    refined = min(max(1, int(refine)), n_values)
    per_value = int(n_screen) * int(screen_steps) + int(full_steps)
    return n_values * per_value + refined * (max(1, int(n_restarts)) - 1) * int(full_steps)


@dataclass(frozen=True)
class PlannedSelection:
    """One TURTLE selection of a discovery: its schedule and its seed."""

    schedule: Schedule
    random_state: int


@dataclass(frozen=True)
class FinalRuns:
    """The final runs of an effort above quick: `count` of the selections' best starts, each trained for
    `steps` steps of `batch_size` rows."""

    count: int
    steps: int
    batch_size: int


@dataclass(frozen=True)
class DiscoveryPlan:
    """What a discovery runs, in order: the TURTLE selections, then the final runs (None: none).
    `stability`: the indices of the independent selections whose agreement the stability choice compares
    with k-means'; without final runs, the best-scoring of the selections at `kept_from` is kept."""

    selections: tuple[PlannedSelection, ...]
    stability: tuple[int, ...]
    kept_from: tuple[int, ...]
    finals: FinalRuns | None = None

    def steps(self, n_clusters: int | tuple[int, int]) -> list[int]:
        """TURTLE outer steps of each selection, then of the final runs when there are some."""
        steps = [planned.schedule.steps(n_clusters) for planned in self.selections]
        return steps + ([self.finals.count * self.finals.steps] if self.finals else [])


def discovery_plan(
    effort: Effort, partition: str = "auto", random_state: int = 0, n_rows: int | None = None
) -> DiscoveryPlan:
    """The runs `discovery.discover` makes for `effort` on a folder of `n_rows` images:
    `STABILITY_TURTLE_RUNS` independent quick selections (seeds `random_state`, +1, ...) whose agreement
    the stability choice compares with k-means' (with a forced partition, the quick effort runs one);
    the quick effort keeps the best-scoring, an effort with final runs trains the selections' best starts
    for its own steps and keeps the best of those."""
    seed = int(random_state)
    quick = EFFORTS["quick"].schedule(n_rows)
    count = 1 if partition != "auto" and not effort.final_runs else STABILITY_TURTLE_RUNS
    runs = tuple(PlannedSelection(quick, seed + i) for i in range(count))
    every = tuple(range(count))
    if not effort.final_runs:
        return DiscoveryPlan(runs, every, every)
    own = effort.schedule(n_rows)
    return DiscoveryPlan(runs, every, every, FinalRuns(own.n_restarts, own.outer_steps, own.batch_size))


def choice_before_finals(
    plan: DiscoveryPlan, n_clusters: int | tuple[int, int], partition: str = "auto"
) -> bool:
    """Whether `discover` makes the stability choice before the final runs, and trains them only when it
    keeps TURTLE's partition: with final runs, one C (a range's C is settled by the final runs) and a choice
    that is not forced to TURTLE."""
    return plan.finals is not None and partition != "turtle" and len(cluster_values(n_clusters)) == 1


def legacy_plan(effort: Effort, partition: str = "auto", random_state: int = 0) -> DiscoveryPlan:
    """The plan discoveries ran before the schedule fitted the folder (for side-by-side benchmarks): batches
    of 10,000 rows at any size; standard screened 16 starts and trained 3 for 6,000 steps, beside three
    quick selections for the stability choice."""
    old_quick = Schedule(6, 200, 1, 1000, 10_000)
    old_standard = Schedule(16, 300, 3, 6000, 10_000)
    plan = discovery_plan(EFFORTS["quick"], partition, random_state)
    plan = replace(plan, selections=tuple(replace(p, schedule=old_quick) for p in plan.selections))
    if not effort.final_runs:
        return plan
    if partition != "auto":
        return DiscoveryPlan((PlannedSelection(old_standard, int(random_state)),), (0,), (0,))
    runs = (PlannedSelection(old_standard, int(random_state)), *plan.selections)
    return DiscoveryPlan(runs, tuple(range(1, len(runs))), (0,))
