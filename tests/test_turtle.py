"""TURTLE on easy synthetic data, the hand-written gradients against autograd, and the estimator contract."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from turtle_core.discovery.features import PREPROCESSING_METHODS, SpacePreprocessor, prepare_space
from turtle_core.discovery.metrics import hungarian_accuracy
from turtle_core.discovery.turtle import Turtle, TurtleEngine
from turtle_core.progress import Cancelled, Progress

STEPS = 300


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def make_blobs(
    n: int = 1200, n_clusters: int = 5, dims: tuple[int, ...] = (16, 24), sep: float = 4.0, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Well-separated Gaussian blobs seen in several feature spaces (one centre set per space)."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(n_clusters), n // n_clusters)
    rng.shuffle(truth)
    spaces = []
    for d in dims:
        centers = rng.normal(size=(n_clusters, d)) * sep
        spaces.append((centers[truth] + rng.normal(size=(truth.size, d))).astype(np.float32))
    return spaces, truth


@pytest.fixture(scope="module")
def blobs() -> tuple[list[np.ndarray], np.ndarray]:
    return make_blobs()


@pytest.fixture(scope="module")
def fitted(blobs: tuple[list[np.ndarray], np.ndarray]) -> Turtle:
    spaces, _ = blobs
    return Turtle(5, outer_steps=STEPS, random_state=0).fit(spaces)


def test_two_spaces_recover_blobs(fitted: Turtle, blobs: tuple[list[np.ndarray], np.ndarray]) -> None:
    _, truth = blobs
    assert hungarian_accuracy(truth, fitted.labels_) >= 0.95
    assert fitted.n_features_in_ == [16, 24]
    assert fitted.probabilities_.shape == (truth.size, 5)
    np.testing.assert_allclose(fitted.probabilities_.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fitted.confidence_, fitted.probabilities_.max(1))
    assert [w.shape for w in fitted.head_weights_] == [(5, 16), (5, 24)]
    assert fitted.n_iter_ == STEPS
    assert [h["step"] for h in fitted.history_] == [100, 200, 300]
    assert all(np.isfinite(h["loss"]) for h in fitted.history_)


def test_predict_proba_agrees_with_training_labels(
    fitted: Turtle, blobs: tuple[list[np.ndarray], np.ndarray]
) -> None:
    spaces, _ = blobs
    proba = fitted.predict_proba(spaces)
    np.testing.assert_allclose(proba, fitted.probabilities_, atol=1e-5)
    np.testing.assert_array_equal(fitted.predict(spaces), fitted.labels_)
    # New rows from the same blobs land in the same clusters as their neighbours.
    new_spaces = [torch.from_numpy(X[:50] + 0.01) for X in spaces]
    np.testing.assert_array_equal(fitted.predict(new_spaces), fitted.labels_[:50])
    with pytest.raises(ValueError, match="dimensions"):
        fitted.predict_proba([spaces[1], spaces[0]])


def test_one_space_works(blobs: tuple[list[np.ndarray], np.ndarray]) -> None:
    spaces, truth = blobs
    model = Turtle(5, outer_steps=STEPS, random_state=0).fit([spaces[0]])
    assert hungarian_accuracy(truth, model.labels_) >= 0.95


def test_cold_start_works(blobs: tuple[list[np.ndarray], np.ndarray]) -> None:
    spaces, truth = blobs
    model = Turtle(5, outer_steps=STEPS, warm_start=False, inner_lr=5e-2, random_state=0).fit(spaces)
    assert hungarian_accuracy(truth, model.labels_) >= 0.95


def test_kmeans_init_starts_at_the_nearest_centroid_rule(blobs: tuple[list[np.ndarray], np.ndarray]) -> None:
    spaces, truth = blobs
    start = Turtle(5, outer_steps=0, init="kmeans", random_state=0).fit(spaces)
    assert hungarian_accuracy(truth, start.labels_) >= 0.95  # k-means alone solves these blobs
    trained = Turtle(5, outer_steps=100, init="kmeans", random_state=0).fit(spaces)
    assert hungarian_accuracy(truth, trained.labels_) >= 0.95
    with pytest.raises(ValueError, match="init"):
        Turtle(5, init="spectral").fit(spaces)


def test_random_state_reproduces_labels(blobs: tuple[list[np.ndarray], np.ndarray]) -> None:
    spaces, _ = blobs
    sub = [X[:400] for X in spaces]
    first = Turtle(5, outer_steps=60, batch_size=256, warm_start=False, random_state=3).fit(sub)
    second = Turtle(5, outer_steps=60, batch_size=256, warm_start=False, random_state=3).fit(sub)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.head_weights_[0], second.head_weights_[0])
    other = Turtle(5, outer_steps=60, batch_size=256, warm_start=False, random_state=4).fit(sub)
    assert not np.array_equal(first.head_weights_[0], other.head_weights_[0])


def test_params_round_trip_and_unseeded_fits_draw_afresh(blobs: tuple[list[np.ndarray], np.ndarray]) -> None:
    spaces, _ = blobs
    model = Turtle(5, init="kmeans_cosine")
    assert model.get_params()["init"] == "kmeans_cosine"
    assert model.set_params(init="random").init == "random"
    sub = [X[:400] for X in spaces]
    unseeded = Turtle(5, outer_steps=20, batch_size=256, warm_start=False)
    first = unseeded.fit(sub).head_weights_[0].copy()
    assert not np.array_equal(first, unseeded.fit(sub).head_weights_[0])


def test_minibatches_smaller_than_the_data(blobs: tuple[list[np.ndarray], np.ndarray]) -> None:
    spaces, truth = blobs
    model = Turtle(5, outer_steps=STEPS, batch_size=500, random_state=0).fit(spaces)
    assert hungarian_accuracy(truth, model.labels_) >= 0.95


def _size_entropy(labels: np.ndarray) -> float:
    p = np.bincount(labels) / labels.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize("init", ["random", "kmeans", "kmeans_cosine"])
def test_entropy_term_prevents_collapse(init: str) -> None:
    spaces, truth = make_blobs(n=600, n_clusters=4, dims=(8,), sep=1.0, seed=1)
    kwargs = {"outer_steps": 400, "outer_lr": 1e-2, "random_state": 0, "init": init}
    with_entropy = Turtle(4, 10.0, **kwargs).fit(spaces)
    without = Turtle(4, 0.0, **kwargs).fit(spaces)
    assert len(np.unique(with_entropy.labels_)) == 4
    assert np.bincount(with_entropy.labels_).min() >= 0.1 * truth.size
    # Without the entropy term the labeling drifts toward the trivial "one big cluster" solution.
    assert _size_entropy(with_entropy.labels_) > _size_entropy(without.labels_) + 0.1
    assert np.bincount(without.labels_, minlength=4).min() < 0.5 * np.bincount(with_entropy.labels_).min()


def test_progress_reaches_total_and_cancel_raises(blobs: tuple[list[np.ndarray], np.ndarray]) -> None:
    spaces, _ = blobs
    reports: list[Progress] = []
    Turtle(5, outer_steps=120, random_state=0, progress=reports.append).fit(spaces)
    assert reports[-1].stage == "turtle"
    assert reports[-1].done == reports[-1].total == 120
    assert all(r.done <= r.total for r in reports)

    cancel = threading.Event()

    def cancel_soon(report: Progress) -> None:
        if report.done >= 50:
            cancel.set()

    with pytest.raises(Cancelled):
        Turtle(5, outer_steps=10_000, random_state=0, progress=cancel_soon, cancel=cancel).fit(spaces)
    cancel.set()
    with pytest.raises(Cancelled):
        Turtle(5, outer_steps=10, cancel=cancel).fit(spaces)


def test_bad_inputs_give_clear_errors(blobs: tuple[list[np.ndarray], np.ndarray]) -> None:
    spaces, _ = blobs
    with pytest.raises(TypeError, match="list of feature spaces"):
        Turtle(3).fit(spaces[0])
    with pytest.raises(ValueError, match="same number of rows"):
        Turtle(3).fit([spaces[0], spaces[1][:10]])
    with pytest.raises(ValueError, match="n_clusters"):
        Turtle(1).fit(spaces)
    with pytest.raises(ValueError, match="NaN"):
        Turtle(3).fit([np.full((10, 3), np.nan)])
    with pytest.raises(RuntimeError, match="not fitted"):
        Turtle(3).predict(spaces)


def _autograd_reference(
    engine: TurtleEngine, spaces: list[np.ndarray], steps: int, lr: float, inner_steps: int
) -> list:
    """The same outer steps written with autograd, nn-style parameters and torch.optim.Adam."""
    xs = [torch.from_numpy(X) for X in spaces]
    heads = [
        (th[:, :d].clone(), th[:, d].clone(), th[:, d + 1].clone())
        for th, d in zip(engine.theta_k, engine.dims, strict=True)
    ]
    params = [p.requires_grad_() for head in heads for p in head]
    outer = torch.optim.Adam(params, lr=lr)
    inner = [
        (w[:, :d].clone().requires_grad_(), w[:, d].clone().requires_grad_())
        for w, d in zip(engine.inner_k, engine.dims, strict=True)
    ]
    inner_opt = torch.optim.Adam([p for pair in inner for p in pair], lr=lr)
    for _ in range(steps):
        probs = [
            F.softmax(x @ (g[:, None] * v / v.norm(dim=1, keepdim=True)).T + b, 1)
            for x, (v, b, g) in zip(xs, heads, strict=True)
        ]
        tau = torch.stack(probs).mean(0)
        for _ in range(inner_steps):
            inner_opt.zero_grad()
            sum(
                F.cross_entropy(x @ w.T + b, tau.detach()) for x, (w, b) in zip(xs, inner, strict=True)
            ).backward()
            inner_opt.step()
        with torch.no_grad():
            log_q = [F.log_softmax(x @ w.T + b, 1) for x, (w, b) in zip(xs, inner, strict=True)]
        cross_entropy = sum(-(tau * lq).sum(1).mean() for lq in log_q)
        entropy = sum(-(p.mean(0) * p.mean(0).log()).sum() for p in probs)
        outer.zero_grad()
        (cross_entropy - engine.gamma * entropy).backward()
        outer.step()
    return heads


def test_hand_written_step_matches_autograd() -> None:
    rng = np.random.default_rng(0)
    spaces = [rng.normal(size=(200, 7)).astype(np.float32), rng.normal(size=(200, 5)).astype(np.float32)]
    engine = TurtleEngine(spaces, 4, 10.0, 3, 10_000, 1e-2, 1e-2, True, "fp32", torch.device("cpu"), seed=0)
    heads = _autograd_reference(engine, spaces, steps=4, lr=1e-2, inner_steps=3)
    with torch.no_grad():
        engine.prepare_chunk(4)
        engine.run_chunk(4)
    for th, d, (v, b, g) in zip(engine.theta_k, engine.dims, heads, strict=True):
        torch.testing.assert_close(th[:, :d], v.detach(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(th[:, d], b.detach(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(th[:, d + 1], g.detach(), atol=1e-5, rtol=1e-4)


def test_bf16_precision_runs(blobs: tuple[list[np.ndarray], np.ndarray]) -> None:
    spaces, truth = blobs
    model = Turtle(5, outer_steps=STEPS, precision="bf16", random_state=0).fit(spaces)
    assert hungarian_accuracy(truth, model.labels_) >= 0.95


@pytest.mark.parametrize("method", PREPROCESSING_METHODS)
def test_preprocessing_methods(method: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 12)).astype(np.float32) * np.arange(1, 13, dtype=np.float32) + 3.0
    Z = prepare_space(X, method, n_components=8)
    assert Z.dtype == np.float32 and Z.shape[0] == 60 and np.isfinite(Z).all()
    if method in ("pca", "whiten", "whiten_l2"):
        assert Z.shape[1] == 8
    if method in ("l2", "center_l2", "whiten_l2"):
        np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
    if method == "whiten":
        np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(8), atol=1e-3)
    fitted = SpacePreprocessor(method, n_components=8).fit(X)
    np.testing.assert_allclose(fitted.transform(X[:5]), Z[:5], rtol=1e-5, atol=1e-5)


def test_whitening_with_fewer_rows_than_dimensions() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 50)).astype(np.float32)
    Z = prepare_space(X, "whiten", n_components=256)
    assert Z.shape == (20, 19)  # rank of 20 centred rows
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(19), atol=1e-3)


@pytest.mark.parametrize("full_batch", [True, False])
def test_row_major_layout_matches_column_major(full_batch: bool) -> None:
    """Rows × features (row gathers: CUDA, and CPU minibatches) computes the same steps as features × rows
    (CPU, whole-folder batches), the layout each batch size gets by default."""
    rng = np.random.default_rng(1)
    spaces = [rng.normal(size=(300, 9)).astype(np.float32), rng.normal(size=(300, 4)).astype(np.float32)]
    batch = 300 if full_batch else 128
    heads = []
    for rows_major in (False, True):
        engine = TurtleEngine(
            spaces,
            3,
            10.0,
            2,
            batch,
            1e-2,
            1e-2,
            False,
            "fp32",
            torch.device("cpu"),
            seed=5,
            rows_major=rows_major,
        )
        with torch.no_grad():
            for _ in range(3):
                engine.prepare_chunk(4)
                engine.run_chunk(4)
        heads.append(engine.theta.clone())
    torch.testing.assert_close(heads[0], heads[1], atol=1e-5, rtol=1e-4)
    default = TurtleEngine(spaces, 3, 10.0, 2, batch, 1e-2, 1e-2, False, "fp32", torch.device("cpu"), seed=5)
    assert default.rows_major is not full_batch
