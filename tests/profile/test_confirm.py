"""Sizing that holds: a plan counts only once its layout, served afresh, held the planned rate 3 times.

On a fake load whose true capacity is known (the sweep's points can flatter it, as short runs on a
noisy machine do): the confirmation steps down to the next-lower measured rate, or reports the plan
unconfirmed; and the quick search over HTTP measures more worker processes on two cores.
"""

from __future__ import annotations

from dataclasses import replace

from mlc.profile.results import ConfigResult, ProfileResult
from mlc.profile.runner import CONFIRM_RUNS, _bounded, _confirmed, generator_verdict
from mlc.profile.sizing import recommend
from mlc.profile.sweep import Space, Sweep
from mlc.serve.layout import ServingLayout
from mlc.targets import get_target

from ._helpers import point
from .test_sweep import FakeLoad

LAYOUT = ServingLayout.of(max_batch_size=8, max_queue_delay_us=250, workers=2)
SIZING = {"rate_rps": None, "headroom": 0.25, "measured_cores": 2, "http": True, "extrapolation": None}


def _swept(*rates_met: float, missed: float) -> ConfigResult:
    return ConfigResult(LAYOUT, [*(point(r, 2.0) for r in rates_met), point(missed, 90.0, meets=False)])


def _confirm(true_capacity: float, chosen: ConfigResult):
    load = FakeLoad(lambda _c: true_capacity)
    sweep = Sweep(load, sampler=None, max_points=6, cores=None)
    hw = get_target("cpu-2")
    return _confirmed(sweep, chosen, recommend(chosen, hw, **SIZING), hw, SIZING, 20.0), load.log


def test_a_plan_that_holds_is_confirmed_after_three_runs_at_its_planned_rate():
    rec, log = _confirm(10_000, _swept(400, 800, missed=1300))
    assert rec.confirmed is True and rec.measured_rate_rps == 600  # 800/s less 25% headroom
    assert [rate for _c, rate in log] == [600] * CONFIRM_RUNS and all(c == LAYOUT for c, _r in log)


def test_a_flattering_sweep_falls_back_to_the_next_lower_rate():
    # The sweep saw 800/s pass once; the server really holds 350/s: 600/s misses, 300/s (from 400/s) holds.
    rec, log = _confirm(350, _swept(400, 800, missed=1300))
    assert rec.confirmed is True and rec.measured_rate_rps == 300 and rec.capacity_rps == 400
    assert [rate for _c, rate in log][-CONFIRM_RUNS:] == [300] * CONFIRM_RUNS
    assert any("missed p99 <= 20 ms in 3 confirmation runs at 600/s" in n for n in rec.notes)


def test_a_plan_that_never_holds_is_unconfirmed():
    rec, _log = _confirm(100, _swept(400, 800, missed=1300))
    assert rec.confirmed is False
    assert any("UNCONFIRMED: not recorded" in n for n in rec.notes)


def test_after_the_last_rate_misses_the_plan_is_that_rate_unconfirmed_not_an_untried_lower_one():
    # Four rates met in the sweep; the server holds 50/s: 1200, 600 and 300/s are tried and miss.
    rec, log = _confirm(50, _swept(200, 400, 800, 1600, missed=3000))
    assert sorted({rate for _c, rate in log}, reverse=True) == [1200, 600, 300]
    assert rec.confirmed is False and rec.measured_rate_rps == 300


def test_capacity_is_only_a_lower_bound_when_no_point_missed():
    chosen = ConfigResult(LAYOUT, [point(400, 2.0), point(800, 3.0)])
    hw = get_target("cpu-2")
    rec = _bounded(recommend(chosen, hw, **SIZING), chosen, None)
    assert rec.at_least and any("at least the highest rate tried" in n and "without --rate" in n for n in rec.notes)
    measured = _swept(400, missed=800)
    assert not _bounded(recommend(measured, hw, **SIZING), measured, None).at_least


def test_the_report_says_when_the_load_generator_was_the_bottleneck():
    result = ProfileResult(ref="m:1", target="cpu-2", mode="http", slo_p99_ms=20, rate_rps=None, arrivals="poisson",
                           point_duration_s=1, search="quick", usable_cores=2)
    busy = replace(point(3000, 5.0), loadgen_processes=1, loadgen_limited=True, loadgen_cpu_peak_pct=99.0)
    calm = replace(point(1000, 2.0), loadgen_processes=1, loadgen_cpu_peak_pct=30.0)
    result.configs = [ConfigResult(LAYOUT, [calm, busy])]
    (line,) = generator_verdict(result)
    assert "bottleneck from 3,000/s" in line and "99% CPU" in line and "--url" in line
    result.configs = [ConfigResult(LAYOUT, [calm])]
    assert "kept up" in generator_verdict(result)[0]


def test_quick_over_http_on_two_cores_measures_two_workers():
    # Two instances in one process look best to the climb; two workers must still be measured.
    load = FakeLoad(lambda c: 1000.0 * c.instances + 10 * c.max_batch_size)
    sweep = Sweep(load, sampler=None, max_points=6, cores=None)
    sweep.quick(Space.for_target(cores=2, gpu=False, slo_ms=20, http=True), max_configs=6)
    assert any(c.workers == 2 for c, _rate in load.log)


def _recorded_run() -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "data" / "profile_run.json").read_text())


def test_a_url_report_names_the_server_s_layout_and_no_serve_command_nor_replicas_without_a_rate():
    from mlc.report.render import to_markdown

    report = _recorded_run()
    body = report["body"]
    body.update(url="http://10.0.0.5:8000", server_layout="external, unknown", rate_rps=None,
                headline=["Measured the server at http://10.0.0.5:8000 as it runs: external, unknown."])
    body["recommendation"]["at_least"] = True
    text = to_markdown(report)
    first = [line for line in text.splitlines() if line.strip()][1]
    assert "Measured the server at http://10.0.0.5:8000" in first
    assert "the server at http://10.0.0.5:8000: external, unknown" in text
    assert "Serve with" not in text and "mlc serve" not in text.split("## Recommendation")[1].split("##")[0]
    assert "— (give --rate)" in text and "at least" in text


def test_an_in_process_report_says_first_that_it_sized_no_server():
    from mlc.profile.runner import INPROCESS_HEADLINE
    from mlc.report.render import to_markdown

    report = _recorded_run()
    report["body"]["headline"] = [INPROCESS_HEADLINE]
    first = [line for line in to_markdown(report).splitlines() if line.strip()][1]
    assert "sizes the scoring core alone" in first and "not a server" in first
