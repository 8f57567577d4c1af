"""The sizing model: replicas, headroom, cost and the extrapolation to bigger targets."""

from __future__ import annotations

import math

import pytest

from mlc.profile.results import ConfigResult, choose
from mlc.profile.sizing import extrapolate, p99_at, recommend
from mlc.serve.layout import ServingLayout
from mlc.targets import get_target

from ._helpers import point


def curve(capacity: float, config: ServingLayout | None = None) -> ConfigResult:
    return ConfigResult(config or ServingLayout.of(max_batch_size=8, max_queue_delay_us=250), [
        point(capacity / 4, 2.0, cpu=40), point(capacity / 2, 3.0, cpu=80), point(capacity, 10.0, cpu=150),
        point(capacity * 1.5, 80.0, meets=False, cpu=190)])


def test_replicas_cover_the_rate_with_headroom_and_cost_follows():
    target = get_target("cpu-2")
    rec = recommend(curve(1000), target, rate_rps=2000, headroom=0.25, measured_cores=2, http=False)
    assert rec.capacity_rps == 1000 and rec.usable_rps == 750
    assert rec.replicas == 3 and rec.per_replica_rps == pytest.approx(666.7, abs=0.1)
    assert rec.cost_per_hour == pytest.approx(3 * target.price_per_hour, abs=1e-4)
    assert rec.cost_per_million == pytest.approx(rec.cost_per_hour / (2000 * 3600) * 1e6, abs=1e-4)
    # 666/s falls between the 500/s (3 ms) and 1000/s (10 ms) points.
    assert 3.0 < rec.predicted_p99_ms < 10.0
    # CPU of the point at or above that load (1000/s: 1.5 cores) plus headroom.
    assert rec.cores_per_replica == pytest.approx(1.9, abs=0.05)
    assert rec.memory_gib_per_replica == pytest.approx(200 / 1024 * 1.25, abs=0.05)
    assert not rec.extrapolated and rec.serve_settings()["max_batch_size"] == 8


def test_without_a_rate_one_replica_runs_at_its_planned_load():
    rec = recommend(curve(400), get_target("cpu-2"), rate_rps=None, headroom=0.5, measured_cores=2, http=False)
    assert rec.replicas == 1 and rec.rate_rps == 200


def test_p99_interpolates_on_the_measured_curve():
    points = curve(1000).points
    assert p99_at(points, 100) == 2.0  # below the lowest point: the lowest point's p99
    assert p99_at(points, 750) == pytest.approx(6.5)
    assert p99_at(points, 1e9) == 80.0


def test_extrapolation_is_linear_when_scaling_was_perfect_and_discounted_otherwise():
    perfect = extrapolate(1000, 2000, measured_cores=2, target_cores=8)
    assert perfect.target_rps == pytest.approx(8000) and perfect.efficiency == 1.0
    lossy = extrapolate(1000, 1800, measured_cores=2, target_cores=8)  # 90% per doubling, 3 doublings
    assert lossy.target_rps == pytest.approx(8000 * 0.9**3)
    assert "per-core capacity" in lossy.method and "pinned to 1 core" in lossy.method
    superlinear = extrapolate(1000, 2500, measured_cores=2, target_cores=8)
    assert superlinear.target_rps == pytest.approx(8000) and superlinear.efficiency == 1.25  # never beyond linear


def test_an_extrapolated_recommendation_scales_the_layout_and_says_so():
    target = get_target("cpu-8")
    x = extrapolate(500, 1000, measured_cores=2, target_cores=8)
    layout = ServingLayout.of(max_batch_size=8, max_queue_delay_us=250, instances=2)
    rec = recommend(curve(1000, layout), target, rate_rps=10_000, headroom=0.25, measured_cores=2, http=False,
                    extrapolation=x)
    assert rec.extrapolated and rec.capacity_rps == 4000 and rec.config.instances == 8
    assert rec.replicas == math.ceil(10_000 / 3000)
    http = recommend(curve(1000, ServingLayout.of(workers=2)), target, rate_rps=None, headroom=0.25,
                     measured_cores=2, http=True, extrapolation=x)
    assert http.config.workers == 8


def test_a_target_that_is_no_whole_multiple_gets_the_capacity_of_the_layout_it_is_given():
    from dataclasses import replace

    from mlc.profile.sizing import grown_cores

    six = replace(get_target("cpu-8"), name="cpu-6", cores=6)
    assert grown_cores(4, 6) == 4 and grown_cores(2, 6) == 6 and grown_cores(4, 2) == 4
    x = extrapolate(1000, 4000, measured_cores=4, target_cores=grown_cores(4, 6))
    rec = recommend(curve(4000, ServingLayout.of(workers=4)), six, rate_rps=None, headroom=0.25, measured_cores=4,
                    http=True, extrapolation=x)
    assert rec.config.workers == 4 and rec.capacity_rps == pytest.approx(4000)  # not 6000 for a 4-core layout


def test_the_choice_prefers_capacity_then_fewer_cores():
    small = curve(1000, ServingLayout.of(max_batch_size=8, instances=1))
    big = curve(1010, ServingLayout.of(max_batch_size=8, instances=2))  # within the 3% tie margin
    faster = curve(1500, ServingLayout.of(max_batch_size=32, instances=2))
    assert choose([big, small]) is small
    assert choose([small, big, faster]) is faster
    assert choose([ConfigResult(ServingLayout.of(), [point(10, 99, meets=False)])]) is None


def test_capacity_is_read_below_the_first_rate_that_missed():
    noisy = ConfigResult(ServingLayout.of(), [point(100, 2), point(300, 50, meets=False), point(250, 3)])
    assert noisy.capacity_rps == 250
    flattering = ConfigResult(ServingLayout.of(), [point(100, 2), point(300, 50, meets=False), point(320, 3)])
    assert flattering.capacity_rps == 100  # 320/s passed once, but 300/s failed: not counted
