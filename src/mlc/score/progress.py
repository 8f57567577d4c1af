"""Progress of a run: a rich bar (rows, rows/s, ETA) on a terminal, plain lines otherwise.

Logs and CI get one line every few seconds and a last one at the end, instead of a bar's
control characters. Both go to stderr, so `--json` output on stdout stays parseable.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    def start(self, total: int | None, done: int) -> None: ...
    def advance(self, rows: int) -> None: ...
    def finish(self) -> None: ...


class Silent:
    """No progress output (the library's default)."""

    def start(self, total: int | None, done: int) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass

    def finish(self) -> None:
        pass


class Lines:
    """One plain line every `every_s` seconds and one at the end."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.total: int | None = None
        self.done = self.resumed = 0
        self.said = -1  # rows done at the last line printed
        self.t0 = self.last = 0.0

    def start(self, total: int | None, done: int) -> None:
        self.total, self.done, self.resumed = total, done, done
        self.t0 = self.last = time.monotonic()
        if done:
            self._say(f"resuming: {done:,} rows already scored")

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._say(self._line(now))

    def finish(self) -> None:
        if self.said != self.done:  # the last line says where the run ended, once
            self._say(self._line(time.monotonic()))

    def _line(self, now: float) -> str:
        rate = (self.done - self.resumed) / max(now - self.t0, 1e-9)
        text = f"scored {self.done:,}"
        if self.total:
            text += f" / {self.total:,} rows ({100 * self.done / self.total:.0f}%)"
        else:
            text += " rows"
        text += f", {rate:,.0f} rows/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {(self.total - self.done) / rate:.0f} s"
        return text

    def _say(self, text: str) -> None:
        self.said = self.done
        print(f"mlc score: {text}", file=self.stream, flush=True)


class Bar:
    """rich's progress bar on a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress: Any = Progress(
            TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self._task: Any = None
        self._t0 = 0.0
        self._done = self._resumed = 0

    def start(self, total: int | None, done: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("rows", total=total, completed=done, rate="-")
        self._t0, self._done, self._resumed = time.monotonic(), done, done

    def advance(self, rows: int) -> None:
        self._done += rows
        rate = (self._done - self._resumed) / max(time.monotonic() - self._t0, 1e-9)
        self._progress.update(self._task, advance=rows, rate=f"{rate:,.0f}")

    def finish(self) -> None:
        self._progress.stop()


def for_terminal(stream: TextIO | None = None) -> Progress:
    """A bar when `stream` (default stderr) is a terminal, else plain lines."""
    stream = stream or sys.stderr
    return Bar() if stream.isatty() else Lines(stream)
