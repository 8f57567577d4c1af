"""The in-process generator and the resource sampler, on real threads and a real model."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np

from mlc.profile.loadgen_inprocess import InProcessBench, InProcessLoad
from mlc.profile.results import ServingConfig
from mlc.profile.sampling import ProcessSampler
from mlc.runtime.batcher import DynamicBatcher
from mlc.runtime.scorer import RuntimePlan
from mlc.targets import get_target


def test_an_overloaded_server_shows_its_queue_in_the_latency():
    """Open loop: at 1.5x a 10 ms server's capacity, requests queue; a closed loop would report ~10 ms."""

    def slow(x: np.ndarray) -> dict[str, np.ndarray]:
        time.sleep(0.01)
        return {"y": x[:, :1]}

    rows = [np.zeros((1, 3), dtype=np.float32)] * 8
    with ProcessSampler(lambda: [os.getpid()]) as sampler, DynamicBatcher(slow, max_batch_size=1) as batcher:
        bench = InProcessBench(batcher, rows, ServingConfig(), sampler, poisson=False, duration_s=1.5,
                               warmup_s=0.2, slo_ms=50, seed=0, stop=threading.Event(), cores_pinned=None)
        (p,) = bench.ladder([150.0])
    assert p.throughput_rps < 115  # the server's ~100/s, not the offered 150/s
    assert p.p99_ms > 150 and p.service_p50_ms > 9  # the backlog grows through the point
    assert not p.meets_slo


def test_the_scoring_core_meets_a_loose_slo_at_a_low_rate(tiny_onnx):
    target = get_target("cpu-2")
    load = InProcessLoad(tiny_onnx, target, RuntimePlan.default(target), poisson=True, duration_s=1.0,
                         warmup_s=0.2, slo_ms=100)
    config = ServingConfig(max_batch_size=8, max_queue_delay_us=250)
    with ProcessSampler(load.serving_pids) as sampler, load.open(config, sampler) as bench:
        assert bench.probe_rps() > 10
        (p,) = bench.ladder([200.0])
    assert p.meets_slo and p.errors == 0 and abs(p.throughput_rps - 200) < 60
    assert p.p50_ms <= p.p90_ms <= p.p99_ms <= p.p999_ms <= p.max_ms
    assert p.rss_peak_mb and p.rss_peak_mb > 10 and p.cpu_mean_pct is not None
    assert p.histogram and sum(p.histogram["counts"]) == p.ok


def test_the_sampler_sees_a_busy_child_process_and_its_memory():
    busy = subprocess.Popen([sys.executable, "-c", "import time\nx = bytearray(64 << 20)\nt = time.time()\n"
                             "while time.time() - t < 3: pass"])
    try:
        with ProcessSampler(lambda: [busy.pid], interval_s=0.1) as sampler:
            time.sleep(1.5)
        stats = sampler.window(0, time.perf_counter())
    finally:
        busy.kill()
        busy.wait()
    assert stats.cpu_peak_pct is not None and stats.cpu_peak_pct > 30
    assert stats.rss_peak_mb is not None and stats.rss_peak_mb > 64
    assert not sampler.has_gpu  # asked for no GPU
    series = sampler.series(0.0, max_points=5)
    assert len(series["t_s"]) <= 5 and set(series) == {"t_s", "cpu_pct", "rss_mb"}
