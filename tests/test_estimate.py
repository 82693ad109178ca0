"""The discovery time estimate shown before Run: rates, effort, cached embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from turtle_core.discovery.effort import EFFORTS, discovery_plan
from turtle_core.discovery.estimate import (
    discovery_seconds,
    discovery_speed,
    estimate_discovery,
    plan_seconds,
    record_discovery_speed,
    rounded_seconds,
    turtle_seconds,
)
from turtle_core.embedding.rates import (
    CPU_LITE0_IMAGES_PER_S,
    embedding_rate,
    record_embedding_rate,
    uncached_counts,
)


def test_turtle_time_follows_the_plan_the_folder_and_the_range() -> None:
    quick, standard = EFFORTS["quick"], EFFORTS["standard"]
    # standard: the same three quick selections and k-means runs, then three 3,000-step final runs
    assert 1.5 * turtle_seconds(2000, 10, quick) < turtle_seconds(2000, 10, standard)
    assert turtle_seconds(2000, 10, standard) < 4 * turtle_seconds(2000, 10, quick)
    assert (
        turtle_seconds(12, 3, standard) < turtle_seconds(300, 3, standard) < turtle_seconds(2000, 3, standard)
    )
    assert turtle_seconds(10_000, 10, standard) > turtle_seconds(2000, 10, standard)
    # batches stop at 4,096 rows and, above 50,000 images, TURTLE and k-means run on a 50,000-image sample
    assert turtle_seconds(200_000, 10, standard) < 1.5 * turtle_seconds(50_000, 10, standard)
    assert turtle_seconds(2000, (5, 15), standard) > 5 * turtle_seconds(2000, 10, standard)
    assert turtle_seconds(2000, 100, standard) > 5 * turtle_seconds(2000, 10, standard)
    assert turtle_seconds(2000, 10, standard, "turtle") < turtle_seconds(
        2000, 10, standard
    )  # no k-means runs


def test_the_estimate_prices_the_plan_discover_runs() -> None:
    standard = EFFORTS["standard"]
    plan = discovery_plan(standard, "auto", 0, 2000)
    parts = plan_seconds(plan, 10, 2000, [1280])
    assert len(parts.turtle_s) == len(plan.selections) + 1  # the three quick selections, then the final runs
    assert parts.turtle_s[0] == parts.turtle_s[1] == parts.turtle_s[2] and parts.stability_s > 0
    assert discovery_seconds(2000, 10, standard) == pytest.approx(parts.total_s + parts.finish_s)


def test_the_estimate_says_what_skipping_the_final_runs_saves() -> None:
    """A standard discovery that keeps k-means' partition skips its final runs: the estimate gives both
    figures, and prices a forced k-means partition without them."""
    quick, standard = EFFORTS["quick"], EFFORTS["standard"]
    plan = plan_seconds(discovery_plan(standard, "auto", 0, 2000), 10, 2000, [1280])
    without = discovery_seconds(2000, 10, standard, final_runs=False)
    assert without == pytest.approx(discovery_seconds(2000, 10, standard) - plan.turtle_s[-1])
    assert discovery_seconds(2000, 10, standard, "kmeans") < discovery_seconds(2000, 10, standard, "turtle")
    guess = estimate_discovery(2000, ["effnet-lite0"], standard, 10)
    assert guess.turtle_s_if_kmeans == pytest.approx(turtle_seconds(2000, 10, standard, final_runs=False))
    assert guess.turtle_s_if_kmeans < 0.7 * guess.turtle_s
    assert estimate_discovery(2000, ["effnet-lite0"], quick, 10).turtle_s_if_kmeans is None  # no final runs
    assert (
        estimate_discovery(2000, ["effnet-lite0"], standard, 10, partition="turtle").turtle_s_if_kmeans
        is None
    )
    # with a range of C the final runs settle C, so they always run
    assert estimate_discovery(2000, ["effnet-lite0"], standard, (5, 8)).turtle_s_if_kmeans is None


def test_this_machines_speed_scales_the_estimate() -> None:
    quick = EFFORTS["quick"]
    reference = discovery_seconds(2000, 10, quick)
    assert turtle_seconds(2000, 10, quick) == pytest.approx(reference)  # nothing measured yet
    record_discovery_speed(1.0, 30.0)  # a discovery expected in 1 s says too little (imports dominate it)
    assert discovery_speed() == 1.0
    record_discovery_speed(reference, 2.5 * reference)
    assert discovery_speed() == pytest.approx(2.5, rel=1e-3)
    assert turtle_seconds(2000, 10, quick) == pytest.approx(2.5 * reference, rel=1e-3)
    record_discovery_speed(reference, 1.5 * reference)  # half the new ratio, half the remembered one
    assert discovery_speed() == pytest.approx(2.0, rel=1e-3)


def test_embedding_dominates_until_cached_and_measured_rates_replace_the_defaults() -> None:
    effort = EFFORTS["quick"]
    cold = estimate_discovery(2000, ["effnet-lite0"], effort, 10)
    assert cold.to_embed == {"effnet-lite0": 2000}
    assert cold.embed_s == pytest.approx(2000 / CPU_LITE0_IMAGES_PER_S, rel=0.1)
    cached = estimate_discovery(2000, ["effnet-lite0"], effort, 10, to_embed={"effnet-lite0": 0})
    assert cached.embed_s == 0 and cached.turtle_s == cold.turtle_s
    assert embedding_rate("effnet-lite0") == (CPU_LITE0_IMAGES_PER_S, False)
    assert embedding_rate("clip-vit-l14")[0] < embedding_rate("clip-vit-b32")[0] < CPU_LITE0_IMAGES_PER_S

    record_embedding_rate("effnet-lite0", "cpu", images=10, seconds=1.0)  # too few images to say
    assert embedding_rate("effnet-lite0")[1] is False
    record_embedding_rate("effnet-lite0", "cpu", images=500, seconds=10.0)
    assert embedding_rate("effnet-lite0") == (50.0, True)
    assert estimate_discovery(2000, ["effnet-lite0"], effort, 10).embed_s < cold.embed_s


def test_uncached_counts_read_the_cache_without_loading_weights() -> None:
    from turtle_core.embedding.backbones import weights_fingerprint
    from turtle_core.embedding.cache import IDENTITY_MEMO, EmbeddingCache, IdentityMemo
    from turtle_core.paths import embedding_cache_dir

    assert uncached_counts(["a", "b", "b"], ["effnet-lite0"]) == {"effnet-lite0": 2}  # never loaded
    weights = weights_fingerprint("effnet-lite0")
    assert weights, "the offline backbone's weights ship with the app"
    IdentityMemo(embedding_cache_dir() / IDENTITY_MEMO).put(weights, "effnet-lite0-test")
    EmbeddingCache(embedding_cache_dir() / "effnet-lite0-test").add(["a"], np.ones((1, 4), np.float32))
    assert uncached_counts(["a", "b", "b"], ["effnet-lite0"]) == {"effnet-lite0": 1}


def test_rounded_seconds_never_rounds_down() -> None:
    assert rounded_seconds(61) == 65
    assert rounded_seconds(119) == 120
    assert rounded_seconds(121) == 150
    assert rounded_seconds(1900) == 2100
