"""Arrival schedules and the latency summary: the parts that keep the measurement open-loop."""

from __future__ import annotations

import numpy as np

from mlc.profile.arrivals import arrival_offsets, ladder_offsets
from mlc.profile.latency import Timings, histogram, summarize


def test_constant_arrivals_are_evenly_spaced_at_the_rate():
    times = arrival_offsets(100.0, 2.0, poisson=False, seed=0)
    assert times.size == 200
    assert np.allclose(np.diff(times), 0.01)


def test_poisson_arrivals_average_the_rate_and_stay_in_the_window():
    times = arrival_offsets(2000.0, 5.0, poisson=True, seed=1)
    assert abs(times.size - 10_000) < 400  # 4 standard deviations
    assert np.all(np.diff(times) > 0) and times[-1] < 5.0
    gaps = np.diff(times)
    assert 0.8 < gaps.std() / gaps.mean() < 1.2  # exponential gaps: coefficient of variation 1


def test_ladder_stages_follow_each_other():
    times, stage = ladder_offsets([(10.0, 1.0), (20.0, 1.0)], poisson=False, seed=0)
    assert (stage == 0).sum() == 10 and (stage == 1).sum() == 20
    assert times[stage == 1].min() >= 1.0


def test_latency_counts_from_the_scheduled_time_not_the_send():
    # Sent 50 ms late (a busy generator or a full pool): that wait is latency, not hidden.
    scheduled = np.arange(100) * 0.01
    timings = Timings(scheduled, scheduled + 0.05, scheduled + 0.051, np.ones(100, dtype=bool))
    s = summarize(timings, offered_rps=100, window=(0.0, 1.0), slo_ms=20)
    assert abs(s["p50_ms"] - 51) < 0.01 and abs(s["service_p50_ms"] - 1) < 0.01
    assert abs(s["send_lag_p50_ms"] - 50) < 0.01
    assert not s["meets_slo"]


def test_errors_and_unanswered_requests_fail_the_point_and_the_window_excludes_warmup():
    scheduled = np.arange(100) * 0.01
    done = scheduled + 0.001
    done[60] = np.nan  # never answered
    ok = np.ones(100, dtype=bool)
    ok[70] = False  # answered with an error
    s = summarize(Timings(scheduled, scheduled, done, ok), offered_rps=100, window=(0.5, 1.0), slo_ms=20)
    assert s["sent"] == 50 and s["ok"] == 48 and s["errors"] == 2
    assert abs(s["throughput_rps"] - 96) < 1e-6  # answers that arrived inside the window
    assert not s["meets_slo"]


def test_histogram_counts_every_answered_request():
    latency = np.random.default_rng(0).lognormal(0, 1, 1000)
    h = histogram(latency)
    assert h is not None and sum(h["counts"]) == 1000 and len(h["edges_ms"]) == len(h["counts"]) + 1
    assert histogram(np.empty(0)) is None
