"""Mergeable summaries of one column: what a reference keeps instead of its raw rows.

A numeric column keeps an Apache DataSketches KLL sketch of its present values (quantiles and
ranks within a known rank error, a few kilobytes whatever the row count), its exact min/max,
mean and variance, and its missing count. A categorical-like column (strings, or few distinct
integers) keeps exact counts per value. Every summary merges with another of the same column,
so windows of collected data and references combine without keeping rows.

Why KLL from `datasketches` rather than code of our own: it is Apache DataSketches' maintained
C++ implementation, its sketches are mergeable with a proven rank-error bound (which the KS
test below subtracts, so a sketch's own error never reads as drift), and its binary form is
the same one the Java and C++ libraries (Druid, Spark jobs) read.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasketches import kll_doubles_sketch

from mlc.errors import UsageError

KLL_K = 400  # rank error about 0.7% at 99% confidence; about 7 KB per column
CATEGORY_LIMIT = 20  # a column with at most this many distinct integers in the reference is categorical-like
_COUNTS_KEPT = 256  # distinct values a categorical summary counts one by one; beyond, they go to OTHER
OTHER = "__other__"
NUMERIC, CATEGORICAL = "numeric", "categorical"


def category_key(value: Any) -> str:
    """One spelling per value, so 2, 2.0 and "2" from JSON, Parquet and numpy count together."""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            raise ValueError("a missing value has no category")
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def missing_mask(values: np.ndarray) -> np.ndarray:
    """NaN for floats, None/NaN for object columns; integer columns have no missing values."""
    if values.dtype.kind == "f":
        mask: np.ndarray = np.isnan(values)
        return mask
    if values.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values], dtype=bool)
    return np.zeros(values.shape, dtype=bool)


def infer_kind(values: np.ndarray) -> str:
    """Categorical-like when the values are strings, booleans or few distinct integers."""
    if values.dtype.kind in "OUSb":
        return CATEGORICAL
    present = values[~missing_mask(values)]
    if present.size == 0:
        return NUMERIC
    if values.dtype.kind in "iu" or np.all(np.mod(present, 1) == 0):
        return CATEGORICAL if np.unique(present).size <= CATEGORY_LIMIT else NUMERIC
    return NUMERIC


@dataclass
class ColumnSketch:
    """The mergeable summary of one column (see the module docstring)."""

    kind: str
    rows: int = 0
    missing: int = 0
    # numeric: KLL sketch of present values, exact running mean and sum of squared deviations
    kll: Any = None
    mean: float = 0.0
    m2: float = 0.0
    # categorical: exact counts per value key
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in (NUMERIC, CATEGORICAL):
            raise UsageError(f"unknown column kind {self.kind!r}", f"use {NUMERIC!r} or {CATEGORICAL!r}")
        if self.kind == NUMERIC and self.kll is None:
            self.kll = kll_doubles_sketch(KLL_K)

    @property
    def present(self) -> int:
        return self.rows - self.missing

    @property
    def missing_share(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.present - 1)) if self.present > 1 else 0.0

    @property
    def min(self) -> float | None:
        return float(self.kll.get_min_value()) if self.kind == NUMERIC and not self.kll.is_empty() else None

    @property
    def max(self) -> float | None:
        return float(self.kll.get_max_value()) if self.kind == NUMERIC and not self.kll.is_empty() else None

    def update(self, values: np.ndarray) -> ColumnSketch:
        """Add a batch of one column's values (1-D)."""
        values = np.asarray(values).reshape(-1)
        missing = missing_mask(values)
        present = values[~missing]
        before = self.present
        self.rows += int(values.size)
        self.missing += int(missing.sum())
        if present.size == 0:
            return self
        if self.kind == NUMERIC:
            batch = np.asarray(present, dtype=np.float64)
            self.kll.update(batch)
            mean = float(batch.mean())
            self._merge_moments(before, int(batch.size), mean, float(((batch - mean) ** 2).sum()))
        else:
            keys, counts = np.unique(np.asarray([category_key(v) for v in present]), return_counts=True)
            self._add_counts(zip(keys.tolist(), counts.tolist(), strict=True))
        return self

    def merge(self, other: ColumnSketch) -> ColumnSketch:
        """Fold another summary of the same column into this one."""
        if other.kind != self.kind:
            raise UsageError(f"cannot merge a {other.kind} column summary into a {self.kind} one")
        before = self.present
        self.rows += other.rows
        self.missing += other.missing
        if self.kind == NUMERIC:
            if not other.kll.is_empty():
                self.kll.merge(other.kll)
            self._merge_moments(before, other.present, other.mean, other.m2)
        else:
            self._add_counts(other.counts.items())
        return self

    def _merge_moments(self, n_a: int, n: int, mean: float, m2: float) -> None:
        """Chan et al.'s parallel update of mean and squared deviations (n_a values so far, n more)."""
        if n == 0:
            return
        total = n_a + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * n_a * n / total

    def _add_counts(self, items: Iterable[tuple[str, int]]) -> None:
        for key, count in items:
            if key in self.counts or len(self.counts) < _COUNTS_KEPT:
                self.counts[key] = self.counts.get(key, 0) + int(count)
            else:
                self.counts[OTHER] = self.counts.get(OTHER, 0) + int(count)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "rows": self.rows, "missing": self.missing}
        if self.kind == NUMERIC:
            data.update(mean=self.mean, m2=self.m2, min=self.min, max=self.max,
                        kll=base64.b64encode(self.kll.serialize()).decode("ascii"))
        else:
            data["counts"] = dict(sorted(self.counts.items()))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSketch:
        kind = str(data["kind"])
        sketch = cls(kind=kind, rows=int(data["rows"]), missing=int(data["missing"]))
        if kind == NUMERIC:
            sketch.kll = kll_doubles_sketch.deserialize(base64.b64decode(data["kll"]))
            sketch.mean, sketch.m2 = float(data["mean"]), float(data["m2"])
        else:
            sketch.counts = {str(k): int(v) for k, v in data["counts"].items()}
        return sketch
