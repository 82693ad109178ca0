"""Turn scanned images into feature vectors, computing only what the embedding cache lacks."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from turtle_core.embedding.backbones import LoadedBackbone, load_backbone, weights_fingerprint
from turtle_core.embedding.cache import IDENTITY_MEMO, EmbeddingCache, IdentityMemo
from turtle_core.ingest.scan import ImageRecord, SkippedFile, UnusableImage, decode_image, hash_bytes
from turtle_core.paths import embedding_cache_dir
from turtle_core.progress import ProgressCallback, ProgressMeter, check_cancel

FLUSH_ROWS = 256  # write computed vectors to the cache at least this often...
FLUSH_SECONDS = 10.0  # ...or this often, so a killed run loses little work
PREFETCH_BATCHES = 2

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Embeddings:
    """Vectors of the records that could be embedded (rows in input order), a mask over the input
    records saying which, and why the others failed."""

    vectors: np.ndarray
    ok: np.ndarray
    failed: list[SkippedFile]
    identity: str
    from_cache: int  # input records whose vector was already in the cache
    computed: int  # images run through the model in this call (distinct contents)


def default_num_workers() -> int:
    """Decoding threads beside the model: one core is left to the model."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def prepare_record(
    root: str, copies: list[ImageRecord], backbone: LoadedBackbone
) -> tuple[torch.Tensor | None, str]:
    """Read and preprocess the first copy of one content whose bytes still match the scan."""
    reason = "not embedded"
    for record in copies:
        path = os.path.join(root, *record.path.split("/"))
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            reason = "file no longer exists (rescan the folder)"
            continue
        except PermissionError:
            reason = "unreadable: permission denied"
            continue
        except OSError as exc:
            reason = f"unreadable: {(exc.strerror or str(exc)).lower()}"
            continue
        if hash_bytes(data) != record.content_hash:
            reason = "file changed since the scan (rescan the folder)"
            continue
        try:
            image = decode_image(data, min_size=backbone.spec.input_size)
            return backbone.preprocess(image), ""
        except UnusableImage as exc:
            return None, exc.reason
        except Exception as exc:  # the model's preprocessing must not end the run
            return None, f"could not be prepared for the model ({type(exc).__name__}: {exc})"
    return None, reason


def _prefetched(
    items: Sequence[T], batch_size: int, work: Callable[[T], R], workers: int
) -> Iterator[tuple[list[T], list[R]]]:
    """Yield (batch, results) in order while the next batches are processed in worker threads."""
    batches = [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    if workers <= 0:
        for batch in batches:
            yield batch, [work(item) for item in batch]
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
    try:
        queue: deque[tuple[list[T], list[Future[R]]]] = deque()
        upcoming = iter(batches)
        for batch in upcoming:
            queue.append((batch, [pool.submit(work, item) for item in batch]))
            if len(queue) >= PREFETCH_BATCHES:
                break
        while queue:
            batch, futures = queue.popleft()
            following = next(upcoming, None)
            if following is not None:
                queue.append((following, [pool.submit(work, item) for item in following]))
            yield batch, [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _encode_finite(backbone: LoadedBackbone, batch: torch.Tensor) -> tuple[np.ndarray, list[int]]:
    """Features of `batch`, and the rows that stayed non-finite. Reduced-precision autocast (fp16 on
    GPUs without bf16) can overflow to NaN/inf: those rows are encoded again in fp32, so a bad vector
    is never cached (the cache refuses them too) and the batch's other rows keep their fast result."""
    features = backbone.encode(batch).numpy().astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if bad.size and backbone.device.type == "cuda":
        redo = batch[torch.as_tensor(bad)].to(backbone.device)
        with torch.inference_mode(), torch.autocast("cuda", enabled=False):
            features[bad] = backbone.model(redo.float()).float().cpu().numpy()
        bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    return features, bad.tolist()


class CacheWriter:
    """Buffers computed vectors and writes them to the cache every few batches."""

    def __init__(self, cache: EmbeddingCache | None) -> None:
        self.cache = cache
        self.keys: list[str] = []
        self.rows: list[np.ndarray] = []
        self.last = time.monotonic()

    def add(self, keys: list[str], rows: np.ndarray) -> None:
        if self.cache is None:
            return
        self.keys.extend(keys)
        self.rows.append(rows)
        if len(self.keys) >= FLUSH_ROWS or time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.cache is not None and self.keys:
            self.cache.add(self.keys, np.concatenate(self.rows))
        self.keys, self.rows, self.last = [], [], time.monotonic()


def embed_images(
    root: str | Path,
    records: Sequence[ImageRecord],
    backbone: LoadedBackbone,
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    num_workers: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Embeddings:
    """Embed `records` (from a scan of `root`) with `backbone`. Vectors are looked up by content
    hash first, so moved, renamed and duplicate files cost nothing; the rest is decoded in
    `num_workers` threads (default: cores - 1, at most 4; 0 decodes inline) while the model runs.
    Files that fail are reported in `failed` and the run goes on. Computed vectors reach the cache
    every few batches, so a cancelled (`Cancelled`) or killed run resumes where it stopped."""
    root_str = os.fspath(root)
    hashes = [r.content_hash for r in records]
    copies: dict[str, list[ImageRecord]] = {}
    for record in records:
        copies.setdefault(record.content_hash, []).append(record)

    vectors_by_hash: dict[str, np.ndarray] = {}
    if cache is not None and copies:
        unique = list(copies)
        found, rows = cache.lookup(unique)
        for key, row in zip((h for h, f in zip(unique, found, strict=True) if f), rows, strict=True):
            vectors_by_hash[key] = row
    cached = set(vectors_by_hash)
    todo = [h for h in copies if h not in cached]

    meter = ProgressMeter("embed", len(todo), progress)
    from_cache = sum(1 for h in hashes if h in cached)
    meter.report(message=f"{from_cache} found in the cache, {len(todo)} to compute", force=True)
    failures: dict[str, str] = {}
    computed = 0
    writer = CacheWriter(cache)
    workers = default_num_workers() if num_workers is None else max(0, num_workers)

    def work(key: str) -> tuple[torch.Tensor | None, str]:
        return prepare_record(root_str, copies[key], backbone)

    try:
        with contextlib.closing(_prefetched(todo, max(1, batch_size), work, workers)) as batches:
            for batch, results in batches:
                check_cancel(cancel)
                good = [
                    (key, tensor)
                    for key, (tensor, _) in zip(batch, results, strict=True)
                    if tensor is not None
                ]
                for key, (tensor, reason) in zip(batch, results, strict=True):
                    if tensor is None:
                        failures[key] = reason
                if good:
                    features, bad = _encode_finite(backbone, torch.stack([t for _, t in good]))
                    for row in sorted(bad, reverse=True):
                        failures[good[row][0]] = "the model gave non-finite features (NaN/inf) for this image"
                        del good[row]
                    features = np.delete(features, bad, axis=0)
                if good:
                    keys = [key for key, _ in good]
                    vectors_by_hash.update(zip(keys, features, strict=True))
                    writer.add(keys, features)
                    computed += len(good)
                meter.advance(len(batch))
    finally:
        writer.flush()
    if cache is not None:
        cache.maybe_compact()

    return assemble_embeddings(
        records, vectors_by_hash, failures, backbone.identity, backbone.spec.embed_dim, from_cache, computed
    )


def embed_folder_images(
    root: str | Path,
    records: Sequence[ImageRecord],
    name: str,
    checkpoint: str | None = None,
    *,
    device: str | torch.device | None = None,
    cache_root: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Embeddings:
    """Embed `records` with backbone `name`, cached under its identity in `cache_root` (default: the
    engine's embedding cache). When the weights' files are unchanged since they were last loaded and
    every image is already in that identity's cache, the weights are not loaded at all: a repeated
    discovery with CLIP ViT-L/14 or DINOv2 ViT-g/14 skips reading gigabytes."""
    base = Path(cache_root) if cache_root is not None else embedding_cache_dir()
    memo = IdentityMemo(base / IDENTITY_MEMO)
    weights = weights_fingerprint(name, checkpoint)
    known = memo.get(weights) if weights else None
    if known is not None:
        cached = all_cached(records, EmbeddingCache(base / known), known, progress)
        if cached is not None:
            return cached
    backbone = load_backbone(name, checkpoint, device=device)
    if weights:
        memo.put(weights, backbone.identity)
    cache = EmbeddingCache(base / backbone.identity)
    started = time.perf_counter()
    result = embed_images(root, records, backbone, cache=cache, progress=progress, cancel=cancel)
    from turtle_core.embedding.rates import record_embedding_rate

    record_embedding_rate(name, backbone.device.type, result.computed, time.perf_counter() - started)
    return result


def all_cached(
    records: Sequence[ImageRecord],
    cache: EmbeddingCache,
    identity: str,
    progress: ProgressCallback | None,
) -> Embeddings | None:
    """The embeddings straight from `cache`, or None when some image is missing there."""
    unique = list(dict.fromkeys(r.content_hash for r in records))
    if not unique:
        return None
    found, rows = cache.lookup(unique)
    if not found.all():
        return None
    vectors_by_hash = dict(zip(unique, rows, strict=True))
    ProgressMeter("embed", 0, progress).report(
        message=f"{len(records)} found in the cache, 0 to compute", force=True
    )
    dim = int(np.asarray(rows[0]).shape[0])
    return assemble_embeddings(records, vectors_by_hash, {}, identity, dim, len(records), 0)


def assemble_embeddings(
    records: Sequence[ImageRecord],
    vectors_by_hash: dict[str, np.ndarray],
    failures: dict[str, str],
    identity: str,
    dim: int,
    from_cache: int,
    computed: int,
) -> Embeddings:
    hashes = [r.content_hash for r in records]
    ok = np.array([h in vectors_by_hash for h in hashes], dtype=bool)
    if vectors_by_hash:
        dim = next(iter(vectors_by_hash.values())).shape[0]
    vectors = (
        np.stack([vectors_by_hash[h] for h in hashes if h in vectors_by_hash]).astype(np.float32, copy=False)
        if ok.any()
        else np.empty((0, dim), dtype=np.float32)
    )
    failed = [
        SkippedFile(r.path, failures.get(r.content_hash, "not embedded"))
        for r, good in zip(records, ok, strict=True)
        if not good
    ]
    return Embeddings(vectors, ok, failed, identity, from_cache, computed)
