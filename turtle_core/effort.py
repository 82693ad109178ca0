"""Discovery effort levels: how many TURTLE steps and runs a discovery spends (no torch import here, so
the app's pages can list them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .constants import TURTLE_OUTER_STEPS


@dataclass(frozen=True)
class Effort:
    """TURTLE's outer steps (T) and the runs (seeds) per grid point that a discovery spends."""

    name: str
    outer_steps: int
    n_restarts: int
    summary: str

    def select_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `turtle_core.selection.select_model` that apply this effort."""
        return {"n_restarts": self.n_restarts, "turtle_params": {"outer_steps": self.outer_steps}}


EFFORTS: dict[str, Effort] = {
    "quick": Effort(
        "quick", 1000, 1, "1,000 TURTLE steps, one run: a first look in a few percent of the time"
    ),
    "standard": Effort(
        "standard", TURTLE_OUTER_STEPS, 3, "the paper's 6,000 steps, best of 3 runs by the label-free score"
    ),
}
DEFAULT_EFFORT = "standard"


def resolve_effort(name: str | None) -> Effort:
    """The named effort (`None`: the default); a clear error for unknown names."""
    key = name or DEFAULT_EFFORT
    if key not in EFFORTS:
        raise ValueError(f"unknown effort {name!r}; choose one of {', '.join(EFFORTS)}")
    return EFFORTS[key]
