"""Which configurations to measure, and at which arrival rates.

For each configuration the question is its capacity: the highest throughput whose p99 stays
within the SLO. Rates ramp up geometrically from a probe-based start until a point misses
the SLO, then the gap between the last pass and the first miss is bisected. Configurations
come from a grid (every batching setting x every layout of instances, threads and workers
that fits the cores), or, with --quick, from a hill climb like Triton Model Analyzer's quick
search: start from a middle configuration, move one setting a step at a time while it helps.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Protocol

from mlc.config import DEFAULT_MAX_REQUEST_ROWS
from mlc.profile.results import ConfigResult, LoadPoint, better, choose
from mlc.profile.sampling import ProcessSampler
from mlc.serve.layout import ServingLayout, share_of_cores
from mlc.testhooks import pause_at

RAMP = 1.6  # rate ratio between steps of the ramp
_RESOLUTION = 1.25  # bisect until the last pass and the first miss are this close


class Bench(Protocol):
    config: ServingLayout
    notes: list[str]

    def probe_rps(self) -> float: ...

    def ladder(self, rates: list[float], stop_on_fail: bool = True) -> list[LoadPoint]: ...


class Load(Protocol):
    mode: str
    stop: threading.Event

    def serving_pids(self) -> list[int]: ...

    def open(self, config: ServingLayout, sampler: ProcessSampler,
             cores: list[int] | None = None) -> AbstractContextManager[Bench]: ...


@dataclass(frozen=True)
class Space:
    """The settings a sweep may choose from, sized to the cores it measures on."""

    batch_sizes: tuple[int, ...]  # the grid's
    climb_batch_sizes: tuple[int, ...]  # finer steps for the hill climb
    delays_us: tuple[int, ...]
    layouts: tuple[ServingLayout, ...]  # instances x threads x workers, batching unset
    max_request_rows: int = DEFAULT_MAX_REQUEST_ROWS  # the server's bound, which sizes each layout's queue

    @classmethod
    def for_target(cls, *, cores: int, gpu: bool, slo_ms: float, http: bool,
                   max_request_rows: int = DEFAULT_MAX_REQUEST_ROWS) -> Space:
        """Batch sizes by device; queue delays well inside the SLO; every power-of-two layout that fits."""
        batch_sizes = (1, 64, 256, 1024) if gpu else (1, 8, 32)
        climb = (1, 16, 64, 256, 1024, 4096) if gpu else (1, 4, 8, 16, 32, 64)
        delays = tuple(d for d in ((500, 2000) if gpu else (250, 1000)) if d <= slo_ms * 1e3 / 4) or (0,)
        powers = [2**k for k in range(int(math.log2(cores)) + 1)]
        if http:
            # Each HTTP configuration starts a server: only layouts that use every core, with
            # worker processes, one or two instances per worker and the threads that fill them.
            layouts = tuple(sorted((ServingLayout.of(workers=w, instances=i, threads=share_of_cores(cores, w, i))
                                    for w in powers for i in (1, 2) if w * i <= cores),
                                   key=lambda c: (-c.instances, c.workers)))
        else:
            # Fewest cores first; at equal cores more instances first (tree models gain more from
            # running batches side by side than from threads inside one), so a climb meets them first.
            layouts = tuple(sorted((ServingLayout.of(instances=i, threads=t)
                                    for i in powers for t in powers if i * t <= cores),
                                   key=lambda c: (c.cores, -c.instances)))
        return cls(batch_sizes, climb, delays, layouts, max_request_rows)

    def at(self, layout: ServingLayout, max_batch_size: int, max_queue_delay_us: int) -> ServingLayout:
        """One of the layouts with these batcher settings, its queue sized as `mlc serve` sizes it."""
        return layout.batching(max_batch_size, max_queue_delay_us, self.max_request_rows)

    def grid(self) -> list[ServingLayout]:
        batching = [(1, 0)] + [(b, d) for b in self.batch_sizes if b > 1 for d in self.delays_us]
        return [self.at(layout, b, d) for layout in self.layouts for b, d in batching]


class Sweep:
    """Measures configurations on one load (in-process or http) and keeps every result."""

    def __init__(self, load: Load, sampler: ProcessSampler, *, max_points: int, cores: list[int] | None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.load = load
        self.sampler = sampler
        self.max_points = max_points
        self.cores = cores
        self.results: list[ConfigResult] = []
        self._progress = progress or (lambda _msg: None)
        self._planned = 0

    @property
    def stopped(self) -> bool:
        return self.load.stop.is_set()

    def best(self) -> ConfigResult | None:
        return choose(self.results)

    def measure(self, config: ServingLayout, *, cores: list[int] | None = None, keep: bool = True) -> ConfigResult:
        """The capacity of one configuration; kept in `results` unless it is a side measurement."""
        best = self.best()
        hint = best.capacity_rps if best else 0.0
        points: list[LoadPoint] = []
        notes: list[str] = []
        try:
            with self.load.open(config, self.sampler, cores if cores is not None else self.cores) as bench:
                notes = bench.notes
                points.extend(self._search(bench, hint))
        except KeyboardInterrupt:
            # Keep the points finished so far, also when Ctrl-C lands while the bench shuts down
            # (the points were already reported as measured); every loop checks stop.
            self.load.stop.set()
        result = _keep_best_histogram(ConfigResult(config, points, note="; ".join(notes)))
        if keep and points:
            self.results.append(result)
        return result

    def confirm(self, config: ServingLayout, rate: float, repeats: int = 2) -> list[LoadPoint]:
        """The configuration held at one rate `repeats` times: is the planned operating point really within SLO?"""
        self._progress(f"confirming {config.label} at {rate:.0f}/s ({repeats} runs)")
        with self.load.open(config, self.sampler, self.cores) as bench:
            try:
                points = bench.ladder([rate] * repeats, stop_on_fail=False)
            except KeyboardInterrupt:
                self.load.stop.set()
                return []
        for point in points:
            self._report(config, point)
        return points

    def _search(self, bench: Bench, hint: float) -> Iterator[LoadPoint]:
        start = max(bench.probe_rps(), 0.5 * hint, 1.0)
        budget = self.max_points
        good: float | None = None  # highest offered rate that met the SLO
        bad: float | None = None  # lowest offered rate that missed it
        rates = [start * RAMP**k for k in range(min(budget, 4))]
        while rates and budget > 0 and not self.stopped:
            got = bench.ladder(rates[:budget], stop_on_fail=True)
            budget -= max(1, len(got))
            for point in got:
                yield point  # kept first: a Ctrl-C during the progress line must not lose a measured point
                self._report(bench.config, point)
                pause_at("profile-point")  # tests only: Ctrl-C lands here, mid-sweep (see mlc.testhooks)
                if point.meets_slo and not point.loadgen_limited:
                    good = max(good or 0.0, point.offered_rps)
                elif not point.meets_slo:
                    bad = min(bad or math.inf, point.offered_rps)
            if good is None and bad is not None:
                rates = [bad / 3]  # even the first rate was too much: step well below it
            elif bad is None and good is not None:
                rates = [good * RAMP**k for k in range(1, 4)]  # every rate passed: keep ramping
            elif good is not None and bad is not None and bad / good > _RESOLUTION:
                rates = [math.sqrt(good * bad)]
            else:
                rates = []

    def _report(self, config: ServingLayout, p: LoadPoint) -> None:
        mark = "ok " if p.meets_slo else "MISS"
        flag = " (load generator limited)" if p.loadgen_limited else ""
        self._progress(f"{mark} {config.label:<24} offered {p.offered_rps:8.0f}/s  got {p.throughput_rps:8.0f}/s  "
                       f"p50 {p.p50_ms:7.2f} ms  p99 {p.p99_ms:7.2f} ms  errors {p.errors}{flag}")

    # -- the two searches over configurations ----------------------------------------------

    def grid(self, space: Space) -> None:
        configs = space.grid()
        for i, config in enumerate(configs, 1):
            if self.stopped:
                return
            self._progress(f"configuration {i}/{len(configs)}: {config.label}")
            self.measure(config)

    def quick(self, space: Space, max_configs: int = 7) -> None:
        """Coordinate hill climbing: from a middle configuration, step one setting while it helps."""
        batch = list(space.climb_batch_sizes)
        delays = sorted({0, *space.delays_us})
        layouts = list(space.layouts)
        seen: dict[ServingLayout, ConfigResult] = {}

        def at(bi: int, di: int, li: int) -> ServingLayout:
            size = batch[bi]
            return space.at(layouts[li], size, delays[di] if size > 1 else 0)

        def evaluate(config: ServingLayout) -> ConfigResult | None:
            if config in seen:
                return seen[config]
            if len(seen) >= max_configs or self.stopped:
                return None
            self._progress(f"quick search, configuration {len(seen) + 1} (at most {max_configs}): {config.label}")
            seen[config] = self.measure(config)
            return seen[config]

        # A middle batch, a short delay, and the first layout using every core: the climb moves one
        # step at a time, so starting on one core it never reached the cores a big target has.
        full = next(k for k, layout in enumerate(layouts) if layout.cores == max(c.cores for c in layouts))
        pos: tuple[int, ...] = (len(batch) // 2 - 1, min(1, len(delays) - 1), full)
        sizes = (len(batch), len(delays), len(layouts))
        current = evaluate(at(*pos))
        # Worker processes are not one climb step from the start (instances come first in the order),
        # and over HTTP they are what scales most (1.6-1.8x on 2 cores): the full-core layout with the
        # most workers is measured at the start's batching before climbing, whenever it differs.
        most = max((k for k, layout in enumerate(layouts) if layout.cores == layouts[full].cores),
                   key=lambda k: (layouts[k].workers, -k))
        if most != full and current is not None:
            workers_pos = (pos[0], pos[1], most)
            trial_result = evaluate(at(*workers_pos))
            if trial_result is not None and better(trial_result, current):
                current, pos = trial_result, workers_pos
        for _ in range(3 * max_configs):  # each move strictly improves; the bound only guards ties
            if current is None or self.stopped:
                return
            moved = False
            for dim in (0, 2, 1):  # batch size, then layout, then queue delay
                for step in (1, -1):
                    trial = tuple(p + step if d == dim else p for d, p in enumerate(pos))
                    if not 0 <= trial[dim] < sizes[dim]:
                        continue
                    result = evaluate(at(*trial))
                    if result is not None and better(result, current):
                        current, pos, moved = result, trial, True
                        break
                if moved:
                    break
            if not moved:
                return


def _keep_best_histogram(result: ConfigResult) -> ConfigResult:
    """Histograms only for the point the report plots (the best): the others would fill the JSON."""
    best = result.best
    result.points = [p if p is best else replace(p, histogram=None) for p in result.points]
    return result
