"""One serving layout: its rules, and the profiler and `mlc serve` building the same one from one profile."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mlc.cli.serve import serve_cmd
from mlc.config import DEFAULT_MAX_REQUEST_ROWS, load_settings
from mlc.errors import UsageError
from mlc.profile.results import ProfileResult
from mlc.profile.runner import _record
from mlc.profile.sweep import Space
from mlc.registry import Registry
from mlc.runtime.batcher import DynamicBatcher
from mlc.serve.layout import MIN_QUEUE_ROWS, ServingLayout, queue_rows, share_of_cores
from mlc.serve.plan import ServeOptions, build_plan
from mlc.targets import get_target

RECORDED = Path(__file__).parents[1] / "report" / "data" / "profile.json"  # a real `mlc profile` run


def test_the_queue_holds_a_whole_largest_request_and_four_batches():
    assert queue_rows(64) == DEFAULT_MAX_REQUEST_ROWS
    assert queue_rows(64, max_request_rows=100) == MIN_QUEUE_ROWS
    assert queue_rows(20_000, max_request_rows=100) == 80_000
    assert ServingLayout.of(max_batch_size=8, max_request_rows=10_000).max_queue_rows == 10_000
    assert ServingLayout.of(max_batch_size=8, max_queue_rows=16).max_queue_rows == 16  # a flag wins


def test_threads_share_the_cores_within_what_optimize_chose():
    assert share_of_cores(8, workers=2, instances=2) == 2
    assert share_of_cores(2, workers=4, instances=1) == 1  # never none
    assert share_of_cores(8, workers=1, instances=1, at_most=3) == 3
    layout = ServingLayout.of(workers=2, instances=2, threads=2)
    assert layout.cores == 8 and layout.contention("cpu-8", 8) == ""
    assert "more threads than target cpu-2's 2 cores" in layout.contention("cpu-2", 2)


def test_preferred_sizes_are_sorted_and_kept_within_the_largest_batch():
    layout = ServingLayout.of(max_batch_size=16, preferred_batch_sizes=[16, 8, 32, 8])
    assert layout.preferred_batch_sizes == (8, 16)


@pytest.mark.parametrize(("values", "named"), [
    ({"max_batch_size": 0}, "max_batch_size=0"), ({"max_queue_delay_us": -1}, "max_queue_delay_us=-1"),
    ({"instances": 0}, "instances=0"), ({"threads": 0}, "threads=0"), ({"workers": 0}, "workers=0"),
    ({"max_batch_size": 64, "max_queue_rows": 10}, "max_queue_rows=10"),
])
def test_an_impossible_layout_is_refused_naming_the_setting(values, named):
    with pytest.raises(UsageError, match=named):
        ServingLayout.of(**values)


def test_it_records_as_profiles_always_did_and_reads_them_back():
    old = {"max_batch_size": 64, "max_queue_delay_us": 250, "instances": 2, "intra_op_threads": 1, "workers": 1}
    layout = ServingLayout.from_dict(old)
    assert (layout.threads, layout.max_queue_rows, layout.preferred_batch_sizes) == (1, queue_rows(64), ())
    assert layout.to_dict() == old  # what the rule derives is not written
    odd = ServingLayout.of(max_batch_size=8, max_queue_rows=512, preferred_batch_sizes=[4])
    assert odd.to_dict()["max_queue_rows"] == 512 and ServingLayout.from_dict(odd.to_dict()) == odd
    assert layout.label == "b64/d250us/w1xi2xt1"


def test_a_recorded_profile_reads_whole():
    """A body recorded before the headline, server-layout and at-least fields reads back whole, those at defaults."""
    body = json.loads(RECORDED.read_text())["body"]
    recommendation = {**body["recommendation"], "at_least": False}
    expected = {**body, "headline": [], "server_layout": None, "recommendation": recommendation}
    assert ProfileResult.from_dict(body).to_dict() == expected


def test_the_batcher_takes_every_batching_setting_of_the_layout():
    layout = ServingLayout.of(max_batch_size=8, max_queue_delay_us=100, instances=2, preferred_batch_sizes=[4],
                              max_queue_rows=64)
    with DynamicBatcher(lambda x: {"y": x}, **layout.batcher_options()) as batcher:
        assert (batcher.max_batch_size, batcher.max_queue_delay_us, batcher.preferred_batch_sizes,
                batcher.max_queue_rows, batcher.instances) == (8, 100, (4,), 64, 2)


def test_the_sweep_sizes_each_queue_as_serve_does():
    space = Space.for_target(cores=2, gpu=False, slo_ms=20, http=True, max_request_rows=100)
    assert all(c.max_queue_rows == queue_rows(c.max_batch_size, 100) for c in space.grid())
    assert {c.cores for c in space.layouts} == {2}  # http layouts fill the cores, threads by the shared rule


def _served_layout(home: Path, ref: str, target: str, **flags: int) -> ServingLayout:
    settings = replace(load_settings(), max_request_rows=DEFAULT_MAX_REQUEST_ROWS)
    plan = build_plan(ServeOptions(refs=(ref,), target=target, **flags), Registry(home), get_target(target), settings)
    (version,) = plan.versions
    assert version.layout.workers == plan.workers
    return version.layout


def test_profile_and_serve_build_the_same_layout_from_one_recorded_profile(private_home, tmp_path):
    """What the profiler measured and recommends is what `mlc serve` serves once the profile is recorded:
    in-process (the same ServingLayout, so the same batcher options) and over HTTP (the flags it starts
    `mlc serve` with)."""
    report = json.loads(RECORDED.read_text())
    result = ProfileResult.from_dict(report["body"])
    assert result.recommendation is not None
    measured = result.recommendation.config  # the profiler's own layout, read back from its report
    registry = Registry(private_home)
    mv = registry.get("iris:2")
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(report))
    _record(registry, mv, result, report, {"json": path}, record_inprocess=True)  # as `mlc profile --record-inprocess`

    served = _served_layout(private_home, mv.ref, result.target)
    assert served == measured
    assert served.batcher_options() == measured.batcher_options()

    # Over HTTP the profiler starts `mlc serve` with the layout's flags; parsed by the real command,
    # they serve that layout too (with or without the recorded profile).
    params = serve_cmd.make_context("serve", [mv.ref, *measured.serve_flags(), "--target", result.target]).params
    flags = {name: params[name] for name in ("workers", "instances", "threads", "max_batch_size",
                                              "max_queue_delay_us", "max_queue_rows")}
    assert _served_layout(private_home, mv.ref, result.target, **flags) == measured
    assert _served_layout(private_home, "iris:1", result.target, **flags) == measured
