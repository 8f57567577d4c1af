"""Shared test values."""

from __future__ import annotations

from mlc.profile.results import LoadPoint


def point(rate: float, p99: float, *, meets: bool = True, cpu: float = 50.0, rss: float = 200.0) -> LoadPoint:
    return LoadPoint(offered_rps=rate, throughput_rps=rate, duration_s=2, sent=int(rate * 2), ok=int(rate * 2),
                     errors=0, p50_ms=p99 / 3, p90_ms=p99 / 2, p95_ms=p99 / 1.5, p99_ms=p99, p999_ms=p99 * 1.5,
                     mean_ms=p99 / 3, max_ms=p99 * 2, service_p50_ms=p99 / 3, service_p99_ms=p99,
                     send_lag_p50_ms=0.1, send_lag_p99_ms=0.5, meets_slo=meets, cpu_mean_pct=cpu,
                     cpu_peak_pct=cpu, rss_peak_mb=rss)

