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
    """One progress report: `done` of `total` `unit` of `stage`, at `rate` units per second.

    `unit` names what is counted ("images", "files", "steps", …); empty means the stage's usual unit.
    `message` says in plain words what the stage is doing right now."""

    stage: str
    done: int
    total: int
    rate: float = 0.0
    eta_s: float | None = None
    message: str = ""
    unit: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def remaining(self) -> bool:
        """True while counted work is left (`done` below a known `total`)."""
        return bool(self.total) and self.done < self.total


ProgressCallback = Callable[[Progress], None]


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise `Cancelled` when `cancel` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled()


class ProgressMeter:
    """Turns counts into `Progress` reports with a rate and ETA, throttled to `min_interval_s`.

    `report(extra=n)` reports `n` units of the current piece of work beyond `done` without counting
    them yet (e.g. the steps of a training run that is still going), so the bar moves smoothly and
    stays monotone when the piece is later counted with `advance`."""

    def __init__(
        self,
        stage: str,
        total: int,
        callback: ProgressCallback | None,
        min_interval_s: float = 0.2,
        unit: str = "",
    ) -> None:
        self.stage = stage
        self.total = total
        self.callback = callback
        self.min_interval_s = min_interval_s
        self.unit = unit
        self.done = 0
        self._start = time.perf_counter()
        self._last_report = -1.0
        self._shown = 0

    def advance(self, n: int = 1, message: str = "", force: bool = False) -> None:
        self.done += n
        self.report(message=message, force=force or self.done >= self.total)

    def report(self, message: str = "", force: bool = False, extra: int = 0) -> None:
        if self.callback is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_report < self.min_interval_s:
            return
        self._last_report = now
        done = self.done + max(0, int(extra))
        if self.total:
            done = min(done, self.total)
        done = max(done, self._shown)  # never step back, whatever the caller's pieces add up to
        self._shown = done
        elapsed = max(now - self._start, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else None
        self.callback(Progress(self.stage, done, self.total, rate, eta, message, self.unit))


def count_text(n: int) -> str:
    """An integer grouped by thin spaces ("22 800"), as every page of the app writes numbers."""
    return f"{int(n):,}".replace(",", "\u202f")
