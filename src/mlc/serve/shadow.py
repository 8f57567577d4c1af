"""Shadow mode: mirror live requests to a candidate version off the response path, and count agreement.

`mlc serve NAME --shadow NAME:V` answers every request with what it serves as before; after a
sampled request of NAME is answered, the same rows go to the candidate's own batcher in a task
of their own, and its outputs are compared with the ones the client got. The candidate never
touches a response: its failures and its time are its own, and when more mirrored requests are
in flight than its queue holds, new ones are dropped and counted rather than queued without bound.

Outputs are matched by name. Two counts come of each row: whether its labels (the integer
outputs) are equal, and whether it agrees whole: equal labels and every other output within
`atol`. The counters live in one small memory-mapped file per
worker (summed by /metrics, as the collector's are), so a scrape on any worker sees them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlc.serve.exposition import prometheus_labels, prometheus_number

if TYPE_CHECKING:
    from mlc.serve.dataplane import ServedModel

log = logging.getLogger("mlc.serve")

_COUNTERS = ("sampled", "compared", "dropped", "failed", "rows", "rows_same_labels", "rows_agreeing", "max_abs_diff")
_MAX = _COUNTERS.index("max_abs_diff")  # summed over workers by max, not by sum


@dataclass(frozen=True)
class ShadowSettings:
    """How `--shadow` mirrors: the candidate itself is a ServedVersion of the served model's name."""

    sample: float = 1.0  # share of NAME's answered requests mirrored
    atol: float = 1e-5  # non-integer outputs within this absolute difference agree


def compare(served: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
            atol: float) -> tuple[int, int, int, float]:
    """(rows, rows whose labels are equal, rows that agree whole, the largest absolute difference of a
    non-integer output) over the outputs both have. A model without integer outputs has no labels to
    differ: every row counts as same-labelled. Raises ValueError when they share no output or a shared
    one differs in rows."""
    names = [n for n in served if n in candidate]
    if not names:
        raise ValueError(f"no output in common: served {sorted(served)}, candidate {sorted(candidate)}")
    rows = served[names[0]].shape[0]
    labels = np.ones(rows, dtype=bool)
    close = np.ones(rows, dtype=bool)
    largest = 0.0
    for name in names:
        mine, theirs = served[name], candidate[name]
        if mine.shape[0] != rows or theirs.shape[0] != rows:
            raise ValueError(f"output {name!r} has {theirs.shape[0]} rows from the candidate, {mine.shape[0]} served")
        if mine.dtype.kind in "iub" or theirs.dtype.kind in "iubUSO":
            labels &= (mine.reshape(rows, -1) == theirs.reshape(rows, -1)).all(axis=1)
            continue
        diff = np.abs(mine.reshape(rows, -1).astype(np.float64) - theirs.reshape(rows, -1).astype(np.float64))
        per_row = diff.max(axis=1) if diff.shape[1] else np.zeros(rows)
        per_row = np.where(np.isnan(per_row), np.inf, per_row)  # NaN against a number disagrees
        close &= per_row <= atol
        largest = max(largest, float(per_row.max(initial=0.0)))
    return rows, int(labels.sum()), int((labels & close).sum()), largest


class ShadowCounters:
    """This worker's shadow counters in `directory/shadow-PID.f64`; total() reads every worker's."""

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)
        path = self._directory / f"shadow-{os.getpid()}.f64"
        self._values = np.memmap(path, dtype=np.float64, mode="w+", shape=(len(_COUNTERS),)).view(np.ndarray)

    def add(self, name: str, amount: float = 1.0) -> None:
        self._values[_COUNTERS.index(name)] += amount

    def at_least(self, name: str, value: float) -> None:
        index = _COUNTERS.index(name)
        self._values[index] = max(self._values[index], value)

    def total(self) -> dict[str, float]:
        totals = np.zeros(len(_COUNTERS))
        for path in self._directory.glob("shadow-*.f64"):
            with contextlib.suppress(OSError, ValueError):
                values = np.fromfile(path, dtype=np.float64, count=len(_COUNTERS))
                if values.size == len(_COUNTERS):
                    totals[:_MAX] += values[:_MAX]
                    totals[_MAX] = max(totals[_MAX], values[_MAX])
        return dict(zip(_COUNTERS, (float(v) for v in totals), strict=True))


class Shadow:
    """Mirrors sampled requests of one served model to a candidate ServedModel, on the event loop."""

    def __init__(self, settings: ShadowSettings, candidate: ServedModel, counters: ShadowCounters) -> None:
        self.settings = settings
        self.candidate = candidate
        self.counters = counters
        self._random = random.Random()
        self._in_flight = 0
        self._limit = candidate.spec.layout.max_queue_rows  # rows waiting for the candidate at most
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned = False

    def offer(self, name: str, x: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        """After a request of `name` was answered with `outputs`: mirror x to the candidate, maybe."""
        if name != self.candidate.name or self._random.random() >= self.settings.sample:
            return
        self.counters.add("sampled")
        if self._in_flight + x.shape[0] > self._limit:
            self.counters.add("dropped")
            return
        self._in_flight += x.shape[0]
        task = asyncio.get_running_loop().create_task(self._mirror(x, outputs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mirror(self, x: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        try:
            theirs, _, _ = await self.candidate.run(x, alone=False)
            rows, same_labels, agreeing, largest = compare(outputs, theirs, self.settings.atol)
        except Exception as exc:  # the candidate's failure is a count, never the client's problem
            self.counters.add("failed")
            if not self._warned:
                self._warned = True
                log.warning("shadow %s failed on a mirrored request (further failures are only counted): %s",
                            self.candidate.spec.ref, exc)
            return
        finally:
            self._in_flight -= x.shape[0]
        self.counters.add("compared")
        self.counters.add("rows", rows)
        self.counters.add("rows_same_labels", same_labels)
        self.counters.add("rows_agreeing", agreeing)
        self.counters.at_least("max_abs_diff", largest)

    def prometheus(self) -> str:
        """The counters summed over workers, labelled with the served model and the candidate."""
        totals = self.counters.total()
        labels = prometheus_labels(model=self.candidate.name, shadow=self.candidate.spec.ref)
        lines = []
        for metric, kind, help_text, value in (
                ("mlc_shadow_requests_sampled_total", "counter", "answered requests drawn to mirror",
                 totals["sampled"]),
                ("mlc_shadow_requests_compared_total", "counter", "mirrored requests whose outputs were compared",
                 totals["compared"]),
                ("mlc_shadow_requests_dropped_total", "counter",
                 "requests not mirrored because the candidate's queue was full", totals["dropped"]),
                ("mlc_shadow_requests_failed_total", "counter", "mirrored requests the candidate failed",
                 totals["failed"]),
                ("mlc_shadow_rows_total", "counter", "rows compared", totals["rows"]),
                ("mlc_shadow_rows_same_labels_total", "counter", "rows whose labels (integer outputs) are equal",
                 totals["rows_same_labels"]),
                ("mlc_shadow_rows_agreeing_total", "counter",
                 "rows whose labels are equal and other outputs within the tolerance", totals["rows_agreeing"]),
                ("mlc_shadow_max_abs_diff", "gauge", "largest absolute difference of a non-integer output",
                 totals["max_abs_diff"])):
            lines += [f"# HELP {metric} {help_text.capitalize()}.", f"# TYPE {metric} {kind}",
                      f"{metric}{{{labels}}} {prometheus_number(value)}"]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Stop taking mirrored rows; the candidate's batcher finishes what it holds."""
        self.candidate.batcher.close()
