"""Shadow mode: a candidate sees sampled live requests after they are answered and is scored on them,
without ever answering one."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mlc.errors import UsageError
from mlc.registry import Registry
from mlc.serve.shadow import compare

from .conftest import N_FEATURES, infer_body, wait_until
from .test_plan import plan_for


def test_rows_agree_on_equal_labels_and_scores_within_the_tolerance():
    served = {"label": np.array([0, 1, 2, 1]), "probabilities": np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5],
                                                                          [0.3, 0.7]], dtype=np.float32)}
    candidate = {"label": np.array([0, 1, 1, 1]), "probabilities": np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5],
                                                                             [0.3, 0.75]], dtype=np.float32)}
    rows, same_labels, agreeing, largest = compare(served, candidate, atol=1e-5)
    assert (rows, same_labels, agreeing) == (4, 3, 2)  # row 2 differs by label, row 3 by 0.05
    assert largest == pytest.approx(0.05, abs=1e-6)
    assert compare(served, candidate, atol=0.1)[2] == 3
    nan = {"label": served["label"], "probabilities": np.full((4, 2), np.nan, dtype=np.float32)}
    assert compare(served, nan, atol=1.0)[1:3] == (4, 0)
    regression = compare({"variable": np.array([1.0, 2.0])}, {"variable": np.array([1.0, 2.5])}, atol=0.1)
    assert regression[:3] == (2, 2, 1)  # no labels to differ; the second row is 0.5 off
    with pytest.raises(ValueError, match="no output in common"):
        compare(served, {"variable": np.zeros(4)}, atol=1.0)


def test_a_shadow_must_be_a_candidate_of_a_served_model(private_home):
    with pytest.raises(UsageError, match="already answers requests"):
        plan_for(private_home, "iris:1", shadow="iris:1")
    with pytest.raises(UsageError, match="no model named reg is served") as info:
        plan_for(private_home, "iris:1", shadow="reg:1")
    assert "mlc serve reg --shadow reg:1" in info.value.hint
    plan = plan_for(private_home, "iris:1", shadow="iris:2", shadow_sample=0.5)
    assert plan.shadow is not None and plan.shadow.version.ref == "iris:2"
    assert (plan.shadow.version.name, plan.shadow.settings.sample) == ("iris", 0.5)
    assert [v.ref for v in plan.versions] == ["iris:1"]  # the candidate answers nothing


def _shadow_metrics(server) -> dict[str, float]:
    status, _, body = server.request("GET", "/metrics")
    assert status == 200
    found = re.findall(r'^(mlc_shadow_\w+)\{model="iris",shadow="iris:\d+"\} (\S+)$', body.decode(), re.MULTILINE)
    return {name: float(value) for name, value in found}


def _infer_rows(server, rows: np.ndarray) -> list[int]:
    """Each row as its own request; the labels clients got, checked to come from the served version 1."""
    labels = []
    conn = server.connection()
    for row in rows:
        conn.request("POST", "/v2/models/iris/infer", body=json.dumps(infer_body(row[None, :])))
        response = conn.getresponse()
        assert response.status == 200
        answer = json.loads(response.read())
        assert answer["model_version"] == "1"
        labels.append(next(o["data"][0] for o in answer["outputs"] if o["name"] == "label"))
    conn.close()
    return labels


def test_a_shadow_is_scored_on_every_answered_request_and_never_answers(start_server, models):
    rows = np.random.default_rng(5).normal(size=(80, N_FEATURES)).astype(np.float32)
    server = start_server("iris:1", "--shadow", "iris:2")
    assert wait_until(lambda: any("shadow: 100% of iris's answered requests mirrored to iris:2" in line
                                  for line in server.output))
    labels = _infer_rows(server, rows)
    assert labels == models["iris1"].predict(rows).tolist()
    assert wait_until(lambda: _shadow_metrics(server).get("mlc_shadow_requests_compared_total") == len(rows), 60)
    counted = _shadow_metrics(server)
    expected = int((models["iris1"].predict(rows) == models["iris2"].predict(rows)).sum())
    assert 0 < expected < len(rows)  # the two forests disagree somewhere, so the count can tell them apart
    assert counted["mlc_shadow_rows_total"] == len(rows)
    assert counted["mlc_shadow_rows_same_labels_total"] == expected
    # Two forests' probabilities differ on every row (checked below), so no row agrees whole.
    assert counted["mlc_shadow_rows_agreeing_total"] == 0
    assert counted["mlc_shadow_requests_sampled_total"] == len(rows)
    assert counted["mlc_shadow_requests_failed_total"] == 0
    served = models["iris1"].predict_proba(rows)
    candidate = models["iris2"].predict_proba(rows)
    assert (np.abs(served - candidate).max(axis=1) > 1e-5).all()
    assert counted["mlc_shadow_max_abs_diff"] == pytest.approx(np.abs(served - candidate).max(), abs=1e-5)


def test_a_shadow_with_the_same_outputs_agrees_on_every_row(start_server, private_home):
    reg = Registry(private_home)
    same = reg.register("iris", reg.artifact_path("iris:1").read_bytes(), format="onnx", framework="sklearn",
                        signature=reg.get("iris:1").signature)
    server = start_server("iris:1", "--shadow", same.ref, "--shadow-sample", "0.5", "--workers", "2",
                          home=private_home)
    rows = np.random.default_rng(6).normal(size=(200, N_FEATURES)).astype(np.float32)
    _infer_rows(server, rows)

    def settled() -> bool:  # every sampled request compared, dropped or failed
        counted = _shadow_metrics(server)
        done = sum(counted[f"mlc_shadow_requests_{k}_total"] for k in ("compared", "dropped", "failed"))
        return done == counted["mlc_shadow_requests_sampled_total"]

    assert wait_until(settled, 60)
    counted = _shadow_metrics(server)
    assert counted["mlc_shadow_requests_dropped_total"] == counted["mlc_shadow_requests_failed_total"] == 0
    assert 70 <= counted["mlc_shadow_requests_compared_total"] <= 130
    assert counted["mlc_shadow_rows_agreeing_total"] == counted["mlc_shadow_rows_same_labels_total"] \
        == counted["mlc_shadow_rows_total"] == counted["mlc_shadow_requests_compared_total"]
    assert counted["mlc_shadow_max_abs_diff"] <= 1e-5
