"""Drift statistics between two summaries of one column, computed from sketches alone.

Numeric: PSI over the reference's deciles, the two-sample Kolmogorov-Smirnov statistic with its
p-value, and the Wasserstein-1 distance in units of the reference's standard deviation.
Categorical-like: chi-squared on the 2 x K table of counts, and PSI over the categories.
Both: the shift of the missing-value share (two-proportion z-test) and the share of values
outside what the reference saw (outside its [min, max], or categories it never had), tested
against the chance that a fresh draw lands outside a sample's range.

The KS statistic is read from two KLL sketches, each of which may misplace a rank by up to its
rank error; that error is subtracted from D before the p-value, so a sketch's own inaccuracy
can make the test more cautious but never reads as drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlc.monitor.sketch import NUMERIC, OTHER, ColumnSketch

PSI_BINS = 10
_EPS = 1e-4  # floor of a bin's share in PSI, so an empty bin is a large term rather than infinite


@dataclass(frozen=True)
class Test:
    """One check: its statistic, its p-value (None when none applies), and an effect size."""

    statistic: float
    p_value: float | None
    effect: float  # the size the verdict's floor is compared with (PSI, share difference, share)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two share vectors over the same bins."""
    e = np.clip(expected, _EPS, None)
    a = np.clip(actual, _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _weighted_items(sketch: ColumnSketch) -> np.ndarray:
    return np.array([item for item, _ in sketch.kll], dtype=np.float64)


def _rank_error(sketch: ColumnSketch) -> float:
    return float(sketch.kll.normalized_rank_error(False)) if sketch.kll.is_estimation_mode() else 0.0


def numeric_psi(ref: ColumnSketch, cur: ColumnSketch) -> float:
    edges = np.unique(np.asarray(ref.kll.get_quantiles(list(np.linspace(0, 1, PSI_BINS + 1)[1:-1]))))
    expected = np.diff(np.asarray(ref.kll.get_cdf(list(edges))), prepend=0.0)
    actual = np.diff(np.asarray(cur.kll.get_cdf(list(edges))), prepend=0.0)
    return psi(expected, actual)


def shares(ref: ColumnSketch, cur: ColumnSketch, categories: int = 12) -> dict[str, Any]:
    """Both sides' shares over the bins PSI reads, for plotting: numeric bins are the reference's
    deciles (labelled by their edges, min and max included); categories are the reference's
    most frequent ones, the rest and unseen ones summed as "other"."""
    if ref.present == 0 or cur.present == 0:
        return {}
    if ref.kind == NUMERIC:
        inner = np.unique(np.asarray(ref.kll.get_quantiles(list(np.linspace(0, 1, PSI_BINS + 1)[1:-1]))))
        expected = np.diff(np.asarray(ref.kll.get_cdf(list(inner))), prepend=0.0)
        actual = np.diff(np.asarray(cur.kll.get_cdf(list(inner))), prepend=0.0)
        edges = [ref.min, *inner.tolist(), ref.max]
        return {"kind": NUMERIC, "edges": [float(e) for e in edges if e is not None],
                "reference": expected.tolist(), "collected": actual.tolist()}
    top = sorted(ref.counts, key=lambda k: (-ref.counts[k], k))[:categories]
    labels = sorted(top, key=_category_order)
    ref_shares = [ref.counts[k] / ref.present for k in labels]
    cur_shares = [cur.counts.get(k, 0) / cur.present for k in labels]
    rest_ref, rest_cur = 1.0 - sum(ref_shares), 1.0 - sum(cur_shares)
    if rest_ref > 1e-12 or rest_cur > 1e-12:
        labels, ref_shares, cur_shares = [*labels, "other"], [*ref_shares, rest_ref], [*cur_shares, rest_cur]
    return {"kind": "categorical", "categories": labels, "reference": ref_shares, "collected": cur_shares}


def _category_order(key: str) -> tuple[int, float, str]:
    """Numbers in numeric order, then text."""
    try:
        return 0, float(key), key
    except ValueError:
        return 1, 0.0, key


def ks(ref: ColumnSketch, cur: ColumnSketch) -> Test:
    """Two-sample KS: D over every value either sketch retains, less both sketches' rank errors."""
    points = np.union1d(_weighted_items(ref), _weighted_items(cur))
    f_ref = np.asarray([ref.kll.get_rank(p, True) for p in points])
    f_cur = np.asarray([cur.kll.get_rank(p, True) for p in points])
    d = float(np.max(np.abs(f_ref - f_cur))) if points.size else 0.0
    adjusted = max(0.0, d - _rank_error(ref) - _rank_error(cur))
    n, m = ref.present, cur.present
    p = float(stats.kstwo.sf(adjusted, max(1, round(n * m / (n + m))))) if adjusted > 0 else 1.0
    return Test(d, p, d)


def wasserstein(ref: ColumnSketch, cur: ColumnSketch, grid: int = 200) -> float:
    """W1 from the two quantile functions, divided by the reference's standard deviation."""
    ranks = list((np.arange(grid) + 0.5) / grid)
    diff = np.abs(np.asarray(ref.kll.get_quantiles(ranks)) - np.asarray(cur.kll.get_quantiles(ranks)))
    scale = ref.std or 1.0
    return float(diff.mean() / scale)


def categorical(ref: ColumnSketch, cur: ColumnSketch) -> tuple[Test, float]:
    """Chi-squared on the 2 x K table of counts (categories seen in either), and PSI over them."""
    keys = sorted(set(ref.counts) | set(cur.counts))
    table = np.array([[ref.counts.get(k, 0) for k in keys], [cur.counts.get(k, 0) for k in keys]], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    expected = table[0] / max(table[0].sum(), 1.0)
    actual = table[1] / max(table[1].sum(), 1.0)
    index = psi(expected, actual)
    if table.shape[1] < 2:
        return Test(0.0, 1.0, index), index
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    return Test(float(chi2), float(p), index), index


def missing_shift(ref: ColumnSketch, cur: ColumnSketch) -> Test:
    """Two-proportion z-test of the missing-value shares; effect = the absolute difference."""
    p1, p2 = ref.missing_share, cur.missing_share
    n1, n2 = ref.rows, cur.rows
    pooled = (ref.missing + cur.missing) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)) if 0 < pooled < 1 else 0.0
    if se == 0.0:
        return Test(0.0, 1.0 if p1 == p2 else 0.0, abs(p2 - p1))
    z = (p2 - p1) / se
    return Test(z, float(2 * stats.norm.sf(abs(z))), abs(p2 - p1))


def out_of_range(ref: ColumnSketch, cur: ColumnSketch) -> Test:
    """Share of present values outside what the reference saw, tested against chance.

    A new draw from the reference's own (continuous) distribution falls outside the range of
    n reference values with probability 2 / (n + 1); for categories, "outside" is a category
    the reference never had (and chance is taken as the same small figure).
    """
    if cur.present == 0 or ref.present == 0:
        return Test(0.0, None, 0.0)
    if ref.kind == NUMERIC:
        low, high, cur_low, cur_high = ref.min, ref.max, cur.min, cur.max
        if low is None or high is None or cur_low is None or cur_high is None:
            return Test(0.0, None, 0.0)
        below = cur.kll.get_rank(low, False) if cur_low < low else 0.0
        above = 1.0 - cur.kll.get_rank(high, True) if cur_high > high else 0.0
        share = float(below + above)
    else:
        unseen = sum(c for k, c in cur.counts.items() if k not in ref.counts or k == OTHER)
        share = unseen / cur.present
    count = round(share * cur.present)
    chance = 2.0 / (ref.present + 1)
    p = float(stats.binomtest(count, cur.present, chance, alternative="greater").pvalue) if count else 1.0
    return Test(share, p, share)
