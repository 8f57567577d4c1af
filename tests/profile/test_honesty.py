"""The recommendation holds: `mlc serve` with the recommended settings takes the traffic it was sized for,
and the report says whether its confirmation runs met the SLO.

Whether a re-measured p99 meets the SLO is a latency measurement: on a shared machine another
process's load decides it (a p99 of 28 ms in the profile, 273 ms a minute later, on 2 cores kept
busy). benchmarks/bench_profile.py judges that on a quiet machine, with a client mlc does not contain.
"""

from __future__ import annotations

import pytest

from mlc.profile import ProfileOptions, profile
from mlc.profile.loadgen_http import Endpoint, HttpLoad
from mlc.profile.sampling import ProcessSampler


@pytest.mark.slow
def test_serving_the_recommendation_takes_the_rate_it_was_sized_for(tiny_ref, tmp_path):
    # A loose SLO: this test is about the flow from profile to serve, not about this machine's tail.
    outcome = profile(tiny_ref, "cpu-2", ProfileOptions(
        mode="inprocess", record_inprocess=True, quick=True, duration_s=1.0, rate_rps=150, slo_p99_ms=1000,
        out_dir=tmp_path))
    rec = outcome.result.recommendation
    assert rec is not None and rec.rate_rps == 150 and rec.replicas >= 1 and rec.confirmed is not None
    assert rec.confirmed or any("missed p99" in note for note in rec.notes)  # an unconfirmed plan says so
    # `mlc serve` reads instances from the profile just recorded; the flags carry the rest. One
    # replica of the plan gets its share of the 150/s it was sized for.
    load = HttpLoad(Endpoint("tiny", "X", "FP32", (4,)), ref=tiny_ref, serve_target="cpu-2", url=None,
                    poisson=True, duration_s=3.0, warmup_s=0.5, slo_ms=1000, workdir=tmp_path)
    with ProcessSampler(load.serving_pids) as sampler, load.open(rec.config, sampler) as bench:
        (measured,) = bench.ladder([150 / rec.replicas])
    assert measured.errors == 0 and measured.ok == measured.sent > 0
