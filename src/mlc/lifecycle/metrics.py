"""Quality metrics of one model on labelled rows, with paired bootstrap confidence intervals.

Why our own numpy versions rather than scikit-learn's: a bootstrap evaluates each metric a
thousand times on resampled rows, and every metric here is written over per-row terms (a
row's loss, its hit, its squared error) so that one resample costs a gather and a mean.
Each is checked against scikit-learn's in tests/lifecycle/test_metrics.py.

Paired: the new and the old model are scored on the same resampled rows, so the interval of
their difference excludes the rows' own variation (the question a promotion asks is "is the
new one better on this data", not "how good would each be on another sample").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

CLASSIFICATION, REGRESSION = "classification", "regression"
_EPS = 1e-15  # probabilities clipped before the log, as scikit-learn's log_loss does
DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A metric on the rows, and the percentile bootstrap interval around it."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


# A metric over the rows selected by an index array (the identity for the metric itself).
RowMetric = Callable[[np.ndarray], float]


def classification_metrics(y: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> dict[str, RowMetric]:
    """Metrics of a classifier: y as class indices (0..k-1), proba (rows, k), labels its predicted indices."""
    k = proba.shape[1]
    hit = (labels == y).astype(np.float64)
    loss = -np.log(np.clip(proba[np.arange(len(y)), y], _EPS, 1.0))
    onehot_true = np.eye(k, dtype=bool)[y]
    onehot_pred = np.eye(k, dtype=bool)[labels]

    def f1(idx: np.ndarray) -> float:
        t, p = onehot_true[idx], onehot_pred[idx]
        tp = (t & p).sum(0).astype(np.float64)
        denom = t.sum(0) + p.sum(0)
        per_class = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
        if k == 2:
            return float(per_class[1])  # binary: the positive class's F1, as scikit-learn's default
        present = t.sum(0) > 0
        return float(per_class[present].mean()) if present.any() else float("nan")

    def auc(idx: np.ndarray) -> float:
        if k == 2:
            return _auc(y[idx] == 1, proba[idx, 1])
        scores = [_auc(y[idx] == c, proba[idx, c]) for c in range(k)]  # one-vs-rest, macro
        scores = [s for s in scores if s == s]
        return float(np.mean(scores)) if scores else float("nan")

    return {"accuracy": lambda idx: float(hit[idx].mean()), "log_loss": lambda idx: float(loss[idx].mean()),
            "auc": auc, "f1": f1}


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, RowMetric]:
    err = pred.astype(np.float64) - y.astype(np.float64)
    sq, ab, yy = err * err, np.abs(err), y.astype(np.float64)

    def r2(idx: np.ndarray) -> float:
        sample = yy[idx]
        total = float(((sample - sample.mean()) ** 2).sum())
        return 1.0 - float(sq[idx].sum()) / total if total > 0 else float("nan")

    return {"rmse": lambda idx: float(np.sqrt(sq[idx].mean())), "mae": lambda idx: float(ab[idx].mean()), "r2": r2}


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties given their average rank."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # undefined on a resample with one class only
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(len(score), dtype=np.float64)
    # average ranks over tied runs
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(score)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _interval(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return float("nan"), float("nan")
    tail = (1 - CONFIDENCE) / 2 * 100
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))


@dataclass(frozen=True)
class PairedQuality:
    """Each metric of the new and the old model, and of their difference (new - old)."""

    new: dict[str, Estimate]
    old: dict[str, Estimate]
    diff: dict[str, Estimate]


def paired_bootstrap(new: dict[str, RowMetric], old: dict[str, RowMetric], n_rows: int, *,
                     resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> PairedQuality:
    """Every metric on all rows, with intervals from `resamples` resamples shared by both models."""
    rng = np.random.default_rng(seed)
    everything = np.arange(n_rows)
    names: Sequence[str] = list(new)
    draws: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for _ in range(resamples):
        idx = rng.integers(0, n_rows, n_rows)
        for name in names:
            draws[name].append((new[name](idx), old[name](idx)))
    out_new, out_old, out_diff = {}, {}, {}
    for name in names:
        pairs = np.asarray(draws[name], dtype=np.float64).reshape(-1, 2)
        v_new, v_old = new[name](everything), old[name](everything)
        out_new[name] = Estimate(v_new, *_interval(pairs[:, 0]))
        out_old[name] = Estimate(v_old, *_interval(pairs[:, 1]))
        out_diff[name] = Estimate(v_new - v_old, *_interval(pairs[:, 0] - pairs[:, 1]))
    return PairedQuality(out_new, out_old, out_diff)
