"""Per-request timings of one load stage turned into the figures a LoadPoint reports."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlc.profile.results import LoadPoint
from mlc.profile.sampling import WindowStats

_HIST_BINS = 40


@dataclass
class Timings:
    """Seconds from the stage's start, one entry per scheduled request.

    done is NaN for a request that never finished; ok is False for a failed, rejected or
    unanswered one.
    """

    scheduled: np.ndarray
    sent: np.ndarray
    done: np.ndarray
    ok: np.ndarray


def probe_rate(times: list[float], parallel: int) -> float:
    """A safe first rate: half of what `parallel` servers achieve at these sequential request times (s)."""
    return 0.5 * parallel / max(statistics.median(times), 1e-6)


def summarize(t: Timings, *, offered_rps: float, window: tuple[float, float], slo_ms: float) -> dict[str, Any]:
    """LoadPoint fields for the requests scheduled inside window (warm-up and drain excluded).

    Latency is done - scheduled: a request the generator sent late, or the server queued,
    counts its whole wait, including the time after the window until it was answered.
    Percentiles use observed values ("higher"), never interpolations below what some request saw.
    """
    start, end = window
    inside = (t.scheduled >= start) & (t.scheduled < end)
    scheduled, sent, done, ok = t.scheduled[inside], t.sent[inside], t.done[inside], t.ok[inside]
    good = ok & np.isfinite(done)
    latency_ms = (done[good] - scheduled[good]) * 1e3
    lag = sent - scheduled
    lag_ms = lag[np.isfinite(lag)] * 1e3
    service_ms = (done[good] - sent[good]) * 1e3
    length = max(end - start, 1e-9)
    n_ok = int(good.sum())
    # Throughput counts answers that arrived inside the window, whenever sent: requests drained
    # after the window are in the latency figures but not in the rate the server sustained.
    answered = t.ok & (t.done >= start) & (t.done < end)
    errors = int(scheduled.size - n_ok)

    def pct(q: float) -> float:
        return float(np.percentile(latency_ms, q, method="higher")) if latency_ms.size else float("nan")

    p99 = pct(99)
    return {
        "offered_rps": float(offered_rps),
        "throughput_rps": int(answered.sum()) / length,
        "duration_s": length,
        "sent": int(scheduled.size),
        "ok": n_ok,
        "errors": errors,
        "p50_ms": pct(50), "p90_ms": pct(90), "p95_ms": pct(95), "p99_ms": p99, "p999_ms": pct(99.9),
        "mean_ms": float(latency_ms.mean()) if latency_ms.size else float("nan"),
        "max_ms": float(latency_ms.max()) if latency_ms.size else float("nan"),
        "service_p50_ms": float(np.percentile(service_ms, 50, method="higher")) if n_ok else float("nan"),
        "service_p99_ms": float(np.percentile(service_ms, 99, method="higher")) if n_ok else float("nan"),
        "send_lag_p50_ms": float(np.percentile(lag_ms, 50)) if lag_ms.size else 0.0,
        "send_lag_p99_ms": float(np.percentile(lag_ms, 99)) if lag_ms.size else 0.0,
        "meets_slo": bool(n_ok > 0 and errors == 0 and p99 <= slo_ms),
        "histogram": histogram(latency_ms),
    }


def histogram(latency_ms: np.ndarray) -> dict[str, list[float]] | None:
    """Log-spaced bins: latency spans decades between an idle and a saturated server."""
    if latency_ms.size == 0:
        return None
    low = max(float(latency_ms.min()), 1e-3)
    high = max(float(latency_ms.max()), low * 1.01)
    edges = np.geomspace(low, high, _HIST_BINS + 1)
    counts, _ = np.histogram(np.clip(latency_ms, low, high), bins=edges)
    return {"edges_ms": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def point_from(summary: dict[str, Any], serving: WindowStats, *, loadgen: WindowStats | None = None,
               loadgen_processes: int = 0, loadgen_limited: bool = False, cores_pinned: int | None = None) -> LoadPoint:
    """A LoadPoint from a stage's latency summary and the resources sampled over its window."""
    return LoadPoint(
        **summary,
        cpu_mean_pct=_round(serving.cpu_mean_pct), cpu_peak_pct=_round(serving.cpu_peak_pct),
        rss_peak_mb=_round(serving.rss_peak_mb), gpu_util_peak_pct=_round(serving.gpu_util_peak_pct),
        gpu_mem_peak_mb=_round(serving.gpu_mem_peak_mb),
        loadgen_cpu_peak_pct=_round(loadgen.busiest_process_peak_pct) if loadgen else None,
        loadgen_processes=loadgen_processes, loadgen_limited=loadgen_limited, cores_pinned=cores_pinned,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
