"""Embed images on a Ray cluster: decoding and the backbone run in Ray Data actors, the vectors land
in the same content-addressed embedding cache as the local path (`turtle_core.embedding.embed`).

Workers read the images by path, so on a real cluster the folder must be on storage every node
mounts at the same path. Only images missing from the cache are sent; the driver writes each batch
to the cache as it arrives, so a cancelled or crashed run keeps every batch already written.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from turtle_core.embedding.cache import IDENTITY_MEMO, EmbeddingCache, IdentityMemo
from turtle_core.embedding.embed import (
    CacheWriter,
    Embeddings,
    all_cached,
    assemble_embeddings,
    embed_folder_images,
    prepare_record,
)
from turtle_core.ingest.scan import ImageRecord
from turtle_core.paths import embedding_cache_dir
from turtle_core.progress import ProgressCallback, ProgressMeter, check_cancel

INSTALL_HINT = (
    "Ray is not installed. Install it with `.venv/bin/pip install -r requirements-ray.txt` "
    "(or `bash scripts/setup.sh --dev`), then try again."
)
ACTOR_RESTARTS = 3  # a worker that dies is restarted and its batch retried this often, then the run fails
MAX_BLOCKS = 10_000  # a million images go out in blocks of 100 (each still encoded `batch_size` at a time)
FORWARDED_ENV = ("TURTLE_OFFLINE", "HF_HUB_OFFLINE", "HF_HOME", "TORCH_HOME", "XDG_CACHE_HOME")


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached or used."""


def ray_installed() -> bool:
    """Whether `import ray` would work (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data ships with the `ray[data]` extra
        import ray.data.exceptions  # noqa: F401
    except ImportError as error:
        raise RayUnavailable(INSTALL_HINT) from error
    return ray


class BackboneActor:
    """A Ray Data stateful worker: loads the backbone once, then decodes and embeds batches of
    images given by content hash and candidate paths (the copies of that content)."""

    def __init__(self, root: str, name: str, checkpoint: str | None, device: str | None) -> None:
        import torch

        from turtle_core.embedding.backbones import load_backbone

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.root = root
        self.backbone = load_backbone(name, checkpoint, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        keys = [str(key) for key in batch["key"]]
        results = []
        for key, paths in zip(keys, batch["paths"], strict=True):
            copies = [ImageRecord(str(path), 0, 0, key, 0, 0, None) for path in str(paths).split("\n")]
            results.append(prepare_record(self.root, copies, self.backbone))
        dim = self.backbone.spec.embed_dim
        vectors = np.zeros((len(keys), dim), dtype=np.float32)
        good = [i for i, (tensor, _) in enumerate(results) if tensor is not None]
        if good:
            stacked = torch.stack([results[i][0] for i in good])
            vectors[good] = self.backbone.encode(stacked).numpy().astype(np.float32)
        ok = np.zeros(len(keys), dtype=bool)
        ok[good] = True
        return {
            "key": np.array(keys, dtype=object),
            "vector": vectors,
            "ok": ok,
            "reason": np.array([reason for _, reason in results], dtype=object),
            "identity": np.array([self.backbone.identity] * len(keys), dtype=object),
        }


# The Ray connection is one per process, and jobs run side by side in threads: the connection this
# module makes is shared by every job that asks for the same address and closed when the last one ends.
_ray_lock = threading.Lock()
_ray_users = 0  # jobs using the connection this module made
_ray_address: str | None = None  # the address it was made to


@contextlib.contextmanager
def ray_session(address: str) -> Iterator[Any]:
    """Connected Ray for the duration: `address` is a cluster (`host:port`, `ray://...`, `auto`) or
    `local` (start a private local instance). Jobs that overlap share the connection, which is closed
    when the last of them ends; a job asking for another cluster meanwhile gets `RayUnavailable`. A
    connection the caller made itself is used as it is and never closed here."""
    global _ray_users, _ray_address
    # No usage reports to Anyscale, and no Ray Data metrics poller thread: nothing here phones home.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DATA_USAGE_DISABLED", "1")
    ray = _import_ray()
    with _ray_lock:
        if _ray_users:
            if address != _ray_address:
                raise RayUnavailable(
                    f"This app is embedding on the Ray cluster at {_ray_address!r} for another job; run "
                    f"this one on {address!r} when that job has ended, or use the same cluster."
                )
            _ray_users += 1
        elif not ray.is_initialized():
            _connect(ray, address)
            _ray_users, _ray_address = 1, address
        owned = _ray_users > 0  # else: the caller's own connection
    if not owned:
        yield ray
        return
    try:
        yield ray
    finally:
        with _ray_lock:
            _ray_users -= 1
            if _ray_users == 0:
                _ray_address = None
                ray.shutdown()


def _connect(ray: Any, address: str) -> None:
    package = Path(__file__).resolve().parents[1]
    runtime_env = {
        # Ship this engine to the workers, so a cluster needs only the same Python packages.
        "py_modules": [str(package)],
        "env_vars": {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ},
    }
    try:
        ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING", log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise RayUnavailable(f"Cannot connect to the Ray cluster at {address!r}: {error}") from error


def _pool_options(ray: Any, actors: int | None, blocks: int) -> dict[str, Any]:
    """One GPU per actor when the cluster has GPUs, else one CPU per actor; as many as fit (and no
    more than there are blocks of work)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus > 0:
        size = min(actors or gpus, blocks)
        return {"compute": ray.data.ActorPoolStrategy(size=size), "num_gpus": 1, "num_cpus": 1}
    size = min(actors or max(1, int(resources.get("CPU", 1))), blocks)
    return {"compute": ray.data.ActorPoolStrategy(size=size), "num_cpus": 1}


def _backbone_identity(name: str, checkpoint: str | None, memo: IdentityMemo) -> str:
    """The cache identity the workers' backbone will have: remembered, or found by loading it here."""
    from turtle_core.embedding.backbones import load_backbone, weights_fingerprint

    weights = weights_fingerprint(name, checkpoint)
    known = memo.get(weights) if weights else None
    if known is not None:
        return known
    identity = load_backbone(name, checkpoint, device="cpu").identity
    if weights:
        memo.put(weights, identity)
    return identity


def embed_folder_images_ray(
    root: str | Path,
    records: Sequence[ImageRecord],
    name: str,
    checkpoint: str | None = None,
    *,
    address: str,
    device: str | None = None,
    cache_root: str | Path | None = None,
    batch_size: int = 32,
    actors: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Embeddings:
    """Like `embed_folder_images`, but the images missing from the cache are embedded on the Ray
    cluster at `address` (see `ray_session`). `device` is the workers' (default: their GPU when Ray
    gave them one). Raises `RayUnavailable` when Ray is missing or the cluster unreachable."""
    _import_ray()
    base = Path(cache_root) if cache_root is not None else embedding_cache_dir()
    memo = IdentityMemo(base / IDENTITY_MEMO)
    identity = _backbone_identity(name, checkpoint, memo)
    cache = EmbeddingCache(base / identity)
    everything = all_cached(records, cache, identity, progress)
    if everything is not None:
        return everything

    copies: dict[str, list[str]] = {}
    for record in records:
        copies.setdefault(record.content_hash, []).append(record.path)
    unique = list(copies)
    found, rows = cache.lookup(unique)
    vectors_by_hash = dict(zip((h for h, f in zip(unique, found, strict=True) if f), rows, strict=True))
    todo = [h for h in unique if h not in vectors_by_hash]
    from_cache = sum(1 for r in records if r.content_hash in vectors_by_hash)
    meter = ProgressMeter("embed", len(todo), progress)
    meter.report(message=f"{from_cache} found in the cache, {len(todo)} to compute on Ray", force=True)

    failures: dict[str, str] = {}
    computed = 0
    writer = CacheWriter(cache)
    if not todo:  # nothing to send (no images at all): no cluster needed
        return assemble_embeddings(
            records, vectors_by_hash, failures, identity, cache.dim or 0, from_cache, 0
        )
    with ray_session(address) as ray:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # progress goes to our own callback instead
        context.print_on_execution_start = False
        items = [{"key": key, "paths": "\n".join(copies[key])} for key in todo]
        blocks = min(MAX_BLOCKS, max(1, -(-len(items) // batch_size)))
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        with warnings.catch_warnings():
            # The retry limits below are "ray_remote_args", deprecated in Ray 2.60 without a named
            # replacement; Ray's own default retries a batch that kills its worker forever.
            warnings.simplefilter("ignore")
            embedded = dataset.map_batches(
                BackboneActor,
                fn_constructor_kwargs={
                    "root": os.fspath(root),
                    "name": name,
                    "checkpoint": checkpoint,
                    "device": device,
                },
                batch_size=batch_size,
                batch_format="numpy",
                max_restarts=ACTOR_RESTARTS,
                max_task_retries=ACTOR_RESTARTS,
                **_pool_options(ray, actors, blocks),
            )
        # Closing the iterator (also on cancel or error) shuts Ray Data's executor down at once.
        batches = contextlib.closing(iter(embedded.iter_batches(batch_size=None, batch_format="numpy")))
        try:
            with batches as iterator:
                for batch in iterator:
                    check_cancel(cancel)
                    computed += _take_batch(batch, identity, writer, vectors_by_hash, failures)
                    meter.advance(len(batch["key"]))
        except (ray.exceptions.RayError, ray.data.exceptions.SystemException) as error:
            raise RayUnavailable(
                f"The embedding on Ray stopped ({type(error).__name__}: {error}). The {computed} images "
                "embedded before are in the cache; run again to embed the rest."
            ) from error
        finally:
            writer.flush()
    cache.maybe_compact()
    dim = cache.dim or 0
    return assemble_embeddings(records, vectors_by_hash, failures, identity, dim, from_cache, computed)


def _take_batch(
    batch: dict[str, np.ndarray],
    identity: str,
    writer: CacheWriter,
    vectors_by_hash: dict[str, np.ndarray],
    failures: dict[str, str],
) -> int:
    """Record one batch from the workers; returns how many images it embedded."""
    identities = {str(value) for value in batch["identity"]}
    if identities != {identity}:
        raise RayUnavailable(
            f"A Ray worker's backbone differs from this machine's (cache identity {identities - {identity}} "
            f"instead of {identity}): install the same weights on every node."
        )
    keys = [str(key) for key in batch["key"]]
    ok = np.asarray(batch["ok"], dtype=bool)
    vectors = np.asarray(batch["vector"], dtype=np.float32)
    good = [key for key, good in zip(keys, ok, strict=True) if good]
    for key, good_row, reason in zip(keys, ok, batch["reason"], strict=True):
        if not good_row:
            failures[key] = str(reason)
    if good:
        rows = vectors[ok]
        vectors_by_hash.update(zip(good, rows, strict=True))
        writer.add(good, rows)
    return len(good)


def embed_backbone_images(
    root: str | Path,
    records: Sequence[ImageRecord],
    name: str,
    checkpoint: str | None = None,
    *,
    device: str | None = None,
    ray_address: str | None = None,
    cache_root: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Embeddings:
    """Embed with backbone `name` on this machine, or on the Ray cluster at `ray_address` when given;
    both fill the same embedding cache."""
    if ray_address:
        return embed_folder_images_ray(
            root,
            records,
            name,
            checkpoint,
            address=ray_address,
            device=device,
            cache_root=cache_root,
            progress=progress,
            cancel=cancel,
        )
    return embed_folder_images(
        root,
        records,
        name,
        checkpoint,
        device=device,
        cache_root=cache_root,
        progress=progress,
        cancel=cancel,
    )
