"""The sweep's searches, on a fake load whose capacity per configuration is known."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest

from mlc.profile.sweep import RAMP, Space, Sweep
from mlc.serve.layout import ServingLayout

from ._helpers import point


class FakeBench:
    def __init__(self, config: ServingLayout, capacity: float, probe: float, log: list) -> None:
        self.config, self.notes = config, []
        self._capacity, self._probe, self._log = capacity, probe, log

    def probe_rps(self) -> float:
        return self._probe

    def ladder(self, rates, stop_on_fail=True):
        out = []
        for rate in rates:
            self._log.append((self.config, rate))
            ok = rate <= self._capacity
            out.append(point(rate, 2.0 if ok else 100.0, meets=ok))
            if stop_on_fail and not ok:
                break
        return out


class FakeLoad:
    mode = "fake"

    def __init__(self, capacity, probe=100.0, interrupt_on_close=False) -> None:
        self.stop = threading.Event()
        self.capacity, self.probe, self.log = capacity, probe, []
        self.interrupt_on_close = interrupt_on_close

    def serving_pids(self):
        return []

    @contextmanager
    def open(self, config, sampler, cores=None):
        yield FakeBench(config, self.capacity(config), self.probe, self.log)
        if self.interrupt_on_close:
            raise KeyboardInterrupt  # Ctrl-C while the configuration's server shuts down


@pytest.mark.parametrize("capacity", [50.0, 170.0, 1000.0, 5000.0])
def test_the_capacity_search_brackets_the_true_capacity(capacity):
    load = FakeLoad(lambda _c: capacity)
    result = Sweep(load, sampler=None, max_points=8, cores=None).measure(ServingLayout.of())
    assert result.capacity_rps <= capacity
    assert result.capacity_rps >= capacity / RAMP**2  # within the search's resolution, whatever the start
    assert len(result.points) <= 8


def test_the_grid_covers_every_batching_setting_and_layout_within_the_cores():
    space = Space.for_target(cores=2, gpu=False, slo_ms=20, http=False)
    configs = space.grid()
    assert len(configs) == len(set(configs)) == 5 * 3
    assert all(c.cores <= 2 for c in configs)
    assert all(c.max_queue_delay_us == 0 for c in configs if c.max_batch_size == 1)
    http = Space.for_target(cores=2, gpu=False, slo_ms=20, http=True)
    # Over HTTP (a server per configuration) only layouts that use every core: workers x 1-2 instances.
    assert {(c.workers, c.instances, c.threads) for c in http.layouts} == {(1, 2, 1), (1, 1, 2), (2, 1, 1)}
    big = Space.for_target(cores=16, gpu=False, slo_ms=20, http=True)
    assert all(c.cores == 16 for c in big.layouts) and len(big.layouts) == 9
    assert {(c.workers, c.instances, c.threads) for c in space.layouts} == {(1, 1, 1), (1, 2, 1), (1, 1, 2)}
    tight = Space.for_target(cores=1, gpu=False, slo_ms=2, http=False)
    assert all(d <= 500 for d in tight.delays_us)  # a queue delay must fit well inside the SLO


def test_quick_climbs_to_the_best_configuration_in_few_evaluations():
    # Capacity grows with batch size up to 32 and with instances; delay hardly matters.
    def capacity(c: ServingLayout) -> float:
        return 100 * min(c.max_batch_size, 32) * c.instances + c.max_queue_delay_us / 100

    load = FakeLoad(capacity)
    sweep = Sweep(load, sampler=None, max_points=6, cores=None)
    space = Space.for_target(cores=2, gpu=False, slo_ms=20, http=False)
    sweep.quick(space, max_configs=8)
    best = sweep.best()
    assert best is not None and best.config.max_batch_size >= 32 and best.config.instances == 2
    assert len(sweep.results) <= 8 < len(space.grid())


def test_a_stop_request_ends_the_sweep():
    load = FakeLoad(lambda _c: 1000.0)
    load.stop.set()
    sweep = Sweep(load, sampler=None, max_points=6, cores=None)
    sweep.grid(Space.for_target(cores=2, gpu=False, slo_ms=20, http=False))
    assert sweep.results == []


def test_ctrl_c_while_a_configuration_shuts_down_keeps_its_points():
    load = FakeLoad(lambda _c: 1000.0, interrupt_on_close=True)
    sweep = Sweep(load, sampler=None, max_points=6, cores=None)
    sweep.quick(Space.for_target(cores=2, gpu=False, slo_ms=20, http=False))
    assert load.stop.is_set()
    (result,) = sweep.results  # the first configuration, measured in full; no second one was started
    assert len(result.points) == len(load.log) and result.capacity_rps > 0


def test_ctrl_c_during_a_points_progress_line_keeps_that_point():
    """The line says the point was measured; the report must hold it (the interrupt lands inside the print)."""
    def progress(message: str) -> None:
        if "offered" in message:
            raise KeyboardInterrupt

    load = FakeLoad(lambda _c: 1000.0)
    result = Sweep(load, sampler=None, max_points=6, cores=None, progress=progress).measure(ServingLayout.of())
    assert load.stop.is_set() and result.points and result.points[0].offered_rps == load.log[0][1]


def test_quick_reaches_the_cores_of_a_big_target():
    """The climb starts where every core is used: from one core, six steps never got past two."""
    load = FakeLoad(lambda c: 1000.0 * c.cores)
    sweep = Sweep(load, sampler=None, max_points=6, cores=None)
    sweep.quick(Space.for_target(cores=16, gpu=False, slo_ms=20, http=False), max_configs=6)
    assert sweep.best().config.cores == 16
