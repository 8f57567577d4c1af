"""Rows a server can receive that real data may lack, added to parity when the user gives --data.

Real rows prove a candidate on the inputs the model saw; a server also receives the inputs it
did not: a JSON `null` (NaN in `mlc serve`), a value past anything in the data, zeros from a
default, and values exactly on a tree's split threshold, where a float32 graph and a float64
original can route a row differently. Each family is built from a few real rows with one column
changed at a time (so the rest of the row stays realistic), plus whole rows of the edge value:

- `missing`: NaN in each column, and a row of NaN (used only where the original accepts NaN);
- `extremes`: each column's min and max in the data, and one span beyond each side;
- `zeros`: each column at 0, and a row of zeros;
- `thresholds`: each column at the split thresholds of the tree ensembles that read it directly
  (read by mlc.trees' parser), as float32 exactly, and one float32 step either side.

A family the original itself refuses (NaN for a model that takes none, an unknown category for
a strict encoder) is left out and named, since there is nothing to compare a candidate with.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx

from mlc.convert.graph import TREE_OPS
from mlc.optimize.data import column_consumers

MISSING, EXTREMES, ZEROS, THRESHOLDS = "missing", "extremes", "zeros", "thresholds"
FAMILIES = (MISSING, EXTREMES, ZEROS, THRESHOLDS)
# Real rows each changed column is placed in: enough to vary the other columns, cheap for wide tables.
BASE_ROWS = 4
# Split thresholds tried per column (evenly over the sorted distinct ones) and rows in that family at most.
THRESHOLDS_PER_COLUMN = 64
MAX_THRESHOLD_ROWS = 4096


@dataclass
class EdgeRows:
    """The edge rows the original accepted, by family, and the families it refused with why."""

    rows: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {family: len(rows) for family, rows in self.rows.items()}


def edge_families(model: onnx.ModelProto, n_features: int, real: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Every family's rows (float32, like `real`), before the original has been asked about them."""
    rng = np.random.default_rng(seed)
    base = real[rng.choice(len(real), size=min(BASE_ROWS, len(real)), replace=False)]
    finite = np.where(np.isfinite(real), real, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: handled by the guards below
        lo, hi = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
    span = np.where(np.isfinite(hi - lo) & (hi > lo), hi - lo, np.maximum(1.0, np.abs(np.nan_to_num(hi))))
    per_column: dict[str, list[np.ndarray]] = {
        MISSING: [np.full(n_features, np.nan)],
        EXTREMES: [np.nan_to_num(lo), np.nan_to_num(hi)],
        ZEROS: [np.zeros(n_features)],
    }
    values: dict[str, list[tuple[int, float]]] = {MISSING: [], EXTREMES: [], ZEROS: []}
    for column in range(n_features):
        values[MISSING].append((column, np.nan))
        values[ZEROS].append((column, 0.0))
        if np.isfinite(lo[column]):
            values[EXTREMES] += [(column, v) for v in (lo[column], hi[column], lo[column] - span[column],
                                                       hi[column] + span[column])]
    values[THRESHOLDS] = _threshold_values(model, n_features)
    per_column[THRESHOLDS] = []
    out: dict[str, np.ndarray] = {}
    for family in FAMILIES:
        rows = [*per_column[family], *_placed(base, values[family])]
        if rows:
            out[family] = np.asarray(rows, dtype=np.float64).astype(real.dtype)
    return out


def _placed(base: np.ndarray, values: list[tuple[int, float]]) -> list[np.ndarray]:
    """One row per (column, value): a base row (taken in turn) with that column set."""
    rows = []
    for i, (column, value) in enumerate(values):
        row = base[i % len(base)].astype(np.float64)
        row[column] = value
        rows.append(row)
    return rows


def _threshold_values(model: onnx.ModelProto, n_features: int) -> list[tuple[int, float]]:
    """(input column, value) at, just below and just above each float32 split threshold on it."""
    from mlc.trees import parse_tree_ensemble
    from mlc.trees.parse import NodeMode

    by_column: dict[int, set[float]] = {}
    for node, columns in column_consumers(model, n_features):
        if node.op_type not in TREE_OPS:
            continue
        try:
            ensemble = parse_tree_ensemble(node)
        except Exception:  # an ensemble the reader does not take: no thresholds from it
            continue
        split = ensemble.mode != NodeMode.LEAF
        for feature, threshold in zip(ensemble.feature[split], ensemble.threshold[split], strict=True):
            if 0 <= int(feature) < len(columns) and np.isfinite(threshold):
                by_column.setdefault(columns[int(feature)], set()).add(float(threshold))
    out: list[tuple[int, float]] = []
    for column in sorted(by_column):
        thresholds = np.unique(np.asarray(sorted(by_column[column]), dtype=np.float32))
        if thresholds.size > THRESHOLDS_PER_COLUMN:
            thresholds = thresholds[np.linspace(0, thresholds.size - 1, THRESHOLDS_PER_COLUMN).round().astype(int)]
        for t in thresholds:
            for value in (np.nextafter(t, np.float32(-np.inf)), t, np.nextafter(t, np.float32(np.inf))):
                out.append((column, float(value)))
    return out[:MAX_THRESHOLD_ROWS]


def check_edges(families: Mapping[str, np.ndarray],
                outputs: Callable[[np.ndarray], dict[str, np.ndarray]]) -> EdgeRows:
    """The families the original answers (with its outputs), and why it refused the others."""
    edges = EdgeRows()
    for family, rows in families.items():
        try:
            answer = outputs(rows)
        except Exception as exc:  # the original's own refusal: nothing to compare a candidate with
            edges.refused[family] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            continue
        edges.rows[family] = rows
        edges.outputs[family] = {k: np.asarray(v) for k, v in answer.items()}
    return edges
