"""Counters every worker process writes and any worker reads: the numbers behind /metrics and /stats.

Worker processes share the port, so a scrape lands on one of them at random; each worker
therefore counts into its own memory-mapped file and answers with the sum over all files.
A worker's event-loop thread writes its request counters and its batcher threads write the
batch counters (under a lock), so each slot has one writer and needs no cross-process lock.
A restarted worker reopens its file and keeps counting, so counters never go backwards.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

# Request latency buckets, in seconds (Prometheus' `le` bounds).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
# HTTP status codes counted server-wide; anything else counts as "other".
STATUS_CODES = (200, 400, 404, 405, 413, 500, 503)


class Slot(IntEnum):
    """The scalar counters of one model version; histograms follow them in the row."""

    SUCCESS = 0  # requests answered 200
    CLIENT_ERROR = 1  # requests refused 4xx after the model was chosen (bad tensors, too many rows)
    QUEUE_FULL = 2  # requests refused 503
    SERVER_ERROR = 3  # requests failed 500 (the model raised)
    ROWS = 4  # rows inferred successfully (Triton's inference_count)
    SUCCESS_NS = 5  # total handling time of successful requests
    FAIL_NS = 6
    DECODE_NS = 7  # request parsing (Triton's compute_input)
    QUEUE_NS = 8  # time waiting for a batch to start
    INFER_NS = 9  # time the request's batch ran (Triton's compute_infer, per request)
    ENCODE_NS = 10  # response building (Triton's compute_output)
    LAST_INFERENCE_MS = 11  # unix time of the last success, in ms (aggregated by max)
    PENDING_ROWS = 12  # gauge: rows submitted to the batcher and not yet answered
    LATENCY_SUM_NS = 13  # sum of the latency histogram's observations


@dataclass(frozen=True)
class Layout:
    """Where each counter lives in a row; identical in every worker because the plan is."""

    keys: tuple[tuple[str, int], ...]  # (model name, version) per row; the last row is server-wide
    max_batch_size: int

    @property
    def latency_at(self) -> int:
        return len(Slot)

    @property
    def batch_count_at(self) -> int:
        return self.latency_at + len(LATENCY_BUCKETS) + 1

    @property
    def batch_ns_at(self) -> int:
        return self.batch_count_at + self.max_batch_size + 1

    @property
    def width(self) -> int:
        # Batch slots are indexed by batch size 0..max_batch_size; size 0 is never used.
        return self.batch_ns_at + self.max_batch_size + 1

    @property
    def server_row(self) -> int:
        return len(self.keys)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.keys) + 1, self.width


class VersionMeter:
    """The counters of one model version in this worker."""

    def __init__(self, row: np.ndarray, layout: Layout) -> None:
        self._row = row
        self._layout = layout
        self._batch_lock = threading.Lock()

    def pending(self, rows: int) -> None:
        self._row[Slot.PENDING_ROWS] += rows

    def success(self, total_ns: int, rows: int, decode_ns: int, queue_ns: int, infer_ns: int,
                encode_ns: int) -> None:
        row = self._row
        row[Slot.SUCCESS] += 1
        row[Slot.ROWS] += rows
        row[Slot.SUCCESS_NS] += total_ns
        row[Slot.DECODE_NS] += decode_ns
        row[Slot.QUEUE_NS] += queue_ns
        row[Slot.INFER_NS] += infer_ns
        row[Slot.ENCODE_NS] += encode_ns
        row[Slot.LAST_INFERENCE_MS] = time.time() * 1000.0
        row[Slot.LATENCY_SUM_NS] += total_ns
        # The first bucket whose bound is >= the latency (Prometheus `le`); past the last, +Inf.
        row[self._layout.latency_at + bisect_left(LATENCY_BUCKETS, total_ns / 1e9)] += 1

    def failure(self, slot: Slot, total_ns: int) -> None:
        self._row[slot] += 1
        self._row[Slot.FAIL_NS] += total_ns

    def batch(self, rows: int, ns: int) -> None:
        """One batch of `rows` ran for `ns`; called from batcher threads."""
        size = min(rows, self._layout.max_batch_size)
        with self._batch_lock:
            self._row[self._layout.batch_count_at + size] += 1
            self._row[self._layout.batch_ns_at + size] += ns


class MetricsBoard:
    """This worker's counters, in `directory/worker-N.f64`, and the sum over every worker's file."""

    def __init__(self, directory: Path, worker: int, layout: Layout) -> None:
        self.directory = Path(directory)
        self.layout = layout
        self._pattern = "worker-*.f64"
        path = self.directory / f"worker-{worker}.f64"
        mode = "r+" if path.exists() and path.stat().st_size == np.prod(layout.shape) * 8 else "w+"
        self._mine = np.memmap(path, dtype=np.float64, mode=mode, shape=layout.shape)
        self._mine[:, Slot.PENDING_ROWS] = 0.0  # gauges describe this process, which starts empty
        # Plain ndarray views of the mapping: np.memmap's own indexing costs microseconds per update.
        counters = self._mine.view(np.ndarray)
        self._meters = {key: VersionMeter(counters[i], layout) for i, key in enumerate(layout.keys)}
        self._server = counters[layout.server_row]

    def meter(self, name: str, version: int) -> VersionMeter:
        return self._meters[(name, version)]

    def response(self, status: int) -> None:
        """Count one HTTP response by status code (server-wide, whatever the route)."""
        index = STATUS_CODES.index(status) if status in STATUS_CODES else len(STATUS_CODES)
        self._server[index] += 1

    def snapshot(self) -> np.ndarray:
        """Every worker's counters added up (last-inference time: the latest of them)."""
        total = np.zeros(self.layout.shape)
        latest = np.zeros(self.layout.shape[0])
        for path in self._files():
            data = np.fromfile(path, dtype=np.float64)
            if data.size != total.size:
                continue  # a file from another layout (a stale run); not ours to count
            data = data.reshape(self.layout.shape)
            total += data
            latest = np.maximum(latest, data[:, Slot.LAST_INFERENCE_MS])
        total[:, Slot.LAST_INFERENCE_MS] = latest
        return total

    def _files(self) -> Iterable[Path]:
        return sorted(self.directory.glob(self._pattern))

    def close(self) -> None:
        self._mine.flush()
