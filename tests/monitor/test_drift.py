"""Drift verdicts on data we control: 10 features, a 5,000-row reference, 5,000 collected rows."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.errors import UsageError
from mlc.monitor.drift import DRIFT, INSUFFICIENT, NO_DRIFT, Thresholds, compare
from mlc.monitor.summary import DataSummary

from ._data import CATEGORICAL, FEATURES, NUMERIC, draw, outputs

ROWS = 5000


@pytest.fixture(scope="module")
def reference() -> DataSummary:
    x = draw(np.random.default_rng(0), ROWS)
    return DataSummary.from_rows(x, outputs(x), feature_names=FEATURES)


def collected(reference: DataSummary, x: np.ndarray) -> DataSummary:
    return DataSummary.from_rows(x, outputs(x), like=reference)


def test_reference_kinds(reference: DataSummary) -> None:
    kinds = {name: sketch.kind for name, sketch in reference.features.items()}
    assert [n for n, k in kinds.items() if k == "numeric"] == NUMERIC
    assert [n for n, k in kinds.items() if k == "categorical"] == CATEGORICAL
    assert reference.outputs["label"].kind == "categorical" and reference.outputs["score"].kind == "numeric"


def test_no_drift_over_20_draws(reference: DataSummary) -> None:
    """Rows from the reference's own distribution: at most one false-alarm column in 20 draws."""
    false_alarms = []
    for seed in range(20):
        result = compare(reference, collected(reference, draw(np.random.default_rng(100 + seed), ROWS)))
        false_alarms += result.drifted
        assert result.rows_collected == ROWS and result.rows_reference == ROWS
    assert len(false_alarms) <= 1, false_alarms


@pytest.mark.parametrize("feature", NUMERIC)
def test_one_feature_shifted_by_one_sd(reference: DataSummary, feature: str) -> None:
    x = draw(np.random.default_rng(7), ROWS)
    j = FEATURES.index(feature)
    x[:, j] += reference.features[feature].std
    result = compare(reference, collected(reference, x))
    assert result.verdict == DRIFT
    drifted_features = [c.name for c in result.columns if c.role == "feature" and c.verdict == DRIFT]
    assert drifted_features == [feature]
    column = result.column(feature)
    assert column.figures["psi"] is not None and column.figures["psi"] > 0.5
    assert column.figures["wasserstein"] is not None and 0.7 < column.figures["wasserstein"] < 1.3


@pytest.mark.parametrize("feature", CATEGORICAL)
def test_categorical_share_shift(reference: DataSummary, feature: str) -> None:
    """A category's share moved (code 0 becomes 1 in half its rows): chi-squared flags it."""
    rng = np.random.default_rng(8)
    x = draw(rng, ROWS)
    j = FEATURES.index(feature)
    zeros = np.flatnonzero(x[:, j] == 0)
    x[zeros[: zeros.size // 2], j] = 1
    result = compare(reference, collected(reference, x))
    assert [c.name for c in result.columns if c.role == "feature" and c.verdict == DRIFT] == [feature]
    assert [c.name for c in result.column(feature).checks if c.verdict == DRIFT] == ["distribution"]


@pytest.mark.parametrize("feature", ["f0", "f5", "f8"])
def test_column_set_to_missing(reference: DataSummary, feature: str) -> None:
    x = draw(np.random.default_rng(9), ROWS)
    x[:, FEATURES.index(feature)] = np.nan
    result = compare(reference, collected(reference, x))
    assert [c.name for c in result.columns if c.role == "feature" and c.verdict == DRIFT] == [feature]
    column = result.column(feature)
    assert [c.name for c in column.checks if c.verdict == DRIFT] == ["missing"]
    assert column.figures["missing_collected"] == 1.0


def test_values_beyond_the_reference_range(reference: DataSummary) -> None:
    """A tenth of f3 (uniform on [-2, 2]) arriving at 5: out of range, whatever the PSI floor."""
    x = draw(np.random.default_rng(10), ROWS)
    x[: ROWS // 10, 3] = 5.0
    result = compare(reference, collected(reference, x), Thresholds(psi=10.0))
    checks = {c.name: c.verdict for c in result.column("f3").checks}
    assert checks["out_of_range"] == DRIFT
    assert result.column("f3").figures["out_of_range"] == pytest.approx(0.1, abs=0.01)


def test_too_few_rows_is_insufficient(reference: DataSummary) -> None:
    result = compare(reference, collected(reference, draw(np.random.default_rng(11), 20)))
    assert result.verdict == INSUFFICIENT
    assert all(c.checks[0].verdict == INSUFFICIENT for c in result.columns)


def test_thresholds_are_settable(reference: DataSummary) -> None:
    """A half-sd shift has a PSI near 0.25: flagged by default, not under a floor of 0.5."""
    x = draw(np.random.default_rng(12), ROWS)
    x[:, 0] += 0.5 * reference.features["f0"].std
    assert "f0" in compare(reference, collected(reference, x)).drifted
    assert "f0" not in compare(reference, collected(reference, x), Thresholds(psi=0.5)).drifted
    with pytest.raises(UsageError):
        Thresholds(alpha=1.5)


def test_summaries_merge_and_round_trip(reference: DataSummary) -> None:
    """Two halves merged read as the whole; the JSON form gives the same verdicts."""
    x = draw(np.random.default_rng(13), ROWS)
    whole = collected(reference, x)
    merged = collected(reference, x[: ROWS // 2]).merge(collected(reference, x[ROWS // 2:]))
    for name in FEATURES:
        a, b = whole.features[name], merged.features[name]
        assert (a.rows, a.missing, a.counts) == (b.rows, b.missing, b.counts)
        assert a.mean == pytest.approx(b.mean) and a.std == pytest.approx(b.std)
        if a.kind == "numeric":
            assert (a.min, a.max) == (b.min, b.max)
            assert a.kll.get_quantile(0.5) == pytest.approx(b.kll.get_quantile(0.5), abs=0.05 * a.std)
    again = DataSummary.from_dict(reference.to_dict())
    assert compare(again, whole).to_dict() == compare(reference, whole).to_dict()
    assert compare(reference, whole).verdict == NO_DRIFT


def test_mismatched_features_are_refused(reference: DataSummary) -> None:
    x = draw(np.random.default_rng(14), 200)
    with pytest.raises(UsageError, match="features"):
        DataSummary.from_rows(x[:, :9], like=reference)
    other = DataSummary.from_rows(x, feature_names=[f"g{j}" for j in range(10)])
    with pytest.raises(UsageError, match="differ"):
        compare(reference, other)
