"""The row-chunked paths that run on a GPU (projection, k-means assignment, soft labels, TF32 matmuls),
checked on the CPU against the host paths they replace there: the same functions, only the device differs."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from turtle_core.discovery import engine, metrics, runtime
from turtle_core.discovery.features import SpacePreprocessor
from turtle_core.discovery.groups import group_means
from turtle_core.discovery.turtle import Turtle

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def small_chunks() -> None:
    """Chunks of 37 rows, so that every path joins several chunks and a short last one."""
    with mock.patch.object(runtime, "DEVICE_CHUNK_ROWS", 37):
        yield


@pytest.fixture
def spaces() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=(500, 12)).astype(np.float32), rng.normal(size=(500, 20)).astype(np.float32)]


def test_map_rows_gives_what_one_call_on_every_row_gives(spaces: list[np.ndarray]) -> None:
    def fn(blocks: list[torch.Tensor]) -> torch.Tensor:
        return blocks[0].sum(1, keepdim=True) * blocks[1][:, :3]

    whole = fn([torch.from_numpy(X) for X in spaces]).numpy()
    chunked = runtime.map_rows(spaces, fn, CPU)
    assert chunked.shape == (500, 3) and chunked.dtype == np.float32
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)


def test_soft_labels_on_a_device_match_the_host_path(spaces: list[np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=(6, X.shape[1])).astype(np.float32) for X in spaces]
    biases = [rng.normal(size=6).astype(np.float32) for _ in spaces]
    host = engine.head_probabilities(spaces, weights, biases)
    chunked = engine._head_probabilities_on(spaces, weights, biases, CPU)
    assert chunked.dtype == np.float32
    np.testing.assert_allclose(chunked, host, atol=1e-6)
    np.testing.assert_allclose(chunked.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("method", ["pca", "whiten", "whiten_l2"])
def test_projection_on_a_device_matches_the_host_path(spaces: list[np.ndarray], method: str) -> None:
    fitted = SpacePreprocessor(method, 6).fit(spaces[1])
    np.testing.assert_allclose(fitted._transform_on(spaces[1], CPU), fitted.transform(spaces[1]), atol=1e-5)


@pytest.mark.parametrize("normalize", [False, True])
def test_kmeans_assignment_on_a_device_is_sklearn_nearest_centre(
    spaces: list[np.ndarray], normalize: bool
) -> None:
    rows = np.arange(0, 500, 3)
    sample = metrics._side_by_side([X[rows] for X in spaces], normalize)
    model = KMeans(5, n_init=1, random_state=0).fit(sample)
    expected = model.predict(metrics._side_by_side(spaces, normalize))
    assigned = metrics._nearest_centres(spaces, model.cluster_centers_, normalize, CPU)
    assert assigned.dtype == np.int64
    assert (assigned == expected).mean() == 1.0


def test_group_means_are_each_groups_mean_and_zero_for_an_empty_group() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 7)).astype(np.float32)
    groups = rng.integers(0, 4, 300)  # group 4 has no row
    means = group_means(X, groups, 5)
    assert means.shape == (5, 7) and means.dtype == np.float32
    for g in range(4):
        np.testing.assert_allclose(means[g], X[groups == g].mean(0), atol=1e-5)
    assert not means[4].any()


def test_tf32_is_on_while_any_cuda_fit_runs_and_put_back_after_the_last() -> None:
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        cuda = torch.device("cuda")
        first, second = runtime.tf32_matmuls(cuda), runtime.tf32_matmuls(cuda)
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # the first to start ends first: the second still runs
        assert torch.backends.cuda.matmul.allow_tf32
        second.__exit__(None, None, None)
        assert not torch.backends.cuda.matmul.allow_tf32
        with runtime.tf32_matmuls(CPU):
            assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_tf32_is_the_default_and_on_the_cpu_the_same_fit_as_fp32(spaces: list[np.ndarray]) -> None:
    assert Turtle(3).precision == "tf32"
    tf32 = Turtle(3, outer_steps=40, random_state=0, device="cpu").fit(spaces)
    fp32 = Turtle(3, outer_steps=40, random_state=0, device="cpu", precision="fp32").fit(spaces)
    np.testing.assert_array_equal(tf32.labels_, fp32.labels_)
    np.testing.assert_allclose(tf32.probabilities_, fp32.probabilities_, atol=1e-6)
