"""How long a discovery will take, said before it starts: from the image count, the backbones (and how
many images each still has to embed) and the effort.

Rates come from measurements: the images/s a backbone reached on this machine in its last embedding
run (saved in `$TURTLE_HOME/rates.json` by `record_embedding_rate`), else the 2-core CPU rates measured
by `benchmarks/first_hour.py`. TURTLE's time follows the effort's number of outer steps, at a per-step
cost measured on that machine for 2,000 and 10,000 images (batches are capped at 10,000 rows, so the
step cost stops growing there). An estimate, not a promise: a machine shared with other work is slower.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from turtle_core.constants import (
    STABILITY_KMEANS_INITS,
    STABILITY_KMEANS_RUNS,
    STABILITY_KMEANS_SAMPLE_ROWS,
)
from turtle_core.discovery.effort import (
    REFINED_CLUSTER_VALUES,
    Effort,
    cluster_values,
    discovery_plan,
    screening_steps,
)
from turtle_core.embedding.rates import MODEL_LOAD_S, RELATIVE_COST, embedding_rate

# TURTLE outer step (forward, inner steps, backward, with the screening's scores) on the 2-core CPU at
# C=10: the demo's 2,000 images, standard effort 69 s for 22,800 steps; 10,000 images, 237 s
# (benchmarks/README.md, discovery_quality.py); linear in the batch rows between.
STEP_S_AT_2K = 0.0030
STEP_S_AT_10K = 0.0104
BATCH_CAP = 10_000
SCORE_S_PER_ROW = 2e-5  # one label-free score (10-fold linear probes), per image
# One k-means start of the stability choice (discovery/stability.py), per image and cluster, on 1,280
# dimensions: 1,797 rows × 10 clusters took 0.55 s per start on this CPU (idle), 1.4 s at load 5.
KMEANS_START_S_PER_ROW_CLUSTER = 3e-5


@dataclass(frozen=True)
class DiscoveryEstimate:
    """Seconds a discovery is expected to take, by part."""

    embed_s: float
    turtle_s: float
    to_embed: dict[str, int]  # backbone -> images it still has to compute

    @property
    def total_s(self) -> float:
        return self.embed_s + self.turtle_s


def turtle_seconds(
    n_images: int, n_clusters: int | tuple[int, int], effort: Effort, partition: str = "auto"
) -> float:
    """The discovery's expected time for `effort` at one C or a range (lo, hi): TURTLE's selections as
    `discovery.discover` runs them (`effort.discovery_plan`), and the k-means runs of the stability
    choice (none for "turtle")."""
    ks = cluster_values(n_clusters)
    plan = discovery_plan(effort, partition)
    total = sum(_selection_seconds(n_images, ks, planned.effort) for planned in plan.selections)
    return total + (0.0 if partition == "turtle" else _stability_seconds(n_images, ks[-1]))


def _selection_seconds(n_images: int, ks: list[int], effort: Effort) -> float:
    full = effort.outer_steps
    screen = screening_steps(full)
    refined = min(REFINED_CLUSTER_VALUES, len(ks))
    rows = min(max(n_images, 1), BATCH_CAP)
    step_at_10 = STEP_S_AT_2K + (rows - 2000) * (STEP_S_AT_10K - STEP_S_AT_2K) / 8000
    step_at_10 = max(step_at_10, 0.0005)
    score_s = SCORE_S_PER_ROW * min(n_images, 20_000)
    total = 0.0
    for k in ks:
        step = step_at_10 * max(1.0, k / 10) ** 0.85  # measured: C=100 costs ~7x C=10 per step
        runs = 1 + (effort.n_restarts - 1 if k in ks[:refined] else 0)
        total += effort.n_screen * (screen * step + score_s) + runs * (full * step + score_s)
    return total


def _stability_seconds(n_images: int, n_clusters: int) -> float:
    """The k-means runs of the stability choice."""
    starts = STABILITY_KMEANS_RUNS * STABILITY_KMEANS_INITS
    rows = min(n_images, STABILITY_KMEANS_SAMPLE_ROWS)
    return starts * KMEANS_START_S_PER_ROW_CLUSTER * rows * n_clusters


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
    pending = {name: int((to_embed or {}).get(name, n_images)) for name in backbones}
    embed_s = 0.0
    for name, count in pending.items():
        if count > 0:
            rate, _ = embedding_rate(name, device)
            embed_s += count / rate + MODEL_LOAD_S * max(1.0, RELATIVE_COST.get(name, 50.0) / 20)
    return DiscoveryEstimate(embed_s, turtle_seconds(n_images, n_clusters, effort, partition), pending)


def rounded_seconds(seconds: float) -> float:
    """Round an estimate up to a figure that does not pretend precision (5 s, 30 s or 5 min steps)."""
    step = 5 if seconds < 120 else 30 if seconds < 1800 else 300
    return float(-(-int(seconds) // step) * step)
