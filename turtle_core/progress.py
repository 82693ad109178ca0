"""Progress reporting and cancellation shared by every long-running engine step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class Cancelled(Exception):
    """Raised inside a long-running step when its cancel event is set."""


@dataclass(frozen=True)
class Progress:
    """One progress report: `done` of `total` items of `stage`, at `rate` items/s."""

    stage: str
    done: int
    total: int
    rate: float = 0.0
    eta_s: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


ProgressCallback = Callable[[Progress], None]


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise `Cancelled` when `cancel` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled()


class ProgressMeter:
    """Turns counts into `Progress` reports with a smoothed rate and ETA, throttled to `min_interval_s`."""

    def __init__(
        self,
        stage: str,
        total: int,
        callback: ProgressCallback | None,
        min_interval_s: float = 0.2,
    ) -> None:
        self.stage = stage
        self.total = total
        self.callback = callback
        self.min_interval_s = min_interval_s
        self.done = 0
        self._start = time.perf_counter()
        self._last_report = -1.0

    def advance(self, n: int = 1, message: str = "", force: bool = False) -> None:
        self.done += n
        self.report(message=message, force=force or self.done >= self.total)

    def report(self, message: str = "", force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_report < self.min_interval_s:
            return
        self._last_report = now
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else None
        self.callback(Progress(self.stage, self.done, self.total, rate, eta, message))
