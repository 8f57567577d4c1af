"""In-process load: the scoring core (Scorer + DynamicBatcher) driven by an open-loop scheduler thread.

This measures what the model and the batcher can do without HTTP in the way: the capacity
ceiling of one replica. A scheduler thread submits one-row requests at precomputed send
times (Poisson or constant gaps) and never waits for answers; each answer's time is taken in
the future's callback, and latency runs from the scheduled time, so queueing in the batcher
and any lateness of the scheduler itself are counted.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np

from mlc.errors import MlcError, UsageError
from mlc.profile.affinity import cores_apart, pinned_self
from mlc.profile.arrivals import arrival_offsets
from mlc.profile.latency import Timings, point_from, probe_rate, summarize
from mlc.profile.results import LoadPoint
from mlc.profile.sampling import ProcessSampler
from mlc.runtime.batcher import DynamicBatcher
from mlc.runtime.scorer import RuntimePlan, Scorer
from mlc.serve.layout import ServingLayout
from mlc.targets import HardwareTarget

_PROBE_REQUESTS = 200
_ROW_POOL = 256
_SETTLE_S = 60.0  # longest wait for a point's backlog to clear before the next point starts


def sample_rows(n_features_or_shape: tuple[int, ...], dtype: np.dtype, seed: int = 0) -> list[np.ndarray]:
    """A pool of distinct one-row requests, so no cache answers them all (standard-normal values)."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((_ROW_POOL, *n_features_or_shape)).astype(dtype)
    return [np.ascontiguousarray(data[i : i + 1]) for i in range(_ROW_POOL)]


class InProcessBench:
    """One configuration, built and warm, ready to take ladders of arrival rates."""

    def __init__(self, batcher: DynamicBatcher, rows: list[np.ndarray], config: ServingLayout, sampler: ProcessSampler,
                 *, poisson: bool, duration_s: float, warmup_s: float, slo_ms: float, seed: int,
                 stop: threading.Event, cores_pinned: int | None, loadgen_cores: list[int] | None = None) -> None:
        self._batcher = batcher
        self._rows = rows
        self.config = config
        self._sampler = sampler
        self._poisson = poisson
        self._duration = duration_s
        self._warmup = warmup_s
        self._slo = slo_ms
        self._seed = seed
        self._stop = stop
        self._cores = cores_pinned
        self._loadgen_cores = loadgen_cores
        self.notes: list[str] = []

    def probe_rps(self) -> float:
        """A safe first rate: half of what sequential one-at-a-time requests achieve per instance."""
        times = []
        for i in range(_PROBE_REQUESTS):
            start = time.perf_counter()
            self._batcher.submit(self._rows[i % len(self._rows)]).result()
            times.append(time.perf_counter() - start)
        return probe_rate(times, self.config.instances)

    def ladder(self, rates: list[float], stop_on_fail: bool = True) -> list[LoadPoint]:
        """Hold each rate for one point's duration, in order; after a point that misses the SLO, stop."""
        points = []
        for rate in rates:
            if self._stop.is_set():
                break
            self._seed += 1
            point = self._measure(rate)
            if self._stop.is_set():
                break  # interrupted mid-point: its figures would mix load and silence
            points.append(point)
            if stop_on_fail and not point.meets_slo:
                break
        return points

    def _measure(self, rate: float) -> LoadPoint:
        offsets = arrival_offsets(rate, self._duration, poisson=self._poisson, seed=self._seed)
        n = offsets.size
        timings = Timings(offsets, np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool))
        t0 = time.perf_counter() + 0.01
        worker = threading.Thread(target=self._schedule, args=(timings, t0), name="mlc-profile-scheduler",
                                  daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.1)  # short joins keep the main thread responsive to Ctrl-C
        except KeyboardInterrupt:
            self._stop.set()  # the scheduler sends no more; what was answered is still summarized
            worker.join()
        drain_until = time.perf_counter() + max(1.0, 5 * self._slo / 1e3)
        while np.isnan(timings.done[np.isfinite(timings.sent)]).any() and time.perf_counter() < drain_until:
            time.sleep(0.005)
        window = (self._warmup, self._duration)
        summary = summarize(timings, offered_rps=rate, window=window, slo_ms=self._slo)
        serving = self._sampler.window(t0 + window[0], t0 + window[1])
        # The queue holds what `mlc serve`'s holds (a whole largest request): after an overloaded
        # point it can hold seconds of work, which must not run into the next point's window.
        settle_until = time.perf_counter() + _SETTLE_S
        while np.isnan(timings.done[np.isfinite(timings.sent)]).any() and time.perf_counter() < settle_until:
            time.sleep(0.01)
        return point_from(summary, serving, cores_pinned=self._cores)

    def _schedule(self, t: Timings, t0: float) -> None:
        if self._loadgen_cores:  # pinned runs: the generator keeps off the cores being measured
            os.sched_setaffinity(0, self._loadgen_cores)
        rows, submit = self._rows, self._batcher.submit
        for i, offset in enumerate(t.scheduled):
            if self._stop.is_set():
                return
            delay = t0 + offset - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t.sent[i] = time.perf_counter() - t0
            try:
                future = submit(rows[i % len(rows)])
            except MlcError:  # queue full: the request is refused at once, an error
                t.done[i] = t.sent[i]
                continue
            future.add_done_callback(partial(_finished, t, i, t0))


def _finished(t: Timings, i: int, t0: float, future: Future) -> None:
    t.done[i] = time.perf_counter() - t0
    t.ok[i] = not future.cancelled() and future.exception() is None


class InProcessLoad:
    """Builds a Scorer and DynamicBatcher per configuration inside this process."""

    mode = "inprocess"

    def __init__(self, model_path: Path, target: HardwareTarget, runtime_plan: RuntimePlan, *, poisson: bool,
                 duration_s: float, warmup_s: float, slo_ms: float, seed: int = 0) -> None:
        self._path = model_path
        self._target = target
        self._plan = runtime_plan
        self._poisson = poisson
        self._duration = duration_s
        self._warmup = warmup_s
        self._slo = slo_ms
        self._seed = seed
        self.stop = threading.Event()

    def serving_pids(self) -> list[int]:
        return [os.getpid()]

    def scorer(self, intra_op_threads: int) -> Scorer:
        """A Scorer as `mlc serve` builds it for this configuration's threads."""
        scorer = Scorer(self._path, self._target, self._plan.serving(intra_op_threads))
        scorer.warmup()
        return scorer

    @contextmanager
    def open(self, config: ServingLayout, sampler: ProcessSampler, cores: list[int] | None = None,
             ) -> Iterator[InProcessBench]:
        """The configuration served in this process (pinned to `cores` if given) for the block's length."""
        others = cores_apart(cores)  # read before pinning narrows it
        with pinned_self(cores):
            scorer = self.scorer(config.threads)
            dims = tuple(scorer.signature.inputs[0].shape[1:])
            shape = tuple(d for d in dims if isinstance(d, int))
            if len(shape) != len(dims):
                raise UsageError(f"the model's input has free non-batch dimensions {dims}; the profiler "
                                 "generates fixed-shape rows", "profile a model with a fixed row shape")
            rows = sample_rows(shape, scorer.input_dtype, seed=self._seed)
            batcher = DynamicBatcher(scorer, **config.batcher_options())  # as `mlc serve` builds it
            try:
                for row in rows[:32]:  # the first batches pay lazy set-up; keep it out of the figures
                    batcher.submit(row).result()
                yield InProcessBench(
                    batcher, rows, config, sampler, poisson=self._poisson, duration_s=self._duration,
                    warmup_s=self._warmup, slo_ms=self._slo, seed=self._seed, stop=self.stop,
                    cores_pinned=len(cores) if cores else None,
                    loadgen_cores=others)
            finally:
                batcher.close(timeout=10)
