"""Discovery effort levels: how many TURTLE steps and runs a discovery spends (no torch import here, so
the app's pages can list them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turtle_core.constants import TURTLE_OUTER_STEPS


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


def resolve_effort(name: str | None) -> Effort:
    """The named effort (`None`: the default); a clear error for unknown names."""
    key = name or DEFAULT_EFFORT
    if key not in EFFORTS:
        raise ValueError(f"unknown effort {name!r}; choose one of {', '.join(EFFORTS)}")
    return EFFORTS[key]
