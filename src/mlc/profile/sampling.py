"""CPU, memory and GPU use of a set of processes, sampled over time on a background thread.

Sizing needs what the serving processes actually used at each load, not what the machine
had: CPU% (of one core, summed over a process and its children, so 150 = one and a half
cores) and resident memory come from psutil; GPU utilization and memory from NVML when the
target is a GPU. Timestamps are time.perf_counter(), which on Linux is the system-wide
monotonic clock, so windows measured in a locust subprocess line up with these samples.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psutil


@dataclass(frozen=True)
class Sample:
    t: float  # perf_counter seconds
    cpu_pct: float  # summed over the process tree, % of one core
    rss_mb: float  # summed resident set size
    gpu_util_pct: float | None = None
    gpu_mem_mb: float | None = None


@dataclass(frozen=True)
class WindowStats:
    cpu_mean_pct: float | None
    cpu_peak_pct: float | None
    rss_peak_mb: float | None
    gpu_util_peak_pct: float | None
    gpu_mem_peak_mb: float | None
    # The busiest single process, % of one core: a Python load generator is single-threaded,
    # so one process near 100% is saturated even when the sum looks modest.
    busiest_process_peak_pct: float | None


class _Nvml:
    """GPU utilization (device-wide) and memory (of the sampled processes where NVML says)."""

    def __init__(self) -> None:
        import pynvml  # nvidia-ml-py, present only on GPU installs

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

    def read(self, pids: set[int]) -> tuple[float, float]:
        util = 0.0
        device_used = process_used = 0.0
        for handle in self._handles:
            util = max(util, float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            device_used += self._used(handle)
            try:
                running = self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except self._nvml.NVMLError:
                running = []
            process_used += sum(p.usedGpuMemory or 0 for p in running if p.pid in pids)
        return util, (process_used or device_used) / 2**20

    def _used(self, handle: Any) -> float:
        """Allocated memory; NVML's v2 query leaves out what the driver reserves (as nvidia-smi does)."""
        try:
            return float(self._nvml.nvmlDeviceGetMemoryInfo(handle, version=self._nvml.nvmlMemory_v2).used)
        except (AttributeError, TypeError, self._nvml.NVMLError):  # an older driver or nvidia-ml-py
            return float(self._nvml.nvmlDeviceGetMemoryInfo(handle).used)

    def close(self) -> None:
        self._nvml.nvmlShutdown()


def nvml_or_none() -> _Nvml | None:
    """NVML when the driver and nvidia-ml-py are there and see a GPU; None otherwise."""
    try:
        nvml = _Nvml()
    except Exception:  # no package, no driver, no device: a CPU machine
        return None
    return nvml if nvml._handles else None


class ProcessSampler:
    """Samples the process trees under `roots` every `interval_s` until stopped.

    roots is called on every tick, so processes that a server forks after start-up (its
    workers) are picked up as they appear.
    """

    def __init__(self, roots: Callable[[], Iterable[int]], *, interval_s: float = 0.2, gpu: bool = False) -> None:
        self._roots = roots
        self._interval = interval_s
        self._nvml = nvml_or_none() if gpu else None
        self._procs: dict[int, psutil.Process] = {}
        self.samples: list[Sample] = []
        self._per_process_peak: list[tuple[float, float]] = []  # (t, busiest process cpu%)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlc-profile-sampler", daemon=True)

    @property
    def has_gpu(self) -> bool:
        return self._nvml is not None

    def start(self) -> ProcessSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None

    def __enter__(self) -> ProcessSampler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _tree(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for pid in self._roots():
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                found[pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = self._procs.get(child.pid, child)
            except psutil.Error:
                continue
        for pid, proc in found.items():
            if pid not in self._procs:
                try:
                    proc.cpu_percent(None)  # the first call only primes the counter
                except psutil.Error:
                    continue
        self._procs = found
        return list(found.values())

    def _loop(self) -> None:
        self._tree()
        while not self._stop.wait(self._interval):
            procs = self._tree()
            cpu, rss, busiest = 0.0, 0.0, 0.0
            for proc in procs:
                try:
                    pct = proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                except psutil.Error:
                    continue
                cpu += pct
                busiest = max(busiest, pct)
            gpu_util = gpu_mem = None
            if self._nvml is not None:
                gpu_util, gpu_mem = self._nvml.read({p.pid for p in procs})
            now = time.perf_counter()
            self.samples.append(Sample(now, cpu, rss / 2**20, gpu_util, gpu_mem))
            self._per_process_peak.append((now, busiest))

    def window(self, start: float, end: float) -> WindowStats:
        """Mean and peak use over samples taken in [start, end] (perf_counter seconds)."""
        inside = [s for s in self.samples if start <= s.t <= end]
        busiest = [b for t, b in self._per_process_peak if start <= t <= end]
        if not inside:
            return WindowStats(None, None, None, None, None, None)
        gpu_util = [s.gpu_util_pct for s in inside if s.gpu_util_pct is not None]
        gpu_mem = [s.gpu_mem_mb for s in inside if s.gpu_mem_mb is not None]
        return WindowStats(
            cpu_mean_pct=sum(s.cpu_pct for s in inside) / len(inside),
            cpu_peak_pct=max(s.cpu_pct for s in inside),
            rss_peak_mb=max(s.rss_mb for s in inside),
            gpu_util_peak_pct=max(gpu_util) if gpu_util else None,
            gpu_mem_peak_mb=max(gpu_mem) if gpu_mem else None,
            busiest_process_peak_pct=max(busiest) if busiest else None,
        )

    def series(self, origin: float, max_points: int = 400) -> dict[str, list[Any]]:
        """The samples as columns, seconds from origin, thinned to at most max_points for the report."""
        step = max(1, -(-len(self.samples) // max_points))
        kept = self.samples[::step]
        out: dict[str, list[Any]] = {
            "t_s": [round(s.t - origin, 3) for s in kept],
            "cpu_pct": [round(s.cpu_pct, 1) for s in kept],
            "rss_mb": [round(s.rss_mb, 1) for s in kept],
        }
        if any(s.gpu_util_pct is not None for s in kept):
            out["gpu_util_pct"] = [s.gpu_util_pct for s in kept]
            out["gpu_mem_mb"] = [None if s.gpu_mem_mb is None else round(s.gpu_mem_mb, 1) for s in kept]
        return out
