"""The embedding cache shared by several processes (two app instances, the app and the command line, Ray
drivers): writers, readers and compactors side by side never crash each other and lose nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from turtle_core.embedding.cache import EmbeddingCache

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import hashlib, json, sys, time, traceback
import numpy as np
from turtle_core.embedding.cache import EmbeddingCache

def vector(key):
    seed = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)

directory, role, name, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
errors, written, checked, compactions = [], [], 0, 0
deadline = time.monotonic() + seconds
round_ = 0
try:
    cache = EmbeddingCache(directory)
    while time.monotonic() < deadline:
        round_ += 1
        if role == "writer":
            keys = [f"{name}-{round_}-{i}" for i in range(3)]
            cache.add(keys, np.stack([vector(k) for k in keys]))
            written.extend(keys)
            if round_ % 7 == 0 and cache.compact():
                compactions += 1
        if role in ("writer", "reader"):
            probe = EmbeddingCache(directory) if role == "reader" and round_ % 5 == 0 else cache
            keys = [f"seed-{i}" for i in range(0, 40, 3)] + written[-6:]
            found, rows = probe.lookup(keys)
            if not found.all():
                errors.append(f"missing {[k for k, f in zip(keys, found) if not f]}")
            for key, row in zip([k for k, f in zip(keys, found) if f], rows):
                if not np.array_equal(row, vector(key)):
                    errors.append(f"wrong vector for {key}")
            checked += int(found.sum())
        if role == "compactor":
            if cache.compact():
                compactions += 1
except BaseException:
    errors.append(traceback.format_exc())
print(json.dumps({"errors": errors[:5], "written": written, "checked": checked, "compactions": compactions}))
"""


def _vector(key: str) -> np.ndarray:
    import hashlib

    seed = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


def test_writers_readers_and_compactors_in_separate_processes(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    seed = EmbeddingCache(directory)
    keys = [f"seed-{i}" for i in range(40)]
    for start in range(0, 40, 4):  # many small chunks, so compaction has work from the start
        seed.add(keys[start : start + 4], np.stack([_vector(k) for k in keys[start : start + 4]]))
    roles = [("writer", "w1"), ("writer", "w2"), ("reader", "r1"), ("compactor", "c1")]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(directory), role, name, "8"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role, name in roles
    ]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    for (role, _), report in zip(roles, reports, strict=True):
        assert report["errors"] == [], (role, report["errors"])
    assert reports[2]["checked"] > 0 and reports[0]["written"] and reports[1]["written"]
    assert sum(report["compactions"] for report in reports) >= 2
    # Nothing any writer finished is lost, and every vector is still the one written.
    written = keys + reports[0]["written"] + reports[1]["written"]
    found, rows = EmbeddingCache(directory).lookup(written)
    assert found.all()
    np.testing.assert_array_equal(rows, np.stack([_vector(k) for k in written]))
    # After a last compaction no debris is left: one chunk, its manifest, the lock file.
    final = EmbeddingCache(directory)
    assert final.compact()
    assert sorted(p.suffix or p.name for p in directory.iterdir()) == [".json", ".lock", ".npy"]
