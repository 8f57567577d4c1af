"""Latency of several calls measured interleaved, so drift on a shared machine hits all of them alike.

Each call is timed on its own (perf_counter_ns around one call) after warm-up,
with the garbage collector off, in short alternating slices. Measurement stops
when the time budget is spent and every call has its minimum sample count, or
when every call has the maximum: a slow call gets few samples, a fast one many.
"""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")  # what cycling hands each call: a batch

# One slice of calls per candidate per round: long enough to amortize the switch, short
# enough that many rounds alternate inside the budget.
_SLICE_S = 0.004
# Rows that the batches a call cycles through span (one batch when it is larger).
DISTINCT_ROWS = 256


@dataclass(frozen=True)
class Latency:
    median_us: float
    p99_us: float
    samples: int

    def to_dict(self) -> dict[str, float | int]:
        return {"median_us": round(self.median_us, 3), "p99_us": round(self.p99_us, 3), "samples": self.samples}


def measure(calls: Mapping[str, Callable[[], object]], *, budget_s: float, warmup: int = 3,
            min_samples: int = 7, max_samples: int = 2000) -> dict[str, Latency]:
    """Median and p99 latency of each zero-argument call."""
    samples: dict[str, list[int]] = {key: [] for key in calls}
    per_call_s: dict[str, float] = {}
    for key, call in calls.items():
        start = time.perf_counter()
        for _ in range(warmup):
            call()
        per_call_s[key] = max((time.perf_counter() - start) / warmup, 1e-7)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        deadline = time.perf_counter() + budget_s
        order = list(calls)
        while True:
            active = [k for k in order if len(samples[k]) < max_samples]
            if not active:
                break
            if time.perf_counter() >= deadline and all(len(samples[k]) >= min_samples for k in order):
                break
            for key in active:
                _slice(calls[key], samples[key], max(1, int(_SLICE_S / per_call_s[key])), max_samples)
            order = order[1:] + order[:1]  # rotate who goes first
    finally:
        if gc_was_enabled:
            gc.enable()
    return {key: _summarize(values) for key, values in samples.items()}


def _slice(call: Callable[[], object], out: list[int], n: int, cap: int) -> None:
    clock = time.perf_counter_ns
    for _ in range(min(n, cap - len(out))):
        start = clock()
        call()
        out.append(clock() - start)


def _summarize(values_ns: list[int]) -> Latency:
    arr = np.asarray(values_ns, dtype=np.float64) / 1e3
    return Latency(median_us=float(np.median(arr)), p99_us=float(np.percentile(arr, 99)), samples=len(arr))


def distinct_batches(rows: np.ndarray, batch: int) -> list[np.ndarray]:
    """Consecutive batches of `rows` (wrapping around), spanning DISTINCT_ROWS rows, to time in turn.

    One batch timed over and over lets the branch predictor learn its tree walks, which a
    server's stream of distinct rows never allows: ONNX Runtime's tree ensembles ran 2-3x
    faster at batch 1 on one repeated row (benchmarks/results/trees.md).
    """
    count = max(1, min(len(rows), DISTINCT_ROWS) // batch)
    return [np.ascontiguousarray(rows[(np.arange(batch) + k * batch) % len(rows)]) for k in range(count)]


def cycling(call: Callable[[T], object], batches: list[T]) -> Callable[[], object]:
    """A zero-argument call on the next of `batches` each time, for `measure`."""
    turn = itertools.cycle(batches)
    return lambda: call(next(turn))


def cycling_calls(calls: list[Callable[[], object]]) -> Callable[[], object]:
    """A zero-argument call of the next of `calls` each time (bound calls, one per batch), for `measure`.

    Shaped like `cycling` (one lambda, one next, one call), so both time alike; operator.call,
    the other way to write it, exists only from Python 3.11.
    """
    turn = itertools.cycle(calls)
    return lambda: next(turn)()
