"""Discovery effort levels and the schedule they imply: how many TURTLE steps and runs a discovery spends,
and which selections `discovery.discover` runs (no torch import here, so the app's pages and the time
estimate can read them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turtle_core.constants import STABILITY_TURTLE_RUNS, TURTLE_OUTER_STEPS

# Steps of one screening run (at most a fifth of a full run's). On Animal-MNIST (Lite0) about 1 k-means
# start in 10 leads TURTLE to the good solution, and after 300 steps the score ranks those starts first
# while it does not yet after 100 (benchmarks/README.md).
SCREEN_STEPS = 300


@dataclass(frozen=True)
class Effort:
    """What a discovery spends per grid point: `n_screen` k-means starts, each trained for a short
    screening run and scored without labels; the `n_restarts` best trained for `outer_steps` (T)."""

    name: str
    outer_steps: int
    n_restarts: int
    n_screen: int
    summary: str

    def select_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `turtle_core.selection.select_model` that apply this effort."""
        return {
            "n_restarts": self.n_restarts,
            "n_screen": self.n_screen,
            "turtle_params": {"outer_steps": self.outer_steps},
        }

    def steps(self, n_clusters: int | tuple[int, int]) -> int:
        """TURTLE outer steps one `select_model` at this effort trains (screening and full runs)."""
        full = self.outer_steps
        screen = screening_steps(full)
        return selection_steps(
            len(cluster_values(n_clusters)),
            full_steps=full,
            n_restarts=self.n_restarts,
            n_screen=self.n_screen if is_screened(self.n_screen, self.n_restarts, screen, full) else 0,
            screen_steps=screen,
        )


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
        TURTLE_OUTER_STEPS,
        3,
        16,
        "16 starts screened, the 3 best trained for the paper's 6,000 steps, the best kept; then compared with k-means",
    ),
}
DEFAULT_EFFORT = "standard"
# The demo's first run: on its 2,000 images quick effort matched standard's accuracy (0.758 against 0.743,
# means of three seeds, benchmarks/README.md) in about a tenth of the TURTLE time (benchmarks/first_hour.py).
DEMO_EFFORT = "quick"
# With a range of C, the extra restarts run only for this many best-scoring values of C.
REFINED_CLUSTER_VALUES = 2


def resolve_effort(name: str | None) -> Effort:
    """The named effort (`None`: the default); a clear error for unknown names."""
    key = name or DEFAULT_EFFORT
    if key not in EFFORTS:
        raise ValueError(f"unknown effort {name!r}; choose one of {', '.join(EFFORTS)}")
    return EFFORTS[key]


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
    """One TURTLE selection of a discovery: its effort and its seed."""

    effort: Effort
    random_state: int


@dataclass(frozen=True)
class DiscoveryPlan:
    """The selections a discovery runs, in order. `stability`: the indices of the independent runs whose
    agreement the stability choice compares with k-means'; `kept_from`: the indices among which the
    best-scoring selection is the discovery's TURTLE result."""

    selections: tuple[PlannedSelection, ...]
    stability: tuple[int, ...]
    kept_from: tuple[int, ...]

    def steps(self, n_clusters: int | tuple[int, int]) -> list[int]:
        """TURTLE outer steps of each selection, in order."""
        return [planned.effort.steps(n_clusters) for planned in self.selections]


def discovery_plan(effort: Effort, partition: str = "auto", random_state: int = 0) -> DiscoveryPlan:
    """The selections `discovery.discover` runs for `effort`: with the stability choice ("auto"), the
    effort's own selection and `STABILITY_TURTLE_RUNS` independent quick ones (seeds `random_state`, +1,
    ...; the quick effort's own selection is the best-scoring of those); a forced partition runs the
    effort's selection alone."""
    seed = int(random_state)
    if partition != "auto":
        return DiscoveryPlan((PlannedSelection(effort, seed),), (0,), (0,))
    quick = EFFORTS["quick"]
    runs = tuple(PlannedSelection(quick, seed + i) for i in range(STABILITY_TURTLE_RUNS))
    if effort == quick:
        every = tuple(range(len(runs)))
        return DiscoveryPlan(runs, every, every)
    return DiscoveryPlan((PlannedSelection(effort, seed), *runs), tuple(range(1, len(runs) + 1)), (0,))
