"""Near-duplicates: the neighbour graph (exact and approximate), the adaptive threshold, groups around a
kept image (no chaining), exact copies, and keep-one as one undoable edit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from turtle_core.cleaning.duplicates import (
    NeighbourGraph,
    build_neighbour_graph,
    distance_histogram,
    duplicate_groups,
    keep_priority,
)


def planted(n: int = 400, dims: int = 32, copies: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, dims)).astype(np.float32)
    sources = rng.choice(n, copies, replace=False)
    near = features[sources] + 0.05 * rng.normal(size=(copies, dims)).astype(np.float32)
    return np.vstack([features, near]), sources, np.arange(n, n + copies)


def brute_force(features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    distance = 1.0 - unit @ unit.T
    np.fill_diagonal(distance, np.inf)
    order = np.argsort(distance, axis=1)[:, :k]
    return order, np.take_along_axis(distance, order, 1)


def test_exact_neighbours_match_brute_force_and_the_threshold_adapts() -> None:
    features, _, _ = planted()
    graph = build_neighbour_graph([features], [f"{i:06d}" for i in range(len(features))], k=8)
    order, distance = brute_force(features, 8)
    assert graph.exact
    np.testing.assert_allclose(graph.distances, distance, atol=1e-5)
    assert (graph.indices == order).mean() > 0.99  # ties aside
    assert np.isclose(graph.default_threshold(0.5), 0.5 * np.median(distance[:, 0]), atol=1e-6)
    # Hashes in row order make nodes rows here. Scaling every feature changes no cosine distance: the threshold follows the folder, not the units.
    scaled = build_neighbour_graph([features * 7.0], [f"{i:06d}" for i in range(len(features))], k=8)
    assert np.isclose(scaled.default_threshold(), graph.default_threshold(), atol=1e-6)


def test_two_spaces_average_their_cosine_distances() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 8)), rng.normal(size=(50, 5))
    graph = build_neighbour_graph([a, b], [f"{i:06d}" for i in range(50)], k=3)
    _, da = brute_force(np.asarray(a), 49)
    unit_a = a / np.linalg.norm(a, axis=1, keepdims=True)
    unit_b = b / np.linalg.norm(b, axis=1, keepdims=True)
    i, j = 0, int(graph.indices[0, 0])
    expected = ((1 - unit_a[i] @ unit_a[j]) + (1 - unit_b[i] @ unit_b[j])) / 2
    assert np.isclose(graph.distances[0, 0], expected, atol=1e-5)
    assert da.shape == (50, 49)


def test_planted_copies_are_found_exactly_and_approximately() -> None:
    features, sources, copies = planted(n=3000, dims=48, copies=40)
    hashes = [f"{i:06d}" for i in range(len(features))]
    for limit in (10**9, 100):
        graph = build_neighbour_graph([features], hashes, exact_limit=limit)
        assert graph.exact == (limit > len(features))
        groups = duplicate_groups(
            graph, graph.default_threshold(), keep_priority(np.ones(len(features)), np.zeros(len(features)))
        )
        found = {frozenset(group.rows) for group in groups}
        recall = np.mean([frozenset((int(s), int(c))) in found for s, c in zip(sources, copies, strict=True)])
        assert recall >= 0.95, (limit, recall)
        assert len(groups) == len(copies)  # no untouched image grouped


def test_groups_are_built_around_a_kept_image_without_chaining() -> None:
    # a - b - c on a line: a~b and b~c are within the threshold, a~c is not.
    angle = np.deg2rad([0.0, 10.0, 20.0, 90.0, 180.0, 270.0])
    features = np.stack([np.cos(angle), np.sin(angle)], 1)
    graph = build_neighbour_graph([features], list("abcdef"), k=5)
    threshold = 1 - np.cos(np.deg2rad(12))
    priority = np.asarray([1.0, 5.0, 1.0, 0, 0, 0])  # b is the one to keep: it takes a and c
    groups = duplicate_groups(graph, threshold, priority)
    assert [(g.keep, set(g.others)) for g in groups] == [(1, {0, 2})]
    priority = np.asarray([5.0, 1.0, 0.5, 0, 0, 0])  # a kept first takes b; c has nobody left within reach
    groups = duplicate_groups(graph, threshold, priority)
    assert [(g.keep, g.others) for g in groups] == [(0, (1,))]
    for group in groups:
        assert all(d <= threshold for d in group.distances)


def test_exact_copies_share_a_node_and_group_at_any_threshold(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(30, 6))
    features[7] = features[3]
    hashes = [f"h{i}" for i in range(30)]
    hashes[7] = hashes[3] = hashes[12] = "same"
    features[12] = features[3]
    graph = build_neighbour_graph([features], hashes, k=4)
    assert graph.n_nodes == 28 and graph.node_of_row[3] == graph.node_of_row[7] == graph.node_of_row[12]
    sizes = np.ones(30)
    sizes[12] = 10  # the largest copy is the one kept
    groups = duplicate_groups(graph, 0.0, keep_priority(sizes, np.zeros(30)))
    assert [(g.keep, sorted(g.others), g.exact) for g in groups] == [(12, [3, 7], True)]
    again = NeighbourGraph.from_bytes(graph.to_bytes())
    assert np.array_equal(again.indices, graph.indices) and again.exact == graph.exact
    counts, edges = distance_histogram(graph)
    assert counts.sum() == graph.n_nodes and edges[0] == 0.0


def test_a_folder_of_one_image_has_no_neighbours() -> None:
    graph = build_neighbour_graph([np.ones((2, 3))], ["x", "x"])
    assert graph.n_nodes == 1 and graph.median_distance() == 0.0
    groups = duplicate_groups(graph, 0.0, np.zeros(2))
    assert [(g.keep, g.others) for g in groups] == [(0, (1,))]


def test_pixel_signatures_confirm_pairs_near_in_the_embeddings() -> None:
    from PIL import Image, ImageEnhance

    from turtle_core.ingest.quality import pixel_signature

    rng = np.random.default_rng(5)
    picture = Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).resize((96, 96))
    other = Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).resize((96, 96))
    brighter = ImageEnhance.Brightness(picture).enhance(1.3).resize((48, 48))
    signatures = [pixel_signature(picture), pixel_signature(brighter), pixel_signature(other), None]
    # All four are equally near in the embeddings; only the picture and its brighter copy share pixels.
    features = np.asarray([[1.0, 0.0], [1.0, 0.01], [1.0, -0.01], [1.0, 0.02]])
    graph = build_neighbour_graph([features], ["a", "b", "c", "d"], k=3, signatures=signatures)
    assert graph.has_signatures and graph.pairs.tolist() == [[0, 1]]  # d has none; c matches nobody
    priority = np.asarray([4.0, 3.0, 2.0, 1.0])
    assert [(g.keep, g.others) for g in duplicate_groups(graph, 0.01, priority)] == [(0, (1,))]
    assert duplicate_groups(graph, 0.01, priority, min_match=1.01) == []
    again = NeighbourGraph.from_bytes(graph.to_bytes())
    assert again.pairs.tolist() == [[0, 1]] and np.allclose(again.pair_matches, graph.pair_matches)
    alone = build_neighbour_graph([features], ["a", "b", "c", "d"], k=3)
    assert [(g.keep, sorted(g.others)) for g in duplicate_groups(alone, 0.01, priority)] == [(0, [1, 2, 3])]
    assert graph.default_threshold() == 10 * alone.default_threshold()  # 5.0 and 0.5 of the same median
