"""Near-duplicates: the neighbour graph (exact and approximate), the adaptive threshold, groups around a
kept image (no chaining), exact copies, and keep-one as one undoable edit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
    assert duplicate_groups(graph, 0.01, priority, ratio=0.0, shifted_ratio=0.0) == []  # not identical
    again = NeighbourGraph.from_bytes(graph.to_bytes())
    assert again.pairs.tolist() == [[0, 1]] and np.allclose(again.pair_matches, graph.pair_matches)
    assert np.array_equal(again.lookalike, graph.lookalike)
    alone = build_neighbour_graph([features], ["a", "b", "c", "d"], k=3)
    assert [(g.keep, sorted(g.others)) for g in duplicate_groups(alone, 0.01, priority)] == [(0, [1, 2, 3])]
    assert graph.default_threshold() == 10 * alone.default_threshold()  # 5.0 and 0.5 of the same median


def _field(rng: np.random.Generator, grid: int):
    """A picture of `grid` × `grid` random colours blended smoothly to 96 px, in one tint for the folder:
    the fewer the colours, the more alike two pictures' 8 × 8 signatures are by chance."""
    from PIL import Image

    colours = 0.5 * rng.integers(0, 255, (grid, grid, 3)) + 0.5 * np.asarray([200, 120, 60])
    return Image.fromarray(colours.astype(np.uint8)).resize((96, 96), Image.Resampling.BICUBIC)


def _copy(picture, kind: str):
    import io

    from PIL import Image, ImageEnhance

    if kind == "smaller":
        return picture.resize((48, 48), Image.Resampling.LANCZOS)
    if kind == "crop":
        return picture.crop((4, 4, 92, 92))
    if kind == "brighter":
        return ImageEnhance.Brightness(picture).enhance(1.3)
    if kind == "rotate":
        return picture.rotate(3, resample=Image.Resampling.BICUBIC, fillcolor=picture.getpixel((0, 0)))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=35)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _planted_pictures(grid: int, n: int = 400, copies: int = 25, seed: int = 0):
    """`n` different pictures and one transformed copy of `copies` of them, with signatures and
    embeddings in which every copy is near its source but so are many other pictures."""
    from turtle_core.ingest.quality import pixel_signature

    rng = np.random.default_rng(seed)
    pictures = [_field(rng, grid) for _ in range(n)]
    sources = rng.choice(n, copies, replace=False)
    kinds = ("smaller", "jpeg", "crop", "brighter", "rotate")
    pictures += [_copy(pictures[s], kinds[i % len(kinds)]) for i, s in enumerate(sources)]
    features = rng.normal(size=(n + copies, 16))
    features[n:] = features[sources] + 0.3 * rng.normal(size=(copies, 16))
    return [pixel_signature(p) for p in pictures], features, sources


def _recall_and_untouched(groups, sources: np.ndarray, n: int) -> tuple[float, float]:
    group_of = {row: i for i, group in enumerate(groups) for row in group.rows}
    recall = np.mean([group_of.get(int(s), -1) == group_of.get(n + i, -2) for i, s in enumerate(sources)])
    untouched = set(range(n)) - {int(s) for s in sources}
    return float(recall), sum(row in group_of for row in untouched) / len(untouched)


def test_signatures_are_judged_against_each_images_look_alikes() -> None:
    from turtle_core.ingest.quality import signature_vectors

    # Pictures of two colours a side blended smoothly look alike at 8 × 8 (different ones correlate up to
    # 0.99: a lax rule groups them); busy ones of eight a side do not, but their crops and turns lose
    # more of their correlation.
    for grid, most_untouched in ((2, 0.06), (8, 0.02)):
        signatures, features, sources = _planted_pictures(grid)
        n = len(features) - len(sources)
        hashes = [f"{i:05d}" for i in range(len(features))]
        graph = build_neighbour_graph([features], hashes, signatures=signatures)
        priority = keep_priority(np.ones(len(features)), np.zeros(len(features)))
        groups = duplicate_groups(graph, graph.default_threshold(), priority)
        recall, untouched = _recall_and_untouched(groups, sources, n)
        assert recall >= 0.95 and untouched <= most_untouched, (grid, recall, untouched)
        if grid == 8:  # the former rule (a correlation >= 0.97) loses the busy pictures' crops and turns
            vectors, _ = signature_vectors(signatures)
            assert np.mean(np.einsum("ij,ij->i", vectors[sources], vectors[n:]) >= 0.97) <= 0.85


def test_a_picture_with_many_copies_keeps_them_all() -> None:
    from PIL import Image

    from turtle_core.ingest.quality import pixel_signature

    rng = np.random.default_rng(7)
    others = [_field(rng, 8) for _ in range(100)]
    picture = _field(rng, 8)
    copies = [picture.resize((side, side), Image.Resampling.LANCZOS) for side in (88, 80, 72, 64, 56, 48, 40)]
    signatures = [pixel_signature(p) for p in [picture, *copies, *others]]
    features = rng.normal(size=(len(signatures), 16))
    features[1:8] = features[0] + 0.1 * rng.normal(size=(7, 16))
    graph = build_neighbour_graph(
        [features], [f"{i:05d}" for i in range(len(signatures))], signatures=signatures
    )
    # each copy's nearest signatures are the other copies: only their near-identity can confirm them
    assert (graph.lookalike[:8] < 1 - 0.998).all()
    sizes = np.asarray([96**2, *(s**2 for s in (88, 80, 72, 64, 56, 48, 40)), *[96**2 - 1] * 100])
    groups = duplicate_groups(graph, graph.default_threshold(), keep_priority(sizes, np.zeros(len(sizes))))
    assert [(g.keep, sorted(g.others)) for g in groups] == [(0, list(range(1, 8)))]


def test_a_graph_of_an_older_format_is_refused() -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, format=np.asarray(2), node_of_row=np.zeros(1), indices=np.zeros((1, 0)))
    with pytest.raises(ValueError, match="format 2"):
        NeighbourGraph.from_bytes(buffer.getvalue())


def _glyph(rng: np.random.Generator, letter: np.ndarray | None = None, side: int = 64):
    """A glyph-like picture: dark strokes on a plain light ground (few, sharp details, which a crop of a
    few percent moves by a good part of a signature's cell); drawn from `letter` (strokes × 2 points ×
    x, y in fractions of the side), moved a little, as another font would, or at random."""
    from PIL import Image, ImageDraw

    if letter is None:
        letter = rng.uniform(0.2, 0.8, (3, 2, 2))
    strokes = (letter + rng.normal(scale=0.03, size=letter.shape)) * side
    picture = Image.new("L", (side, side), int(rng.integers(200, 240)))
    draw = ImageDraw.Draw(picture)
    width = int(rng.integers(4, 8))
    for stroke in strokes:
        draw.line([tuple(point) for point in stroke.tolist()], fill=int(rng.integers(20, 80)), width=width)
    return picture


def _cropped(picture, share: float = 0.92):
    side = picture.size[0]
    margin = round(side * (1 - share) / 2)
    return picture.crop((margin, margin, side - margin, side - margin))


def test_a_cropped_glyph_is_matched_over_shifted_windows_and_another_is_not() -> None:
    from turtle_core.cleaning.shifted import shifted_correlations
    from turtle_core.ingest.quality import pixel_signature, signature_pixels, signature_vectors

    rng = np.random.default_rng(3)
    glyph, other = _glyph(rng), _glyph(rng)
    signatures = [pixel_signature(glyph), pixel_signature(_cropped(glyph)), pixel_signature(other)]
    pixels, present = signature_pixels(signatures)
    vectors, _ = signature_vectors(signatures)
    pairs = np.asarray([[0, 1], [0, 2], [1, 2]])
    shifted = shifted_correlations(pixels, pairs)
    plain = np.einsum("ij,ij->i", vectors[pairs[:, 0]], vectors[pairs[:, 1]])
    assert present.all()
    assert shifted[0] >= 0.97 and 1 - shifted[0] <= (1 - plain[0]) / 3  # the crop: far nearer shifted
    assert shifted[1] <= 0.8 and shifted[2] <= 0.8  # another glyph stays far
    assert (shifted >= plain - 1e-5).all()  # the whole of both is one of the windows compared


def test_cropped_glyphs_are_grouped_without_grouping_more_look_alikes() -> None:
    from turtle_core.ingest.quality import pixel_signature

    rng = np.random.default_rng(4)
    n, copies = 150, 20
    letters = rng.uniform(0.2, 0.8, (10, 3, 2, 2))  # fifteen glyphs of each letter: close look-alikes
    pictures = [_glyph(rng, letters[i % len(letters)]) for i in range(n)]
    sources = rng.choice(n, copies, replace=False)
    pictures += [_cropped(pictures[s]) for s in sources]
    signatures = [pixel_signature(p) for p in pictures]
    features = rng.normal(size=(n + copies, 16))
    features[n:] = features[sources] + 0.3 * rng.normal(size=(copies, 16))
    hashes = [f"{i:05d}" for i in range(n + copies)]
    graph = build_neighbour_graph([features], hashes, signatures=signatures)
    priority = keep_priority(np.ones(n + copies), np.zeros(n + copies))
    threshold = graph.default_threshold()
    recall, untouched = _recall_and_untouched(duplicate_groups(graph, threshold, priority), sources, n)
    whole, whole_untouched = _recall_and_untouched(
        duplicate_groups(graph, threshold, priority, shifted_ratio=0.0), sources, n
    )
    # the whole signatures lose half of the crops among so many look-alikes; shifted ones find most
    assert whole <= 0.6 and recall >= whole + 0.25, (whole, recall)
    assert untouched <= whole_untouched + 0.01, (whole_untouched, untouched)
    again = NeighbourGraph.from_bytes(graph.to_bytes())
    assert np.array_equal(again.pair_shifted, graph.pair_shifted)
    assert np.array_equal(again.lookalike_shifted, graph.lookalike_shifted)


def test_a_discovery_with_older_smaller_signatures_takes_the_scans() -> None:
    from PIL import Image

    from turtle_core.ingest.quality import QualityScores, pixel_signature
    from turtle_core.ingest.scan import ImageRecord, ScanResult
    from turtle_core.operations.cleaning import images_with_quality

    scores = QualityScores(0.5, 0.5, 0.5, 0.5, 0.0)
    current = pixel_signature(Image.new("RGB", (32, 32), (10, 20, 30)))
    older = ImageRecord("a.png", 1, 1, "h", 32, 32, None, scores, "A" * 256)  # an 8 × 8 signature
    scanned = ImageRecord("a.png", 1, 1, "h", 32, 32, None, scores, current)
    scan = ScanResult(root="/", images=[scanned], skipped=[], duplicates=[])
    assert [r.signature for r in images_with_quality([older], scan)] == [current]
    assert images_with_quality([scanned], scan) == [scanned]
