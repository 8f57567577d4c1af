"""A rolling drift score per feature for `/metrics` (`mlc serve --drift-metrics`), off the hot path.

The collector's background thread hands every sampled request to `RollingDrift.add`, which
sketches its rows into the newest of a few chunks (so the window rolls over without keeping
rows: the oldest chunk is dropped once the window holds `window_rows`). Every `interval_s` (on
an injectable clock) the thread writes this worker's window to `drift-<pid>.json` in the
server's metrics folder, merges every live worker's window (sketches are mergeable, so the
score is over all the server's traffic, not one worker's share), judges it against each
version's reference with the same checks as `mlc monitor`, and writes the gauges whole to
`drift.prom`. /metrics only reads that file: a scrape costs no statistics.

Gauges: mlc_drift_psi and mlc_drift_flagged (1 when the column's checks say drift) per model,
version and column; mlc_drift_window_rows per version.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlc.files import atomic_write
from mlc.monitor.summary import DataSummary

log = logging.getLogger("mlc.drift")
Clock = Callable[[], float]
_CHUNKS = 8  # the window rolls over in steps of window_rows / _CHUNKS rows
PROM_FILE = "drift.prom"


@dataclass(frozen=True)
class RollingSettings:
    """How much recent traffic the score covers and how often it is recomputed."""

    window_rows: int = 10_000
    interval_s: float = 30.0


class _Window:
    """One version's recent rows, as a few sketched chunks."""

    def __init__(self, reference: DataSummary, window_rows: int) -> None:
        self.reference = reference
        self.chunk_rows = max(1, window_rows // _CHUNKS)
        self.chunks: deque[DataSummary] = deque(maxlen=_CHUNKS)

    def add(self, x: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        if not self.chunks or self.chunks[-1].rows >= self.chunk_rows:
            self.chunks.append(DataSummary.empty_like(self.reference))
        self.chunks[-1].update(x, outputs)

    def summary(self) -> DataSummary:
        merged = DataSummary.empty_like(self.reference)
        for chunk in self.chunks:
            merged.merge(chunk)
        return merged


class RollingDrift:
    """Per-version rolling windows, their shared files, and the gauges (see the module docstring)."""

    def __init__(self, references: Mapping[tuple[str, int], DataSummary], settings: RollingSettings,
                 directory: Path | None, clock: Clock = time.time, worker: int | None = None) -> None:
        self.settings = settings
        self.windows = {key: _Window(ref, settings.window_rows) for key, ref in references.items()}
        self.directory = Path(directory) if directory is not None else None
        self.clock = clock
        self.worker = os.getpid() if worker is None else worker
        self._next = clock() + settings.interval_s
        self.text = ""  # the latest gauges (also in directory/drift.prom)

    def add(self, model: str, version: int, x: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        window = self.windows.get((model, version))
        if window is not None and x.ndim == 2 and x.shape[1] == len(window.reference.features):
            window.add(np.asarray(x, dtype=np.float64), outputs)

    def due_in(self) -> float:
        return max(0.0, self._next - self.clock())

    def tick(self) -> bool:
        """Recompute when the interval has passed; True when it did."""
        if self.clock() < self._next:
            return False
        self._next = self.clock() + self.settings.interval_s
        self.update()
        return True

    def update(self) -> str:
        """Share this worker's windows, merge every live worker's, and write the gauges."""
        from mlc.monitor.drift import DRIFT, compare

        merged = {key: w.summary() for key, w in self.windows.items()}
        if self.directory is not None:
            mine = {f"{m}:{v}": s.to_dict() for (m, v), s in merged.items()}
            atomic_write(self.directory / f"drift-{self.worker}.json", json.dumps(mine).encode())
            merged = self._merge_workers(merged)
        lines = ["# HELP mlc_drift_psi Population stability index of each column's recent rows against "
                 "the version's reference.", "# TYPE mlc_drift_psi gauge",
                 "# HELP mlc_drift_flagged 1 when a column's drift checks flag it (the checks of mlc monitor).",
                 "# TYPE mlc_drift_flagged gauge",
                 "# HELP mlc_drift_window_rows Rows in the rolling drift window.", "# TYPE mlc_drift_window_rows gauge"]
        for (model, version), summary in sorted(merged.items()):
            labels = f'model="{model}",version="{version}"'
            lines.append(f"mlc_drift_window_rows{{{labels}}} {summary.rows}")
            if summary.rows == 0:
                continue
            result = compare(self.windows[(model, version)].reference, summary)
            for column in result.columns:
                psi = column.figures.get("psi")
                where = f'{labels},column="{column.name}",role="{column.role}"'
                if psi is not None:
                    lines.append(f"mlc_drift_psi{{{where}}} {psi:.6g}")
                lines.append(f"mlc_drift_flagged{{{where}}} {int(column.verdict == DRIFT)}")
        self.text = "\n".join(lines) + "\n"
        if self.directory is not None:
            atomic_write(self.directory / PROM_FILE, self.text.encode())
        return self.text

    def _merge_workers(self, mine: dict[tuple[str, int], DataSummary]) -> dict[tuple[str, int], DataSummary]:
        """This worker's windows plus every other worker's written within the last three intervals."""
        if self.directory is None:
            return mine
        horizon = time.time() - 3 * self.settings.interval_s
        for path in self.directory.glob("drift-*.json"):
            if path.name == f"drift-{self.worker}.json":
                continue
            with contextlib.suppress(OSError, ValueError, KeyError):
                if path.stat().st_mtime < horizon:
                    continue
                for key, data in json.loads(path.read_text()).items():
                    name, _, version = key.rpartition(":")
                    if (name, int(version)) in mine:
                        mine[(name, int(version))].merge(DataSummary.from_dict(data))
        return mine


def read_gauges(directory: Path | None) -> str:
    """The latest gauges any worker wrote (empty before the first interval)."""
    if directory is None:
        return ""
    try:
        return (Path(directory) / PROM_FILE).read_text()
    except OSError:
        return ""
