"""What gets served: references, framework models, recorded deployments, batcher defaults, threads."""

from __future__ import annotations

import pytest

from mlc.config import load_settings
from mlc.errors import NotFoundError, UsageError
from mlc.registry import Registry
from mlc.serve.plan import ServeOptions, build_plan, record_splits
from mlc.serve.split import parse_split
from mlc.targets import get_target


def plan_for(home, *refs, splits=(), **flags):
    options = ServeOptions(refs=refs, splits=tuple(parse_split(s) for s in splits), **flags)
    return build_plan(options, Registry(home), get_target(flags.get("target")), load_settings())


def test_refs_resolve_and_the_first_named_version_answers_unversioned_requests(private_home):
    plan = plan_for(private_home, "iris:2", "iris:1", "reg")
    assert [v.ref for v in plan.versions] == ["iris:2", "iris:1", "reg:1"]
    assert plan.routes == {"iris": {2: 100.0}, "reg": {1: 100.0}}


def test_a_framework_model_is_refused_with_what_to_run(private_home):
    with pytest.raises(UsageError, match="serves ONNX versions only") as info:
        plan_for(private_home, "legacy")
    assert "mlc optimize legacy:1" in info.value.hint


def test_a_framework_model_with_an_optimized_descendant_serves_that(private_home):
    reg = Registry(private_home)
    onnx_bytes = reg.artifact_path("iris:1").read_bytes()
    mv = reg.get("legacy:1")
    reg.register("legacy", onnx_bytes, format="onnx", framework="sklearn", signature=mv.signature,
                 source={"kind": "optimize", "parent": "legacy:1", "passes": []})
    plan = plan_for(private_home, "legacy:1")
    assert [v.ref for v in plan.versions] == ["legacy:2"]
    assert "serving its optimized version legacy:2" in plan.versions[0].note


def test_unknown_model_is_not_found(private_home):
    with pytest.raises(NotFoundError):
        plan_for(private_home, "nope")


def test_split_is_recorded_once_serving_and_then_used_by_default(private_home):
    plan = plan_for(private_home, splits=["iris=iris:1:80,iris:2:20"])
    assert plan.routes == {"iris": {1: 80.0, 2: 20.0}}
    assert Registry(private_home).active_deployment("iris") is None  # no server listens yet
    record_splits(plan, Registry(private_home))
    assert Registry(private_home).active_deployment("iris") == {1: 80.0, 2: 20.0}
    later = plan_for(private_home, "iris")
    assert later.routes == {"iris": {1: 80.0, 2: 20.0}}
    assert plan_for(private_home, "iris:2").routes == {"iris": {2: 100.0}}  # an explicit version wins


def test_split_refs_must_belong_to_the_split_name(private_home):
    with pytest.raises(UsageError, match="not of iris"):
        plan_for(private_home, splits=["iris=iris:1:50,reg:1:50"])


def test_batcher_settings_come_from_flags_then_profile_then_target(private_home):
    reg = Registry(private_home)
    reg.update_metrics("iris:2", {"profile": {"recommendation": {
        "max_batch_size": 32, "max_queue_delay_us": 900, "instances": 2, "preferred_batch_sizes": [8, 16]}}})
    by_ref = {v.ref: v for v in plan_for(private_home, "iris:1", "iris:2").versions}
    assert (by_ref["iris:1"].layout.max_batch_size, by_ref["iris:1"].layout_from) == (64, "target cpu-2")
    profiled = by_ref["iris:2"].layout
    assert (profiled.max_batch_size, profiled.max_queue_delay_us, profiled.instances) == (32, 900, 2)
    assert profiled.preferred_batch_sizes == (8, 16) and by_ref["iris:2"].layout_from == "profile of iris:2"
    (version,) = plan_for(private_home, "iris:2", max_batch_size=8, max_queue_delay_us=0).versions
    flagged = version.layout
    assert (flagged.max_batch_size, flagged.max_queue_delay_us) == (8, 0)
    assert version.layout_from == "flags, else profile of iris:2"
    assert flagged.preferred_batch_sizes == (8,)  # preferred sizes above the max are dropped


def test_a_profile_for_the_target_sets_the_whole_layout_and_flags_override_it(private_home):
    Registry(private_home).update_metrics("iris:2", {"profile": {"target": "cpu-8", "recommendation": {
        "max_batch_size": 16, "max_queue_delay_us": 250, "instances": 2, "intra_op_threads": 1, "workers": 3}}})
    plan = plan_for(private_home, "iris:2", target="cpu-8")
    (layout,) = [v.layout for v in plan.versions]
    assert plan.workers == 3 and (layout.instances, layout.threads) == (2, 1)  # as measured, not cores // 6
    flagged = plan_for(private_home, "iris:2", target="cpu-8", workers=1, instances=1, threads=4)
    assert flagged.workers == 1 and (flagged.versions[0].layout.instances, flagged.versions[0].layout.threads) == (1, 4)
    assert flagged.versions[0].layout_from == "flags, else profile of iris:2"
    # A flag that changes the layout leaves the profile's threads behind: the cores are shared out again.
    more = plan_for(private_home, "iris:2", target="cpu-8", workers=4)
    assert more.workers == 4 and (more.versions[0].layout.instances, more.versions[0].layout.threads) == (2, 1)


def test_a_profile_for_another_target_is_not_used_and_the_note_says_so(private_home):
    Registry(private_home).update_metrics("iris:2", {"profile": {"target": "cpu-8", "recommendation": {
        "max_batch_size": 16, "max_queue_delay_us": 250, "instances": 4, "intra_op_threads": 2, "workers": 1}}})
    (version,) = plan_for(private_home, "iris:2", target="cpu-2").versions
    assert version.layout_from == "target cpu-2" and version.layout.instances == 1
    assert "profile is for target cpu-8, not cpu-2" in version.note


def test_threads_times_workers_stay_within_the_targets_cores(private_home):
    def threads(**flags):
        return plan_for(private_home, "iris", **flags).versions[0].layout.threads

    assert threads(target="cpu-8", workers=2) == 4 and threads(target="cpu-8", workers=3) == 2
    assert threads(target="cpu-2", workers=4) == 1
    assert threads(target="cpu-8", workers=1, instances=4) == 2


def test_threads_stay_within_what_optimize_recorded(private_home):
    reg = Registry(private_home)
    mv = reg.get("iris:1")
    runtime = {"session": {"intra_op_threads": 1, "inter_op_threads": 1}, "engines": [{"engine": "ort"}]}
    reg.register("iris", reg.artifact_path("iris:1").read_bytes(), format="onnx", framework="sklearn",
                 signature=mv.signature, source={"kind": "optimize", "parent": "iris:1", "runtime": runtime})
    assert plan_for(private_home, "iris:3", target="cpu-8").versions[0].layout.threads == 1


def test_oversubscribed_flags_are_served_with_a_note(private_home):
    (version,) = plan_for(private_home, "iris:2", target="cpu-2", workers=2, instances=2, threads=2).versions
    assert (version.layout.instances, version.layout.threads) == (2, 2)
    assert "more threads than target cpu-2's 2 cores" in version.note


def test_nothing_to_serve_is_a_usage_error(private_home):
    with pytest.raises(UsageError, match="nothing to serve"):
        plan_for(private_home)
