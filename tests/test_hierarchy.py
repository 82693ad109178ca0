"""The merge tree over cluster centroids: groups, cuts, the label-free suggested count, merge suggestions."""

from __future__ import annotations

import numpy as np
import pytest

from turtle_core.discovery.hierarchy import cluster_centroids, merge_tree
from turtle_core.discovery.metrics import hungarian_accuracy


def _overclustered_blobs(n_classes: int, parts: int, seed: int = 0, dim: int = 32):
    """Well-separated classes, each cut by k-means into `parts` clusters: (features, truth, cluster ids)."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 4
    truth = np.repeat(np.arange(n_classes), 120)
    features = centres[truth] + rng.normal(size=(truth.size, dim))
    labels = KMeans(n_classes * parts, n_init=3, random_state=seed).fit_predict(features)
    return features.astype(np.float32), truth, labels


@pytest.mark.parametrize("geometry", ["whiten", "l2"])
@pytest.mark.parametrize("linkage", ["ward", "average"])
@pytest.mark.parametrize("n_classes", [3, 5, 8])
def test_cut_at_true_count_recovers_the_classes_and_the_gap_finds_it(
    linkage: str, geometry: str, n_classes: int
) -> None:
    features, truth, labels = _overclustered_blobs(n_classes, parts=3, seed=n_classes)
    tree = merge_tree([features], labels, linkage=linkage, geometry=geometry)  # type: ignore[arg-type]
    assert tree.n_clusters == n_classes * 3
    assert len(tree.steps) == tree.n_clusters - 1
    assert hungarian_accuracy(truth, tree.relabel(labels, n_classes)) > 0.99
    assert tree.suggested_n_groups() == n_classes


def test_groups_partition_the_clusters_and_nest() -> None:
    features, _, labels = _overclustered_blobs(4, parts=3)
    tree = merge_tree([features], labels)
    ids = sorted(set(labels.tolist()))
    previous = None
    for k in range(tree.n_clusters, 0, -1):
        groups = tree.groups(k)
        assert len(groups) == k
        assert sorted(c for g in groups for c in g) == ids
        if previous is not None:  # a coarser cut only joins groups of the finer one
            for group in previous:
                assert any(set(group) <= set(g) for g in groups)
        previous = groups
    with pytest.raises(ValueError, match="choose 1 to 12"):
        tree.groups(13)


def test_heights_rise_and_suggestions_are_the_first_merges() -> None:
    features, truth, labels = _overclustered_blobs(3, parts=2)
    tree = merge_tree([features], labels)
    assert np.all(np.diff(tree.heights) >= -1e-9)
    first = tree.suggestions(3)
    assert first == list(tree.steps[:3])
    for step in first:  # the closest clusters come from the same class
        left, right = step.left[0], step.right[0]
        assert np.bincount(truth[labels == left]).argmax() == np.bincount(truth[labels == right]).argmax()


def test_relabel_keeps_excluded_and_uses_the_largest_cluster_id() -> None:
    features, _, labels = _overclustered_blobs(2, parts=2)
    assign = labels.copy()
    assign[:5] = -1
    tree = merge_tree([features], assign)
    merged = tree.relabel(assign, 2)
    assert (merged[:5] == -1).all()
    for group in tree.groups(2):
        sizes = [(assign == c).sum() for c in group]
        assert group[0] == group[int(np.argmax(sizes))]
        assert set(np.unique(merged[np.isin(assign, group)])) == {group[0]}


def test_centroids_weight_every_space_equally_and_check_shapes() -> None:
    assign = np.array([0, 0, 1, 1])
    big = np.array([[10.0, 0], [10.0, 0], [0, 10.0], [0, 10.0]])
    small = np.array([[1.0, 0], [1.0, 0], [1.0, 0], [1.0, 0]])
    centroids = cluster_centroids([big, small], assign, [0, 1], geometry="l2")
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        cluster_centroids([big[:3]], assign, [0, 1])
    with pytest.raises(ValueError, match="no images"):
        cluster_centroids([big], assign, [0, 7])
    with pytest.raises(ValueError, match="unknown geometry"):
        cluster_centroids([big], assign, [0, 1], geometry="pca")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown linkage"):
        merge_tree([big], assign, linkage="single")  # type: ignore[arg-type]


def test_whitened_spaces_computed_once_give_the_same_tree() -> None:
    from turtle_core.discovery.hierarchy import whitened_spaces

    features, _, labels = _overclustered_blobs(4, parts=2)
    direct = merge_tree([features], labels, geometry="whiten")
    reused = merge_tree(whitened_spaces([features], 8), labels, geometry="l2")
    assert direct.steps == reused.steps


def test_suggestions_skip_merges_inside_a_set_kept_apart() -> None:
    features, _, labels = _overclustered_blobs(3, parts=2)
    tree = merge_tree([features], labels)
    first = tree.steps[0]
    halves = frozenset(first.left) | frozenset(first.right)
    kept = tree.suggestions(3, apart=[halves])
    assert first not in kept and len(kept) == 3
    assert kept == [s for s in tree.steps if not set(s.left) | set(s.right) <= halves][:3]
