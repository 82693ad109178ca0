"""Values computed once per object: a page reruns many times over the same scan or discovery, and some
of what it shows costs a pass over every image."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class IdentityMemo:
    """The last `size` values, each keyed by the identity of the objects it was computed from and kept
    with them, so that a freed object's id reused by a new one can never return a stale value."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, tuple[tuple[object, ...], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, owners: tuple[object, ...], key: Hashable, compute: Callable[[], T]) -> T:
        slot = (tuple(id(owner) for owner in owners), key)
        with self._lock:
            entry = self._entries.get(slot)
            if entry is not None and all(a is b for a, b in zip(entry[0], owners, strict=True)):
                self._entries.move_to_end(slot)
                return entry[1]
        value = compute()
        with self._lock:
            self._entries[slot] = (owners, value)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value
