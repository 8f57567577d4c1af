"""The in-process generator and the resource sampler, on real threads and a real model."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import psutil

from mlc.profile.loadgen_inprocess import InProcessBench, InProcessLoad
from mlc.profile.sampling import ProcessSampler
from mlc.runtime.batcher import DynamicBatcher
from mlc.runtime.scorer import RuntimePlan
from mlc.serve.layout import ServingLayout
from mlc.targets import get_target


def test_an_overloaded_server_shows_its_queue_in_the_latency():
    """Open loop: at 1.5x a 10 ms server's capacity, requests queue; a closed loop would report ~10 ms."""

    def slow(x: np.ndarray) -> dict[str, np.ndarray]:
        time.sleep(0.01)
        return {"y": x[:, :1]}

    rows = [np.zeros((1, 3), dtype=np.float32)] * 8
    with ProcessSampler(lambda: [os.getpid()]) as sampler, DynamicBatcher(slow, max_batch_size=1) as batcher:
        bench = InProcessBench(batcher, rows, ServingLayout.of(), sampler, poisson=False, duration_s=1.5,
                               warmup_s=0.2, slo_ms=50, seed=0, stop=threading.Event(), cores_pinned=None)
        (p,) = bench.ladder([150.0])
    assert p.throughput_rps < 115  # the server's ~100/s, not the offered 150/s
    assert p.p99_ms > 150 and p.service_p50_ms > 9  # the backlog grows through the point
    assert not p.meets_slo


def test_the_scoring_core_answers_every_request_of_a_low_rate(tiny_onnx):
    """Every scheduled request answered, figures consistent; whether it met an SLO here is this machine's load."""
    target = get_target("cpu-2")
    load = InProcessLoad(tiny_onnx, target, RuntimePlan.default(target), poisson=True, duration_s=1.0,
                         warmup_s=0.2, slo_ms=100)
    config = ServingLayout.of(max_batch_size=8, max_queue_delay_us=250)
    with ProcessSampler(load.serving_pids) as sampler, load.open(config, sampler) as bench:
        assert bench.probe_rps() > 0
        (p,) = bench.ladder([200.0])
    assert p.errors == 0 and p.ok == p.sent > 0
    assert p.p50_ms <= p.p90_ms <= p.p99_ms <= p.p999_ms <= p.max_ms
    assert p.rss_peak_mb and p.rss_peak_mb > 10 and p.cpu_mean_pct is not None
    assert p.histogram and sum(p.histogram["counts"]) == p.ok


def test_the_sampler_sees_a_busy_child_process_and_its_memory():
    """The sampled CPU is the CPU the child got (psutil's own count, read around the window), however
    much a busy machine left it; a fixed threshold (30% of a core) judged the machine's load."""
    busy = subprocess.Popen([sys.executable, "-c", "x = bytearray(64 << 20)\nprint('ready', flush=True)\n"
                             "while True: pass"], stdout=subprocess.PIPE, text=True)
    try:
        assert busy.stdout is not None and busy.stdout.readline() == "ready\n"  # its 64 MiB are resident
        child = psutil.Process(busy.pid)
        cpu_before, wall_before = sum(child.cpu_times()[:2]), time.perf_counter()
        with ProcessSampler(lambda: [busy.pid], interval_s=0.1) as sampler:
            time.sleep(1.5)
        got_pct = 100 * (sum(child.cpu_times()[:2]) - cpu_before) / (time.perf_counter() - wall_before)
        stats = sampler.window(0, time.perf_counter())
    finally:
        busy.kill()
        busy.wait()
    assert got_pct > 0 and stats.cpu_peak_pct is not None and stats.cpu_mean_pct is not None
    assert stats.cpu_peak_pct >= stats.cpu_mean_pct and 0.5 * got_pct <= stats.cpu_mean_pct <= 1.5 * got_pct + 10, (
        stats, got_pct)
    assert stats.rss_peak_mb is not None and stats.rss_peak_mb > 64
    assert not sampler.has_gpu  # asked for no GPU
    series = sampler.series(0.0, max_points=5)
    assert len(series["t_s"]) <= 5 and set(series) == {"t_s", "cpu_pct", "rss_mb"}
