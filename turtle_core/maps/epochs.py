"""UMAP's epochs seen from outside: the layout's progress, and a way to stop it when its job is cancelled.

umap-learn offers no callback; its optimisation loop reports each epoch to a tqdm bar, whose text goes to the
`file` it is given (`tqdm_kwds`). `EpochWatch` is that file: it reads the percentage the bar writes, reports it,
and raises `Cancelled` from inside the loop once the job's cancel event is set, so a cancelled map stops within
an epoch instead of running to its end. The nearest-neighbour graph before the epochs has no such hook.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from turtle_core.progress import Cancelled, Progress, ProgressCallback

_PERCENT = re.compile(r"(\d+)%")
MESSAGE = "UMAP: arranging the points"


class EpochWatch:
    """A text stream for UMAP's tqdm bar (`tqdm_kwds()` gives the arguments that route it here)."""

    def __init__(
        self, n_points: int, progress: ProgressCallback | None, cancel: threading.Event | None
    ) -> None:
        self.n_points = n_points
        self.progress = progress
        self.cancel = cancel
        self.stopped = False  # raise once: tqdm writes again while it closes

    def tqdm_kwds(self) -> dict[str, Any]:
        return {"disable": False, "file": self, "bar_format": "{percentage:3.0f}%", "mininterval": 0.25}

    def write(self, text: str) -> int:
        if self.cancel is not None and self.cancel.is_set() and not self.stopped:
            self.stopped = True
            raise Cancelled()
        found = _PERCENT.findall(text)
        if found and self.progress is not None and not self.stopped:
            done = self.n_points * min(100, int(found[-1])) // 100
            self.progress(Progress("layout", done, self.n_points, message=MESSAGE))
        return len(text)

    def flush(self) -> None:
        return None
