"""One progress bar with a time left for a whole discovery.

The selections' and the final runs' TURTLE steps are counted on one bar that never steps back. The time
left comes from the estimate's seconds for each part of the plan (`estimate.plan_seconds`), scaled by the
speed measured so far: at the first report it is the estimate itself (times this machine's speed at its
last discovery), and the measured speed takes over as the work advances.
"""

from __future__ import annotations

import time
from dataclasses import replace

from turtle_core.discovery.effort import DiscoveryPlan
from turtle_core.discovery.estimate import PlanSeconds, discovery_speed, plan_seconds
from turtle_core.progress import Progress, ProgressCallback

# How much of the estimate the remembered speed weighs against the speed measured in this run: a tenth
# of the discovery's expected seconds (the measured speed dominates after the first tenth of the work).
PRIOR_SHARE = 0.1


class DiscoveryClock:
    """Maps each part's progress onto the discovery's bar and adds the time left (`eta_s`)."""

    def __init__(
        self,
        plan: DiscoveryPlan,
        n_clusters: int | tuple[int, int],
        n_rows: int,
        dims: list[int],
        progress: ProgressCallback | None,
        partition: str = "auto",
        stability_first: bool = False,
    ) -> None:
        self.progress = progress
        self.steps = plan.steps(n_clusters)
        self.parts: PlanSeconds = plan_seconds(plan, n_clusters, n_rows, dims, partition)
        # the stability choice runs between the selections and the final runs (`discover`)
        self.selections = len(plan.selections)
        self.stability_first = stability_first and plan.finals is not None
        self.speed = discovery_speed()
        self.started = time.perf_counter()

    def left_s(self, done_s: float) -> float:
        """Seconds left once `done_s` of the estimate's seconds are done."""
        total = self.parts.total_s
        prior = PRIOR_SHARE * total
        elapsed = time.perf_counter() - self.started
        speed = (elapsed + prior * self.speed) / (done_s + prior) if total > 0 else self.speed
        return max(0.0, (total - done_s) * speed)

    def part(self, index: int) -> ProgressCallback | None:
        """The progress callback of TURTLE part `index` (a selection, then the final runs)."""
        if self.progress is None:
            return None
        progress = self.progress
        before_steps, total_steps = sum(self.steps[:index]), sum(self.steps)
        before_s, part_s = sum(self.parts.turtle_s[:index]), self.parts.turtle_s[index]
        if self.stability_first and index >= self.selections:
            before_s += self.parts.stability_s

        def report(item: Progress) -> None:
            if item.unit == "steps" and item.total:
                done_s = before_s + part_s * min(1.0, item.done / item.total)
                item = replace(
                    item, done=before_steps + item.done, total=total_steps, eta_s=self.left_s(done_s)
                )
            progress(item)

        return report

    def stability(self) -> ProgressCallback | None:
        """The progress callback of the stability choice's k-means runs (counted in runs)."""
        if self.progress is None:
            return None
        progress = self.progress
        before_s = sum(
            self.parts.turtle_s[: self.selections] if self.stability_first else self.parts.turtle_s
        )

        def report(item: Progress) -> None:
            share = item.done / item.total if item.total else 0.0
            progress(replace(item, eta_s=self.left_s(before_s + self.parts.stability_s * share)))

        return report
