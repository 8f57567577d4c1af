"""Collecting what a served model receives and answers, without slowing the requests.

The data plane calls `Collector.offer` after a request has been answered; it draws the sample,
appends a reference to the request's arrays to a bounded deque and returns (no copy, no I/O, no
lock: nothing wakes the writer). When the deque is full the sample is dropped and counted: a
request is never slowed or failed for the sake of collection. A background thread wakes every
POLL_S, takes what is queued in one go, turns it into Arrow a chunk at a time and writes Parquet,
partitioned the Hive way (`model=NAME/version=V/date=YYYY-MM-DD/`) so that pyarrow, pandas, Spark
and DuckDB read the folder as one table.

Files: each is written to a dot-named temporary file in its partition, fsynced and renamed, so
a reader never sees half a file (readers skip dot-files). A partition's buffer becomes a file
when it holds `rotate_rows` rows or its oldest row is `rotate_seconds` old. SIGTERM/SIGINT
close the data plane, which writes whatever is queued or buffered. A kill -9 loses the rows
not yet written: at most the queue (`queue_requests` requests) plus one rotation's worth per
partition (`rotate_rows` rows or `rotate_seconds` of traffic; defaults 50,000 rows / 60 s).

After each file the writer enforces retention (files older than `retention_days` go) and the
disk cap (oldest files go first until the folder is under `max_bytes`). Rotation and
retention read an injectable clock, so tests move time instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.errors import MissingDependencyError, UsageError
from mlc.monitor.rolling import RollingDrift, RollingSettings, read_gauges
from mlc.monitor.sketch import category_key
from mlc.monitor.summary import default_feature_names, output_columns

log = logging.getLogger("mlc.collect")
Clock = Callable[[], float]  # seconds since the epoch, like time.time
_LOG_EVERY_S = 60.0
# How often the writer thread takes what the hot path queued. A queue.Queue woke it for every request:
# two thread switches and a GIL hand-off per request cost 22% of a 1-worker server's throughput at
# 4,000 req/s (benchmarks/bench_collect.py); taken in batches, the hot path only appends.
POLL_S = 0.05
_DAY_NS = 86_400 * 10**9
_COUNTERS = ("requests_sampled", "rows_written", "requests_dropped", "files_written", "files_removed")


@dataclass(frozen=True)
class CollectSettings:
    """What `mlc serve --collect DIR` collects and how much disk it may use."""

    directory: Path | None  # None: nothing written (--drift-metrics without --collect)
    sample: float = 1.0  # share of answered requests collected
    exclude: tuple[str, ...] = ()  # feature columns not written at all
    hash: tuple[str, ...] = ()  # feature columns written as a SHA-256 prefix of the value
    queue_requests: int = 10_000  # requests waiting for the writer before samples are dropped
    rotate_rows: int = 50_000
    rotate_seconds: float = 60.0
    max_bytes: int = 10 * 2**30
    retention_days: float = 30.0
    # --drift-metrics: a rolling drift score per column on /metrics, against these reference files
    # (each names its version in meta.ref) or the versions' stored references.
    drift: RollingSettings | None = None
    drift_references: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 < self.sample <= 1.0:
            raise UsageError(f"--collect-sample must be in (0, 1], not {self.sample}",
                             "1.0 collects every request, 0.1 one in ten")
        if self.queue_requests < 1 or self.rotate_rows < 1 or self.rotate_seconds <= 0:
            raise UsageError("collection's queue, rotation rows and rotation seconds must be positive")
        if self.max_bytes < 1 or self.retention_days <= 0:
            raise UsageError("collection's disk cap and retention must be positive")
        overlap = set(self.exclude) & set(self.hash)
        if overlap:
            raise UsageError(f"columns both excluded and hashed: {', '.join(sorted(overlap))}",
                             "a column is either left out (--collect-exclude) or hashed (--collect-hash)")

    def check_features(self, model: str, features: Sequence[str]) -> None:
        """Refuse names that are not features of the model: a typo would otherwise leak the column."""
        unknown = [c for c in (*self.exclude, *self.hash) if c not in features]
        if unknown:
            raise UsageError(f"{model} has no feature named {', '.join(unknown)}",
                             f"its features are {', '.join(features[:20])}{' ...' if len(features) > 20 else ''}")


def hashed(value: Any) -> str:
    """A stable 16-hex-digit SHA-256 prefix of the value (not encryption: few values can be guessed)."""
    if isinstance(value, float) and np.isnan(value):
        return ""
    return hashlib.sha256(category_key(value).encode()).hexdigest()[:16]


@dataclass
class Sample:
    """One answered request, as the data plane hands it over (arrays by reference)."""

    model: str
    version: int
    arm: int | None  # the version the traffic split drew, when the request named none
    request_id: str | None
    time_ns: int
    x: np.ndarray
    outputs: Mapping[str, np.ndarray]


# Requests turned into Arrow at a time. Converting a whole 50,000-request file at rotation held the GIL
# for ~115 ms, a stall of the event loop (p99 spikes of 25-30 ms under load); a chunk takes about 1 ms.
_CHUNK_REQUESTS = 256


@dataclass
class _Buffer:
    started: float
    samples: list[Sample] = field(default_factory=list)  # not yet converted
    tables: list[Any] = field(default_factory=list)  # converted chunks, in arrival order
    rows: int = 0


class Counters:
    """This worker's collection counters in a small shared file; /metrics sums every worker's."""

    def __init__(self, directory: Path | None, worker: int) -> None:
        if directory is None:
            self._values = np.zeros(len(_COUNTERS), dtype=np.int64)
            self._directory: Path | None = None
            return
        self._directory = Path(directory)
        path = self._directory / f"collect-{worker}.i64"
        reuse = path.exists() and path.stat().st_size == 8 * len(_COUNTERS)  # a restarted worker keeps counting
        mapped = (np.memmap(path, dtype=np.int64, mode="r+", shape=(len(_COUNTERS),)) if reuse
                  else np.memmap(path, dtype=np.int64, mode="w+", shape=(len(_COUNTERS),)))
        self._values = mapped.view(np.ndarray)

    def add(self, name: str, amount: int = 1) -> None:
        self._values[_COUNTERS.index(name)] += amount

    def get(self, name: str) -> int:
        return int(self._values[_COUNTERS.index(name)])

    def total(self) -> dict[str, int]:
        """Every worker's counters added up."""
        if self._directory is None:
            return {n: int(v) for n, v in zip(_COUNTERS, self._values, strict=True)}
        sums = np.zeros(len(_COUNTERS), dtype=np.int64)
        for path in self._directory.glob("collect-*.i64"):
            with contextlib.suppress(OSError, ValueError):
                sums += np.fromfile(path, dtype=np.int64, count=len(_COUNTERS))
        return {n: int(v) for n, v in zip(_COUNTERS, sums, strict=True)}

    def prometheus(self) -> str:
        totals = self.total()
        lines = []
        for name, help_text in (("requests_sampled", "requests drawn into the collection sample"),
                                ("requests_dropped", "sampled requests dropped because the writer's queue was full"),
                                ("rows_written", "rows written to Parquet files"),
                                ("files_written", "Parquet files written"),
                                ("files_removed", "files removed by retention or the disk cap")):
            metric = f"mlc_collect_{name}_total"
            lines += [f"# HELP {metric} {help_text}.", f"# TYPE {metric} counter", f"{metric} {totals[name]}"]
        return "\n".join(lines) + "\n"


class PartitionWriter:
    """Samples into Parquet files per partition; rotation, retention and the cap by its clock.

    Synchronous and single-threaded: the Collector's thread drives it, tests call it directly.
    """

    def __init__(self, settings: CollectSettings, features: Mapping[tuple[str, int], Sequence[str]],
                 counters: Counters, clock: Clock = time.time, worker: int = 0) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("pyarrow", "data", "collecting requests (--collect)") from exc
        if settings.directory is None:
            raise UsageError("a partition writer needs the folder to write to (--collect DIR)")
        self.directory: Path = settings.directory
        self.settings = settings
        self.features = {key: list(names) for key, names in features.items()}
        self.counters = counters
        self.clock = clock
        self.worker = worker
        self._buffers: dict[tuple[str, int, str], _Buffer] = {}
        self._sequence = 0
        self._dates: dict[int, str] = {}  # day number -> "YYYY-MM-DD", formatted once a day

    def _date(self, time_ns: int) -> str:
        day = time_ns // _DAY_NS
        date = self._dates.get(day)
        if date is None:
            date = self._dates[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))
        return date

    def add(self, sample: Sample) -> None:
        key = (sample.model, sample.version, self._date(sample.time_ns))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = _Buffer(self.clock())
        buffer.samples.append(sample)
        buffer.rows += int(sample.x.shape[0])
        if len(buffer.samples) >= _CHUNK_REQUESTS:
            buffer.tables.append(self._table(sample.model, sample.version, buffer.samples))
            buffer.samples = []
        if buffer.rows >= self.settings.rotate_rows:
            self._write(key)

    def rotate_due(self) -> None:
        """Write every partition whose oldest buffered row is rotate_seconds old."""
        now = self.clock()
        for key in [k for k, b in self._buffers.items() if now - b.started >= self.settings.rotate_seconds]:
            self._write(key)

    def next_due(self) -> float:
        """Seconds until the next time-based rotation (a long wait when nothing is buffered)."""
        if not self._buffers:
            return self.settings.rotate_seconds
        oldest = min(b.started for b in self._buffers.values())
        return max(0.0, oldest + self.settings.rotate_seconds - self.clock())

    def flush(self) -> None:
        for key in list(self._buffers):
            self._write(key)

    def _table(self, model: str, version: int, samples: list[Sample]) -> Any:
        import pyarrow as pa

        x = np.concatenate([s.x.reshape(s.x.shape[0], -1) for s in samples])
        names = self.features.get((model, version)) or []
        if len(names) != x.shape[1]:
            names = default_feature_names(x.shape[1])
        counts = np.array([s.x.shape[0] for s in samples], dtype=np.int64)
        ids = [s.request_id or uuid.uuid4().hex for s in samples]
        first_rows = np.repeat(np.cumsum(counts) - counts, counts)  # each row's request's first row
        columns: dict[str, Any] = {
            "request_id": pa.array(np.repeat(np.asarray(ids, dtype=object), counts), pa.string()),
            "row": pa.array(np.arange(x.shape[0]) - first_rows, pa.int32()),
            "time": pa.array(np.repeat([s.time_ns for s in samples], counts).astype("datetime64[ns]"),
                             pa.timestamp("ns", tz="UTC")),
            "arm": pa.array(np.repeat(np.asarray([s.arm for s in samples], dtype=object), counts), pa.int64()),
        }
        for j, name in enumerate(names):
            if name in self.settings.exclude:
                continue
            column = x[:, j]
            columns[name] = (pa.array([hashed(v) for v in column.tolist()], pa.string())
                             if name in self.settings.hash else pa.array(column))
        outputs: dict[str, list[np.ndarray]] = {}
        for s in samples:
            for name, values in s.outputs.items():
                array = values if isinstance(values, np.ndarray) and values.ndim else np.atleast_1d(values)
                outputs.setdefault(name, []).append(array)
        whole = {name: np.concatenate(parts) for name, parts in outputs.items() if len(parts) == len(samples)}
        for name, values in output_columns(whole).items():
            columns[f"output:{name}"] = pa.array(values)
        return pa.table(columns)

    def _whole(self, model: str, version: int, buffer: _Buffer) -> Any:
        import pyarrow as pa

        tables = [*buffer.tables, *([self._table(model, version, buffer.samples)] if buffer.samples else [])]
        # Chunks of one version share their columns; "default" promotion fills an output a chunk lacked.
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")

    def _write(self, key: tuple[str, int, str]) -> None:
        import pyarrow.parquet as pq

        buffer = self._buffers.pop(key)
        model, version, date = key
        folder = self.directory / f"model={model}" / f"version={version}" / f"date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        name = f"part-{int(self.clock() * 1000):015d}-{os.getpid()}-{self.worker}-{self._sequence:06d}.parquet"
        tmp = folder / f".{name}.tmp"
        try:
            pq.write_table(self._whole(model, version, buffer), tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.counters.add("rows_written", buffer.rows)
        self.counters.add("files_written")
        self.enforce_limits()

    def enforce_limits(self) -> None:
        """Retention first (files older than retention_days), then the cap (oldest first)."""
        files = []
        for path in self.directory.rglob("part-*.parquet"):
            try:
                stamp = int(path.name.split("-")[1]) / 1000
                files.append((stamp, path, path.stat().st_size))
            except (ValueError, IndexError, OSError):
                continue
        files.sort()
        horizon = self.clock() - self.settings.retention_days * 86400
        total = sum(size for _, _, size in files)
        for stamp, path, size in files:
            if stamp >= horizon and total <= self.settings.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                self.counters.add("files_removed")
            total -= size


class Collector:
    """The hot path's side (offer) and the writer thread's (run), with drops counted and logged."""

    def __init__(self, settings: CollectSettings, features: Mapping[tuple[str, int], Sequence[str]], *,
                 counters: Counters | None = None, clock: Clock = time.time, worker: int = 0,
                 start: bool = True, seed: int | None = None, drift: RollingDrift | None = None) -> None:
        for (model, _), names in features.items():
            settings.check_features(model, names)
        self.settings = settings
        self.counters = counters or Counters(None, worker)
        self.writer = (PartitionWriter(settings, features, self.counters, clock, worker)
                       if settings.directory is not None else None)
        self.drift = drift
        self.clock = clock
        self._pending: deque[Sample] = deque()  # appended by the hot path, taken by the writer thread
        self._wake = threading.Event()  # set by close: take the rest now and stop
        self._random = random.Random(seed)
        self._dropped_since_log = 0
        self._last_log = -_LOG_EVERY_S
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        if start:
            self.start()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlc-collect-writer", daemon=True)
        self._thread.start()

    def offer(self, model: str, version: int, arm: int | None, request_id: str | None, x: np.ndarray,
              outputs: Mapping[str, np.ndarray]) -> None:
        """Called on the event loop after a request is answered: never blocks, never raises."""
        if self.settings.sample < 1.0 and self._random.random() >= self.settings.sample:
            return
        self.counters.add("requests_sampled")
        if len(self._pending) < self.settings.queue_requests:
            self._pending.append(Sample(model, version, arm, request_id, time.time_ns(), x, outputs))
        else:
            self.counters.add("requests_dropped")
            self._dropped_since_log += 1
            now = self.clock()
            if now - self._last_log >= _LOG_EVERY_S:
                log.warning("collection: dropped %d sampled request(s) since the last notice: the writer's queue "
                            "of %d requests is full (lower --collect-sample, or give the writer a faster disk)",
                            self._dropped_since_log, self.settings.queue_requests)
                self._last_log = now
                self._dropped_since_log = 0

    def prometheus(self) -> str:
        """The collection counters summed over workers, and the latest rolling drift gauges."""
        text = self.counters.prometheus()
        if self.drift is not None:
            text += read_gauges(self.drift.directory) or self.drift.text
        return text

    def _next_due(self) -> float:
        due = [self.writer.next_due()] if self.writer is not None else []
        if self.drift is not None:
            due.append(self.drift.due_in())
        return max(0.01, min([*due, POLL_S]))

    def _take(self, sample: Sample) -> None:
        if self.writer is not None:
            self.writer.add(sample)
        if self.drift is not None:
            self.drift.add(sample.model, sample.version, sample.x, sample.outputs)

    def _take_pending(self) -> None:
        """Everything queued when called; what the hot path appends meanwhile waits for the next turn."""
        for _ in range(len(self._pending)):
            self._take(self._pending.popleft())

    def _run(self) -> None:
        while True:
            stop = self._wake.wait(self._next_due())
            try:
                self._take_pending()
                if self.writer is not None:
                    self.writer.rotate_due()
                    if stop:
                        self.writer.flush()
            except Exception as exc:  # a full disk must not kill the thread silently and grow the queue
                self.error = exc
                log.exception("collection: writing failed; samples are dropped until it works again")
            if self.drift is not None:
                try:
                    self.drift.tick()
                except Exception:  # a bad reference must not stop collection
                    log.exception("drift metrics: computing the rolling scores failed")
            if stop:
                return

    def drain(self) -> None:
        """Write, in the caller's thread, everything queued (for a writer that was never started)."""
        self._take_pending()
        if self.writer is not None:
            self.writer.flush()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued and buffered, then stop the thread (SIGTERM / SIGINT path)."""
        if self._thread is None:
            self.drain()
            return
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
