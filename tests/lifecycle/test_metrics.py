"""The bootstrap's own metrics agree with scikit-learn's, and its intervals behave as intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlc.lifecycle import metrics as m


@pytest.mark.parametrize("k", [2, 3])
def test_classification_metrics_equal_scikit_learns(k):
    rng = np.random.default_rng(1)
    n = 300
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + np.eye(k)[y] * 1.5
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    proba[:5] = proba[5]  # ties in the scores: AUC's average ranks
    labels = proba.argmax(1)
    ours = m.classification_metrics(y, proba, labels)
    idx = np.arange(n)
    assert ours["accuracy"](idx) == pytest.approx(skm.accuracy_score(y, labels))
    assert ours["log_loss"](idx) == pytest.approx(skm.log_loss(y, proba, labels=list(range(k))))
    if k == 2:
        assert ours["auc"](idx) == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
        assert ours["f1"](idx) == pytest.approx(skm.f1_score(y, labels))
    else:
        assert ours["auc"](idx) == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
        assert ours["f1"](idx) == pytest.approx(skm.f1_score(y, labels, average="macro"))


def test_regression_metrics_equal_scikit_learns():
    rng = np.random.default_rng(2)
    y = rng.normal(size=200)
    pred = y + rng.normal(scale=0.3, size=200)
    ours = m.regression_metrics(y, pred)
    idx = np.arange(200)
    assert ours["rmse"](idx) == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert ours["mae"](idx) == pytest.approx(skm.mean_absolute_error(y, pred))
    assert ours["r2"](idx) == pytest.approx(skm.r2_score(y, pred))


def test_paired_intervals_hold_the_value_and_see_a_real_difference():
    rng = np.random.default_rng(3)
    y = rng.normal(size=500)
    good = m.regression_metrics(y, y + rng.normal(scale=0.2, size=500))
    bad = m.regression_metrics(y, y + rng.normal(scale=0.6, size=500))
    q = m.paired_bootstrap(good, bad, 500, resamples=300)
    for side in (q.new, q.old, q.diff):
        for est in side.values():
            assert est.low <= est.value <= est.high
    assert q.diff["rmse"].high < 0 and q.diff["r2"].low > 0  # the better model is better beyond doubt
    same = m.paired_bootstrap(good, good, 500, resamples=100)
    assert same.diff["rmse"].low == same.diff["rmse"].high == 0.0  # paired: the same model differs by nothing


def test_auc_on_one_class_is_undefined_not_a_number_made_up():
    y = np.zeros(50, dtype=np.int64)
    proba = np.tile([0.7, 0.3], (50, 1))
    assert np.isnan(m.classification_metrics(y, proba, proba.argmax(1))["auc"](np.arange(50)))
