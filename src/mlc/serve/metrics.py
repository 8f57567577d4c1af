"""Counters every worker process writes and any worker reads: the numbers behind /metrics and /stats.

Worker processes share the port, so a scrape lands on one of them at random; each worker
therefore counts into its own memory-mapped file and answers with the sum over all files.
A worker's event-loop thread writes its request counters and its batcher threads write the
batch counters (under a lock), so each slot has one writer and needs no cross-process lock.
A restarted worker reopens its file and keeps counting, so counters never go backwards.

Versions loaded while serving (`mlc serve NAME@ALIAS` following its alias, a rollout's new
split) count into spare rows laid out up front: the row a new version takes is claimed in a
small shared file under a lock, so every worker that loads it counts into the same row whatever
order they load in, and a scrape labels the row from that file.
"""

from __future__ import annotations

import fcntl
import json
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Literal

import numpy as np

from mlc.errors import ConflictError

# Request latency buckets, in seconds (Prometheus' `le` bounds).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
# HTTP status codes counted server-wide; anything else counts as "other".
STATUS_CODES = (200, 400, 401, 404, 405, 413, 500, 503)
# gRPC status codes counted server-wide (after the HTTP ones in the server row), the same way.
GRPC_CODES = ("OK", "INVALID_ARGUMENT", "UNAUTHENTICATED", "NOT_FOUND", "UNIMPLEMENTED", "FAILED_PRECONDITION",
              "RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL")
_GRPC_AT = len(STATUS_CODES) + 1
SPARE_ROWS = 16  # versions a running server can add (alias moves, rollouts) before it must restart
_CLAIMS = "versions.json"  # the rows versions loaded while serving have claimed, in order


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
    spare: int = 0  # rows after keys for versions loaded while serving; keys grow into them

    def adding(self, more: tuple[tuple[str, int], ...]) -> Layout:
        """This layout with `more` versions in its spare rows (the shape, server row included, stays)."""
        if len(more) > self.spare:
            raise ValueError(f"{len(more)} versions do not fit in {self.spare} spare rows")
        return Layout(keys=self.keys + more, max_batch_size=self.max_batch_size, spare=self.spare - len(more))

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
        return len(self.keys) + self.spare

    @property
    def shape(self) -> tuple[int, int]:
        return self.server_row + 1, self.width


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
        mode: Literal["r+", "w+"] = "r+" if path.exists() and path.stat().st_size == np.prod(layout.shape) * 8 else "w+"
        self._mine = np.memmap(path, dtype=np.float64, mode=mode, shape=layout.shape)
        self._mine[:, Slot.PENDING_ROWS] = 0.0  # gauges describe this process, which starts empty
        # Plain ndarray views of the mapping: np.memmap's own indexing costs microseconds per update.
        counters = self._mine.view(np.ndarray)
        self._counters = counters
        self._meters = {key: VersionMeter(counters[i], layout) for i, key in enumerate(layout.keys)}
        self._server = counters[layout.server_row]
        self._meters_lock = threading.Lock()  # versions are loaded in threads beside the event loop

    def meter(self, name: str, version: int) -> VersionMeter:
        """The counters of a version; one loaded while serving claims a spare row shared by every worker."""
        key = (name, version)
        with self._meters_lock:
            if key not in self._meters:
                row = self._claim(key)
                self._meters[key] = VersionMeter(self._counters[row], self.layout)
            return self._meters[key]

    def _claim(self, key: tuple[str, int]) -> int:
        """The row of `key` in every worker's file: its claim in the shared claims file, made now if none."""
        with open(self.directory / f"{_CLAIMS}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            claimed = self._claimed()
            if key not in claimed:
                if len(claimed) >= self.layout.spare:
                    raise ConflictError(
                        f"this server has counted {len(claimed)} versions loaded while serving, all it laid out "
                        f"rows for; cannot meter {key[0]}:{key[1]}",
                        "restart mlc serve to serve it (its metrics are laid out again at start)")
                claimed.append(key)
                path = self.directory / _CLAIMS
                path.with_suffix(".tmp").write_text(json.dumps([list(k) for k in claimed]))
                path.with_suffix(".tmp").replace(path)
            return len(self.layout.keys) + claimed.index(key)

    def _claimed(self) -> list[tuple[str, int]]:
        path = self.directory / _CLAIMS
        if not path.exists():
            return []
        return [(str(n), int(v)) for n, v in json.loads(path.read_text())]

    def current_layout(self) -> Layout:
        """The layout with the versions any worker has loaded while serving: what a scrape labels."""
        return self.layout.adding(tuple(self._claimed()))

    def response(self, status: int) -> None:
        """Count one HTTP response by status code (server-wide, whatever the route)."""
        index = STATUS_CODES.index(status) if status in STATUS_CODES else len(STATUS_CODES)
        self._server[index] += 1

    def grpc_response(self, code: str) -> None:
        """Count one gRPC response by status code name (server-wide, whatever the method)."""
        index = GRPC_CODES.index(code) if code in GRPC_CODES else len(GRPC_CODES)
        self._server[_GRPC_AT + index] += 1

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
