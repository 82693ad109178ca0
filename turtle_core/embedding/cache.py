"""Content-addressed, crash-safe embedding store for one backbone identity.

Vectors live in append-only chunks: `<chunk>.npy` (written and renamed into place first) and its
`<chunk>.json` manifest (written last). A chunk counts only when its manifest exists and its array
has exactly the rows and width the manifest promises (and, up to `VERIFY_ON_OPEN_BYTES`, the checksum
it records), so a killed writer or a damaged file never yields wrong vectors.

Several processes share a cache (two app instances, the app and the command line, Ray drivers): a file
lock (`.lock`, `flock`) is held shared while a process reads the directory or writes a chunk, and
exclusively while one compacts. Compaction therefore never removes a chunk another process is opening
or reading, and what it finds unmanifested is debris of a killed writer, removed at once; a process
that still maps a removed chunk drops it at its next look.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from turtle_core.atomic import atomic_write_json, fsync_dir, read_json
from turtle_core.ingest.scan import hash_bytes

try:  # POSIX; elsewhere only the in-process lock applies
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None  # type: ignore[assignment]

MANIFEST_VERSION = 1
_LOOKUP_BLOCK = 65_536  # rows copied at a time by `lookup`
LOCK_FILE = ".lock"
# Chunks up to this size are checked against their checksum when first opened (a few ms each); larger
# ones (a compacted million rows: gigabytes) only by `verify`/`compact`, which read them whole.
VERIFY_ON_OPEN_BYTES = 64 << 20


@dataclass
class _Chunk:
    name: str
    keys: list[str]
    array: np.memmap
    checksum: str


def _release(array: np.ndarray) -> None:
    """Unmap the file pages a read-only memory map has touched from this process's resident set (the
    kernel keeps them in its page cache): reading a million rows otherwise leaves the 5 GB file
    counted in the process's memory next to the copy that was made of it."""
    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        with contextlib.suppress(OSError, ValueError):
            handle.madvise(mmap.MADV_DONTNEED)


def _file_checksum(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class EmbeddingCache:
    """Vectors keyed by image content hash, for one backbone identity (one directory)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._chunks: dict[str, _Chunk] = {}
        self._index: dict[str, tuple[str, int]] = {}
        self._seen: set[str] = set()  # manifest names already considered (trusted or not)
        self._lock_fd: int | None = None  # the file lock this object holds, if any
        self._exclusive = False
        self.dim: int | None = None
        self.refresh()

    # ------------------------------------------------------------ the lock between processes

    @contextlib.contextmanager
    def _shared(self, *, exclusive: bool = False, blocking: bool = True) -> Iterator[bool]:
        """Hold the directory's file lock (shared, or `exclusive`) unless this object holds it already;
        yields False when `blocking=False` and another process holds it. Call with `self._lock` held."""
        if self._lock_fd is not None:
            if exclusive and not self._exclusive:
                raise RuntimeError("the embedding cache's shared lock cannot be upgraded in place")
            yield True
            return
        try:
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only cache: nothing can be written or compacted there anyway
            fd = None
        if fd is None or fcntl is None:
            yield True
            return
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode if blocking else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd, self._exclusive = fd, exclusive
        try:
            yield True
        finally:
            self._lock_fd, self._exclusive = None, False
            os.close(fd)  # releases the lock

    # ------------------------------------------------------------ reading

    def refresh(self) -> None:
        """Pick up chunks written since the last look (e.g. by another process), and drop chunks
        another process's compaction removed."""
        with self._lock, self._shared():
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        manifests = sorted(p for p in self.directory.glob("chunk-*.json"))
        present = {manifest.stem for manifest in manifests}
        gone = [name for name in self._chunks if name not in present]
        if gone:  # compacted away elsewhere: rebuild the index from what is still there
            for name in gone:
                _release(self._chunks.pop(name).array)
            self._seen = {name for name in self._seen if name[: -len(".json")] in present}
            self._index = {}
            for chunk in self._chunks.values():
                for row, key in enumerate(chunk.keys):
                    self._index[key] = (chunk.name, row)
        for manifest in manifests:
            if manifest.name in self._seen:
                continue
            self._seen.add(manifest.name)
            chunk = self._open_chunk(manifest)
            if chunk is None:
                continue
            self._chunks[chunk.name] = chunk
            for row, key in enumerate(chunk.keys):
                self._index[key] = (chunk.name, row)

    def _open_chunk(self, manifest: Path) -> _Chunk | None:
        try:
            meta = read_json(manifest)
            keys = [str(k) for k in meta["keys"]]
            rows, dim = int(meta["rows"]), int(meta["dim"])
            npy = self.directory / str(meta["npy"])
            if meta.get("dtype") != "float32" or len(keys) != rows or Path(meta["npy"]).name != meta["npy"]:
                return None
            array = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if array.shape != (rows, dim) or array.dtype != np.float32:
            return None
        checksum = str(meta.get("checksum", ""))
        try:
            if checksum and npy.stat().st_size <= VERIFY_ON_OPEN_BYTES and _file_checksum(npy) != checksum:
                return None  # damaged on disk: its vectors are computed again
        except OSError:
            return None
        if self.dim is None:
            self.dim = dim
        elif dim != self.dim:
            return None
        return _Chunk(manifest.stem, keys, array, checksum)

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._index

    def lookup(self, hashes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(found mask over `hashes`, float32 rows of the found keys in order)."""
        with self._lock, self._shared():
            self._refresh_locked()
            places = [self._index.get(h) for h in hashes]
            found = np.array([p is not None for p in places], dtype=bool)
            out = np.empty((int(found.sum()), self.dim or 0), dtype=np.float32)
            by_chunk: dict[str, tuple[list[int], list[int]]] = {}
            out_row = 0
            for place in places:
                if place is None:
                    continue
                chunk_rows, out_rows = by_chunk.setdefault(place[0], ([], []))
                chunk_rows.append(place[1])
                out_rows.append(out_row)
                out_row += 1
            for name, (chunk_rows, out_rows) in by_chunk.items():
                # In blocks: a million-row lookup must not hold a second full copy of the vectors.
                array = self._chunks[name].array
                for lo in range(0, len(chunk_rows), _LOOKUP_BLOCK):
                    out[out_rows[lo : lo + _LOOKUP_BLOCK]] = array[chunk_rows[lo : lo + _LOOKUP_BLOCK]]
                    _release(array)
        # A non-finite vector (NaN/inf, e.g. cached by an older version from fp16 autocast) is a miss:
        # it is computed again instead of failing every discovery that uses it.
        finite = np.ones(out.shape[0], dtype=bool)
        for lo in range(0, out.shape[0], _LOOKUP_BLOCK):
            finite[lo : lo + _LOOKUP_BLOCK] = np.isfinite(out[lo : lo + _LOOKUP_BLOCK]).all(axis=1)
        if not finite.all():
            found[np.flatnonzero(found)[~finite]] = False
            out = out[finite]
        return found, out

    # ------------------------------------------------------------ writing

    def add(self, hashes: Sequence[str], vectors: np.ndarray) -> int:
        """Store new vectors as one new chunk (keys already present are skipped, and non-finite
        vectors are never stored). Returns how many were written."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(hashes):
            raise ValueError(f"expected {len(hashes)} rows of vectors, got shape {vectors.shape}")
        finite = np.isfinite(vectors).all(axis=1)
        with self._lock, self._shared():  # shared: writers add chunks side by side; compaction waits
            self._refresh_locked()
            if self.dim is not None and vectors.shape[1] != self.dim:
                raise ValueError(f"this cache holds {self.dim}-d vectors, got {vectors.shape[1]}-d")
            keep: list[int] = []
            fresh: set[str] = set()
            for i, key in enumerate(hashes):
                if (
                    finite[i]
                    and (key not in self._index or not self._stored_finite(key))
                    and key not in fresh
                ):
                    fresh.add(key)
                    keep.append(i)
            if not keep:
                return 0
            keys = [str(hashes[i]) for i in keep]
            self._write_chunk(keys, [vectors[keep]])
            return len(keys)

    def _stored_finite(self, key: str) -> bool:
        name, row = self._index[key]
        return bool(np.isfinite(self._chunks[name].array[row]).all())

    def _write_chunk(self, keys: list[str], parts: list[np.ndarray]) -> _Chunk:
        dim = int(parts[0].shape[1])
        name = f"chunk-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        npy = self.directory / f"{name}.npy"
        tmp = self.directory / f".{name}.npy.tmp"
        try:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(keys), dim))
            row = 0
            for part in parts:
                array[row : row + len(part)] = part
                row += len(part)
            array.flush()
            del array
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, npy)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.directory)
        checksum = _file_checksum(npy)
        manifest = {
            "version": MANIFEST_VERSION,
            "npy": npy.name,
            "rows": len(keys),
            "dim": dim,
            "dtype": "float32",
            "checksum": checksum,
            "keys": keys,
        }
        atomic_write_json(self.directory / f"{name}.json", manifest)
        self._seen.add(f"{name}.json")
        chunk = _Chunk(name, keys, np.load(npy, mmap_mode="r", allow_pickle=False), checksum)
        self._chunks[name] = chunk
        if self.dim is None:
            self.dim = dim
        for r, key in enumerate(keys):
            self._index[key] = (name, r)
        return chunk

    @property
    def chunk_count(self) -> int:
        with self._lock:
            return len(self._chunks)

    def verify(self) -> list[str]:
        """Names of chunks whose array no longer matches its recorded checksum (full read)."""
        with self._lock:
            return [
                c.name
                for c in self._chunks.values()
                if c.checksum and _file_checksum(self.directory / f"{c.name}.npy") != c.checksum
            ]

    def compact(self, *, wait: bool = True) -> bool:
        """Merge all chunks into one (atomically), drop corrupt ones, clean up leftovers, holding the
        directory's lock exclusively (no other process reads or writes meanwhile). With `wait=False`,
        does nothing and returns False while another process uses the cache; else returns True."""
        with self._lock, self._shared(exclusive=True, blocking=wait) as held:
            if not held:
                return False
            self._refresh_locked()
            bad = set(self.verify())
            old = list(self._chunks.values())
            good = [c for c in old if c.name not in bad]
            if len(good) > 1 or bad:
                keys: list[str] = []
                parts: list[np.ndarray] = []
                taken: set[str] = set()
                for chunk in good:
                    rows = [i for i, k in enumerate(chunk.keys) if k not in taken]
                    taken.update(chunk.keys[i] for i in rows)
                    keys.extend(chunk.keys[i] for i in rows)
                    parts.append(np.asarray(chunk.array[rows]))
                self._chunks.clear()
                self._index.clear()
                if keys:
                    self._write_chunk(keys, parts)
                for chunk in old:
                    self._remove_chunk(chunk.name)
            self._clean_leftovers()
            return True

    def maybe_compact(self, max_chunks: int = 32) -> bool:
        """Compact when there are more than `max_chunks` chunks and no other process uses the cache
        right now (else a later run does it); True when it did."""
        if self.chunk_count > max_chunks:
            return self.compact(wait=False)
        return False

    def _remove_chunk(self, name: str) -> None:
        # Manifest first: an array without manifest is ignored, the reverse would be a broken chunk.
        for suffix in (".json", ".npy"):
            with contextlib.suppress(OSError):
                (self.directory / f"{name}{suffix}").unlink(missing_ok=True)

    def _clean_leftovers(self) -> None:
        """Remove chunk files no manifest vouches for. Only under the exclusive lock: every writer
        holds the shared lock from its temp file to its manifest, so none is at work now."""
        trusted = set(self._chunks)
        for path in self.directory.iterdir():
            name = path.name
            stem = name.split(".")[1] if name.startswith(".") else path.stem
            if stem in trusted or not (name.startswith("chunk-") or name.startswith(".chunk-")):
                continue
            try:
                if name.endswith(".json"):
                    self._seen.discard(name)
                path.unlink()
            except OSError:
                pass


IDENTITY_MEMO = "identities.json"


class IdentityMemo:
    """Which cache identity a backbone's weights had when last loaded, keyed by the fingerprints of
    the weights' files (`weights_fingerprint`). Written atomically; unreadable means empty."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _key(weights: str) -> str:
        return hash_bytes(weights.encode("utf-8", "surrogateescape"))

    def get(self, weights: str) -> str | None:
        found = self._read().get(self._key(weights))
        return found if isinstance(found, str) else None

    def put(self, weights: str, identity: str) -> None:
        data = self._read()
        if data.get(self._key(weights)) == identity:
            return
        data[self._key(weights)] = identity
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, data)
