"""The recommendation holds: `mlc serve` with the recommended settings, at the recommended rate, meets the SLO."""

from __future__ import annotations

import pytest

from mlc.profile import ProfileOptions, profile
from mlc.profile.loadgen_http import Endpoint, HttpLoad
from mlc.profile.sampling import ProcessSampler

from ._helpers import skip_without_locust

skip_without_locust()


@pytest.mark.slow
def test_serving_the_recommendation_at_the_recommended_rate_meets_a_loose_slo(tiny_ref, tmp_path):
    outcome = profile(tiny_ref, "cpu-2", ProfileOptions(quick=True, duration_s=1.0, rate_rps=150, slo_p99_ms=50,
                                                         out_dir=tmp_path))
    rec = outcome.result.recommendation
    assert rec is not None and rec.rate_rps == 150 and rec.confirmed
    # `mlc serve` reads instances from the profile just recorded; the flags carry the rest.
    load = HttpLoad(Endpoint("tiny", "X", "FP32", (4,)), ref=tiny_ref, serve_target="cpu-2", url=None,
                    poisson=True, duration_s=3.0, warmup_s=0.5, slo_ms=200, workdir=tmp_path)
    with ProcessSampler(load.serving_pids) as sampler, load.open(rec.config, sampler) as bench:
        (measured,) = bench.ladder([rec.per_replica_rps])
    assert measured.errors == 0
    assert measured.p99_ms <= 200, (measured.p99_ms, rec.predicted_p99_ms)
