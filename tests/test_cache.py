"""Embedding cache: hits, incremental adds, crash safety, compaction, memory mapping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from turtle_core.atomic import atomic_save_npy, atomic_write_json
from turtle_core.embedding.cache import EmbeddingCache


def _keys(n: int, prefix: str = "k") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def _vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_hit_returns_identical_vectors(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c")
    keys, vectors = _keys(5), _vectors(5)
    assert cache.add(keys, vectors) == 5
    query = ["k0003", "missing", "k0000", "k0003"]
    found, rows = cache.lookup(query)
    assert found.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(rows, vectors[[3, 0, 3]])
    assert rows.dtype == np.float32
    reopened = EmbeddingCache(tmp_path / "c")  # a new process sees the same
    found2, rows2 = reopened.lookup(query)
    assert found2.tolist() == found.tolist()
    np.testing.assert_array_equal(rows2, rows)


def test_empty_cache_and_empty_query(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c")
    found, rows = cache.lookup(["a", "b"])
    assert found.tolist() == [False, False] and rows.shape[0] == 0
    found, rows = cache.lookup([])
    assert found.shape == (0,) and rows.shape[0] == 0


def test_incremental_add_keeps_old_keys(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c")
    first, second = _vectors(4, seed=1), _vectors(3, seed=2)
    cache.add(_keys(4), first)
    # one overlapping key is not stored twice
    assert cache.add(["k0000", "n0", "n1"], second) == 2
    assert len(cache) == 6 and cache.chunk_count == 2
    found, rows = EmbeddingCache(tmp_path / "c").lookup([*_keys(4), "n0", "n1"])
    assert found.all()
    np.testing.assert_array_equal(rows, np.concatenate([first, second[1:]]))
    assert cache.add(_keys(2), first[:2]) == 0 and cache.chunk_count == 2
    with pytest.raises(ValueError, match="8-d"):
        cache.add(["z"], np.zeros((1, 5), np.float32))


def test_torn_and_orphan_chunks_are_ignored(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    cache = EmbeddingCache(directory)
    good = _vectors(3, seed=3)
    cache.add(["g0", "g1", "g2"], good)

    # killed before the manifest: an array with no manifest
    atomic_save_npy(directory / "chunk-00000000000000000001-orphan00.npy", _vectors(2, seed=4))
    # a truncated array whose manifest claims more rows
    full = _vectors(10, seed=5)
    atomic_save_npy(directory / "chunk-00000000000000000002-trunc000.npy", full)
    raw = (directory / "chunk-00000000000000000002-trunc000.npy").read_bytes()
    (directory / "chunk-00000000000000000002-trunc000.npy").write_bytes(raw[: len(raw) // 2])
    manifest = {"version": 1, "npy": "chunk-00000000000000000002-trunc000.npy", "rows": 10, "dim": 8,
                "dtype": "float32", "checksum": "x", "keys": [f"t{i}" for i in range(10)]}  # fmt: skip
    atomic_write_json(directory / "chunk-00000000000000000002-trunc000.json", manifest)
    # a manifest whose array is missing
    manifest = dict(manifest, npy="chunk-00000000000000000003-gone0000.npy", rows=2, keys=["m0", "m1"])
    atomic_write_json(directory / "chunk-00000000000000000003-gone0000.json", manifest)
    # a manifest whose array has another shape than promised, reusing a key that is also good
    atomic_save_npy(directory / "chunk-00000000000000000004-shape000.npy", _vectors(3, dim=4))
    manifest = dict(manifest, npy="chunk-00000000000000000004-shape000.npy", rows=3, keys=["s0", "s1", "g0"])
    atomic_write_json(directory / "chunk-00000000000000000004-shape000.json", manifest)
    # a half-written manifest
    (directory / "chunk-00000000000000000005-half0000.json").write_text('{"version": 1, "npy": "chu')

    reopened = EmbeddingCache(directory)
    found, rows = reopened.lookup(["g0", "g1", "g2", "t0", "t9", "m0", "s0"])
    assert found.tolist() == [True, True, True, False, False, False, False]
    np.testing.assert_array_equal(rows, good)
    assert len(reopened) == 3

    # the next compaction cleans the debris up (it holds the lock every writer holds while writing)
    reopened.compact()
    names = sorted(p.name for p in directory.iterdir() if p.name != ".lock")
    assert len(names) == 2 and names[0].endswith(".json") and names[1].endswith(".npy")
    found, rows = EmbeddingCache(directory).lookup(["g0", "g1", "g2"])
    assert found.all()
    np.testing.assert_array_equal(rows, good)


def test_corrupted_bytes_are_dropped_by_compaction(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c")
    cache.add(["a"], _vectors(1, seed=6))
    cache.add(["b"], _vectors(1, seed=7))
    npy = sorted((tmp_path / "c").glob("chunk-*.npy"))[1]
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF  # bit rot inside the vector data (same shape, wrong checksum)
    npy.write_bytes(bytes(data))
    fresh = EmbeddingCache(tmp_path / "c")
    assert fresh.lookup(["a", "b"])[0].tolist() == [True, False]  # a small chunk is checked when opened
    assert fresh.verify() == []  # so the damaged one was never trusted
    fresh.compact()
    assert not npy.exists() and fresh.chunk_count == 1  # and compaction removed it
    found, _ = EmbeddingCache(tmp_path / "c").lookup(["a", "b"])
    assert found.tolist() == [True, False]


def test_compact_preserves_values(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c")
    expected = {}
    for i in range(6):
        vectors = _vectors(4, seed=10 + i)
        keys = _keys(4, prefix=f"c{i}-")
        cache.add(keys, vectors)
        expected.update(zip(keys, vectors, strict=True))
    assert cache.chunk_count == 6
    cache.compact()
    assert cache.chunk_count == 1
    assert len(list((tmp_path / "c").glob("chunk-*.json"))) == 1
    for probe in (cache, EmbeddingCache(tmp_path / "c")):
        keys = list(expected)
        found, rows = probe.lookup(keys)
        assert found.all()
        np.testing.assert_array_equal(rows, np.stack([expected[k] for k in keys]))
    assert cache.maybe_compact(max_chunks=1) is False


def test_arrays_are_memory_mapped(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c")
    cache.add(_keys(3), _vectors(3))
    reopened = EmbeddingCache(tmp_path / "c")
    arrays = [chunk.array for chunk in reopened._chunks.values()]
    assert arrays and all(isinstance(a, np.memmap) for a in arrays)
    manifest = json.loads(next((tmp_path / "c").glob("chunk-*.json")).read_text())
    assert manifest["rows"] == 3 and manifest["dim"] == 8 and manifest["keys"] == _keys(3)
