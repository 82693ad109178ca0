"""What the commands share: progress bars on the terminal and CSV text."""

from __future__ import annotations

import csv
import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from turtle_core.progress import Cancelled, Progress

STAGE_UNITS = {"scan": "file", "embed": "img", "turtle": "step", "select": "step", "layout": "pt"}


class TerminalProgress:
    """One tqdm bar per stage on stderr; a new stage closes the previous bar."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar = None
        self._stage: str | None = None
        self._lock = threading.Lock()

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        with self._lock:
            if progress.stage != self._stage or self._bar is None or self._bar.total != progress.total:
                self.close()
                self._stage = progress.stage
                self._bar = tqdm(
                    total=progress.total,
                    desc=f"{progress.stage:>6}",
                    unit=STAGE_UNITS.get(progress.stage, "it"),
                    file=sys.stderr,
                    dynamic_ncols=True,
                )
            self._bar.n = progress.done
            if progress.message:
                self._bar.set_postfix_str(progress.message, refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def csv_text(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


class CommandExit(Exception):
    """Ends a command with an exit status (`main` returns it); its message was printed already."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextmanager
def reported(
    progress: TerminalProgress, errors: tuple[type[Exception], ...], cancelled: str = "cancelled"
) -> Iterator[None]:
    """Run a command's work: the progress bars close when it ends; an error of `errors` is printed and
    ends the command with status 1, a cancel (Ctrl-C) says `cancelled` and ends it with 130."""
    try:
        yield
    except errors as error:
        progress.close()
        print(f"error: {error}", file=sys.stderr)
        raise CommandExit(1) from None
    except (Cancelled, KeyboardInterrupt):
        progress.close()
        print(cancelled, file=sys.stderr)
        raise CommandExit(130) from None
    progress.close()
