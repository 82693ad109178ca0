"""Label-free model selection: the generalisation score, its chance correction and the choice of C."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_turtle import make_blobs

from turtle_core.discovery.metrics import hungarian_accuracy
from turtle_core.discovery.selection import (
    DEFAULT_GRID,
    DEFAULT_RESTARTS,
    PAPER_GRID,
    Candidate,
    choose,
    generalization_details,
    generalization_score,
    select_model,
    set_agreements,
    train_final_runs,
    used_clusters,
)
from turtle_core.progress import Cancelled, Progress

FAST = {"outer_steps": 300}
ONE_POINT = [{"warm_start": True, "inner_lr": 1e-3, "outer_lr": 1e-3}]


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def test_score_separates_true_from_random_labels() -> None:
    spaces, truth = make_blobs(n=600, n_clusters=4, dims=(10, 12), seed=2)
    true_score = generalization_score(spaces, truth)
    random_labels = np.random.default_rng(0).integers(0, 4, truth.size)
    random_score = generalization_score(spaces, random_labels)
    assert true_score >= 0.98
    assert random_score <= 0.4
    details = generalization_details(spaces, random_labels)
    assert abs(details.kappa) < 0.1
    assert details.chance == pytest.approx(((np.bincount(random_labels) / truth.size) ** 2).sum())
    assert len(details.per_space) == 2


def test_score_handles_tiny_clusters_and_one_cluster() -> None:
    spaces, truth = make_blobs(n=200, n_clusters=4, dims=(6,), seed=3)
    labels = truth.copy()
    labels[:3] = 7  # a three-member cluster: fewer members than folds
    details = generalization_details(spaces, labels, n_folds=10)
    assert 0.5 < details.accuracy <= 1.0
    assert details.accuracy < generalization_details(spaces, truth, n_folds=10).accuracy
    single = generalization_details(spaces, np.zeros(200, dtype=int))
    assert single.accuracy == 1.0 and single.kappa == 0.0
    with pytest.raises(ValueError, match="labels"):
        generalization_score(spaces, truth[:10])


def test_kappa_removes_the_small_c_advantage_of_random_labels() -> None:
    spaces, _ = make_blobs(n=600, n_clusters=4, dims=(10,), seed=4)
    rng = np.random.default_rng(1)
    raw, kappa = {}, {}
    for k in (2, 8):
        details = generalization_details(spaces, rng.integers(0, k, 600))
        raw[k], kappa[k] = details.accuracy, details.kappa
    assert raw[2] > raw[8] + 0.25  # meaningless labels score higher when there are fewer of them
    assert abs(kappa[2] - kappa[8]) < 0.1  # ...but not after the chance correction


def test_select_model_picks_the_true_number_of_clusters() -> None:
    spaces, truth = make_blobs(n=1000, n_clusters=5, dims=(16, 24), seed=5)
    reports: list[Progress] = []
    result = select_model(
        spaces, (2, 8), grid=ONE_POINT, n_restarts=2, n_screen=4, turtle_params=FAST, progress=reports.append
    )
    assert result.best_n_clusters == 5
    assert sorted(result.scores_by_k) == list(range(2, 9))
    # One run per C, then a second restart for the two best-scoring values of C only.
    assert len(result.candidates) == 7 + 2
    assert sorted(c.n_clusters for c in result.candidates[7:]) == sorted(
        sorted(
            result.scores_by_k, key=lambda k: max(c.score for c in result.candidates[:7] if c.n_clusters == k)
        )[-2:]
    )
    assert {c.params["random_state"] for c in result.candidates} <= {0, 1, 2, 3}
    assert hungarian_accuracy(truth, result.best.labels_) >= 0.95
    assert result.best.n_clusters == 5
    assert {k: v for k, v in result.best_params.items() if k not in ("random_state", "init")} == ONE_POINT[0]
    assert result.best_params["init"] in ("kmeans", "kmeans_cosine")
    assert result.scores_by_k[5] == max(result.scores_by_k.values())
    select_reports = [r for r in reports if r.stage == "select"]
    # Progress counts steps: 4 screening runs of 300 // 5 steps per C, then the 9 full runs.
    assert len(result.screened) == 7 * 4
    assert select_reports[-1].done == select_reports[-1].total == 7 * 4 * 60 + 9 * FAST["outer_steps"]
    # The chosen model predicts raw (unpreprocessed) rows.
    np.testing.assert_array_equal(result.best.predict(spaces), result.best.labels_)


def test_select_model_with_fixed_c_and_grid_options() -> None:
    spaces, truth = make_blobs(n=500, n_clusters=3, dims=(8,), seed=6)
    result = select_model(spaces, 3, turtle_params=FAST)
    assert result.best_n_clusters == 3
    assert len(result.candidates) == len(DEFAULT_GRID) * DEFAULT_RESTARTS
    best = max(result.candidates, key=lambda c: c.score)
    np.testing.assert_array_equal(best.labels, result.best.labels_)
    assert hungarian_accuracy(truth, result.best.labels_) >= 0.95
    assert len(PAPER_GRID) == 50
    with pytest.raises(ValueError, match="grid"):
        select_model(spaces, 3, grid="huge")
    with pytest.raises(ValueError, match="between 2"):
        select_model(spaces, (1, 4))


def test_select_model_cancels() -> None:
    spaces, _ = make_blobs(n=300, n_clusters=3, dims=(8,), seed=7)
    cancel = threading.Event()

    def stop_after_first(report: Progress) -> None:
        if report.stage == "select" and report.done >= 1:
            cancel.set()

    with pytest.raises(Cancelled):
        select_model(
            spaces, (2, 5), grid=ONE_POINT, turtle_params=FAST, progress=stop_after_first, cancel=cancel
        )


def test_screening_starts_the_full_runs_from_the_best_scoring_seeds() -> None:
    spaces, truth = make_blobs(n=600, n_clusters=4, dims=(12,), seed=8)
    reports: list[Progress] = []
    result = select_model(
        spaces, 4, n_restarts=2, n_screen=5, screen_steps=40, turtle_params=FAST, progress=reports.append
    )
    assert [c.params["random_state"] for c in result.screened] == [0, 1, 2, 3, 4]
    assert [c.params["init"] for c in result.screened] == ["kmeans", "kmeans_cosine"] * 2 + ["kmeans"]
    ranked = sorted(result.screened, key=lambda c: c.score, reverse=True)
    assert [c.params["random_state"] for c in result.candidates] == [
        c.params["random_state"] for c in ranked[:2]
    ]
    assert hungarian_accuracy(truth, result.best.labels_) >= 0.95
    select_reports = [r for r in reports if r.stage == "select"]
    assert select_reports[-1].done == select_reports[-1].total == 5 * 40 + 2 * FAST["outer_steps"]
    # Random initialisation is not screened: the seeds are the restarts themselves.
    plain = select_model(spaces, 4, n_restarts=2, n_screen=5, turtle_params={**FAST, "init": "random"})
    assert plain.screened == [] and [c.params["random_state"] for c in plain.candidates] == [0, 1]


def test_near_ties_go_to_more_used_clusters_then_smaller_c() -> None:
    five = np.repeat(np.arange(5), 100)
    merged = np.minimum(five, 3)  # two true groups merged: 4 clusters, equally separable
    padded = five.copy()  # C = 8 asked, 3 clusters left empty
    padded[:1] = 7  # one stray row does not make a cluster
    assert used_clusters(five, 5) == 5
    assert used_clusters(merged, 4) == 4
    assert used_clusters(padded, 8) == 5
    candidates = [
        Candidate(4, {}, 1.0, merged, n_used=4),
        Candidate(5, {}, 0.998, five, n_used=5),
        Candidate(8, {}, 0.999, padded, n_used=5),
        Candidate(3, {}, 0.97, np.minimum(five, 2), n_used=3),
    ]
    assert choose(candidates).n_clusters == 5
    assert choose(candidates, tolerance=0.0).n_clusters == 4


def test_among_near_ties_of_one_c_the_run_the_others_agree_with_wins() -> None:
    truth = np.repeat(np.arange(4), 50)
    rng = np.random.default_rng(0)
    stray = truth.copy()
    stray[rng.choice(200, 60, replace=False)] = rng.integers(0, 4, 60)
    runs = [
        Candidate(4, {"random_state": 0}, 0.9977, stray, n_used=4),
        Candidate(4, {"random_state": 1}, 0.9973, truth, n_used=4),
        Candidate(4, {"random_state": 2}, 0.9969, truth.copy(), n_used=4),
    ]
    set_agreements(runs)
    assert runs[1].agreement == pytest.approx((1.0 + runs[0].agreement) / 2)
    assert runs[1].agreement > runs[0].agreement
    assert choose(runs).params["random_state"] == 1
    assert choose(runs, tolerance=0.0).params["random_state"] == 0  # no tie: the score decides


# What select_model chose on this problem before it was split into steps (screen, train, choose): the
# full runs' starts in training order, the chosen run and its labels. Same seeds, same result.
BEFORE_THE_SPLIT = {
    "range": (
        [(3, 5, "kmeans"), (4, 5, "kmeans"), (5, 3, "kmeans"), (3, 3, "kmeans"), (4, 4, "kmeans_cosine")],
        (4, 4, "kmeans_cosine"),
    ),
    "fixed": ([(4, 5, "kmeans"), (4, 4, "kmeans_cosine"), (4, 8, "kmeans_cosine")], (4, 4, "kmeans_cosine")),
}
LABELS_BEFORE_THE_SPLIT = (
    "033130011101203211021103103201013301032302113232203223302231212002330003013212232022011312130110"
    "121122303123001220302103300133222102121120200032012131311231111033121110103210330333103123202220"
    "333011321230013331223130232300020021020001223331"
)


@pytest.mark.parametrize(
    ("case", "settings"),
    [
        (
            "range",
            {"n_clusters": (3, 5), "n_restarts": 2, "n_screen": 4, "turtle_params": {"outer_steps": 150}},
        ),
        (
            "fixed",
            {
                "n_clusters": 4,
                "n_restarts": 3,
                "n_screen": 6,
                "screen_steps": 25,
                "turtle_params": {"outer_steps": 120},
            },
        ),
    ],
)
def test_same_seeds_give_the_same_selection_as_before_the_split(case: str, settings: dict) -> None:
    spaces, truth = make_blobs(n=240, n_clusters=4, dims=(6, 8), sep=1.6, seed=21)  # overlapping blobs
    settings = dict(settings)
    result = select_model(spaces, settings.pop("n_clusters"), random_state=3, **settings)
    runs, best = BEFORE_THE_SPLIT[case]
    assert [(c.n_clusters, c.params["random_state"], c.params["init"]) for c in result.candidates] == runs
    assert (result.best_n_clusters, result.best_params["random_state"], result.best_params["init"]) == best
    assert "".join(map(str, result.best.labels_)) == LABELS_BEFORE_THE_SPLIT
    assert hungarian_accuracy(truth, result.best.labels_) >= 0.95


def test_final_runs_train_each_selections_best_start_for_longer() -> None:
    spaces, truth = make_blobs(n=300, n_clusters=4, dims=(10,), sep=2.5, seed=13)
    short = {"n_restarts": 1, "n_screen": 3, "turtle_params": {"outer_steps": 100, "batch_size": 300}}
    selections = [select_model(spaces, 4, random_state=seed, **short) for seed in (0, 1)]
    same = train_final_runs(spaces, 4, selections, 2, outer_steps=100, batch_size=300)
    picked = [(s.best_params["random_state"], s.best_params["init"]) for s in selections]
    assert [(c.params["random_state"], c.params["init"]) for c in same.candidates] == picked
    for run, selection in zip(same.candidates, selections, strict=True):  # same start, same steps: same run
        np.testing.assert_array_equal(run.labels, selection.best.labels_)
    longer = train_final_runs(spaces, 4, selections, 2, outer_steps=400, batch_size=300)
    assert longer.best.n_iter_ == 400 and len(longer.candidates) == 2
    assert hungarian_accuracy(truth, longer.best.labels_) >= 0.95
