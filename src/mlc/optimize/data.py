"""Input rows for parity, calibration and timing: read from the user's file, or drawn.

Real rows are the strong evidence. Without them, rows are drawn to respect the
signature: standard normal float32 by default, but where the graph shows a
column's domain the draw follows it: a Scaler's offset and scale, a tree's split
thresholds (so every branch is exercised, not the few a unit normal reaches), a
one-hot encoder's categories (a non-integer there is outside the model's domain).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from mlc.convert.graph import TREE_OPS, input_names
from mlc.errors import MissingDependencyError, UsageError

SUFFIXES = (".npy", ".csv", ".parquet")


def load_rows(source: str | Path | np.ndarray, n_features: int | None) -> np.ndarray:
    """The rows as a C-contiguous float32 (n, n_features) array."""
    rows = np.asarray(source if isinstance(source, np.ndarray) else _read(Path(source)))
    if rows.ndim == 1 and n_features == 1:
        rows = rows.reshape(-1, 1)
    if rows.ndim != 2:
        raise UsageError(f"input rows must be a 2-D table, got shape {rows.shape}")
    if n_features is not None and rows.shape[1] != n_features:
        raise UsageError(f"the data has {rows.shape[1]} columns but the model takes {n_features} features",
                         "pass only the feature columns, in training order (drop the label column)")
    if len(rows) == 0:
        raise UsageError("the data file has no rows")
    try:
        return np.ascontiguousarray(rows, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the data is not numeric: {exc}", "mlc optimizes models on numeric features") from exc


def _read(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"cannot read rows from {path.name}", f"use one of: {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise UsageError(f"data file {path} does not exist")
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise UsageError(f"{path.name} is not a plain numeric .npy array: {exc}") from exc
    try:
        import pandas as pd
    except ImportError:
        raise MissingDependencyError("pandas", "data", f"reading {suffix} rows") from None
    if suffix == ".csv":
        # Read raw, then look at the first row: a header has a cell that is no number. (Letting
        # pandas take it as a header first renames a repeated or empty cell, "1.5.1" or
        # "Unnamed: 1", and that row of data was then dropped as a header.)
        frame = pd.read_csv(path, header=None, dtype=str)  # empty cells and NA, NaN, NULL... -> NaN
        if len(frame) and not all(pd.isna(c) or _is_number(c) for c in frame.iloc[0]):
            frame = frame.iloc[1:]
        return frame.to_numpy()
    try:
        return pd.read_parquet(path).to_numpy()
    except ImportError:
        raise MissingDependencyError("pyarrow", "data", "reading .parquet rows") from None


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def draw_inputs(model: onnx.ModelProto, n_features: int, n_rows: int, seed: int = 0) -> np.ndarray:
    """Rows drawn to respect the graph's input: N(0, 1), except where the graph shows a column's domain."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n_rows, n_features)).astype(np.float32)
    for node, columns in column_consumers(model, n_features):
        attrs = {a.name: a for a in node.attribute}
        if node.op_type in TREE_OPS:
            _around_thresholds(rows, columns, attrs, rng)
        elif node.op_type == "Scaler":
            offset = np.resize(np.asarray(attrs["offset"].floats or [0.0], dtype=np.float64), len(columns))
            scale = np.resize(np.asarray(attrs["scale"].floats or [1.0], dtype=np.float64), len(columns))
            scale = np.where(scale == 0, 1.0, scale)
            rows[:, columns] = (offset + rows[:, columns] / scale).astype(np.float32)
        elif node.op_type == "OneHotEncoder" and "cats_int64s" in attrs:
            categories = np.asarray(attrs["cats_int64s"].ints, dtype=np.float32)
            rows[:, columns] = rng.choice(categories, size=(n_rows, len(columns)))
    return rows


def with_missing(rows: np.ndarray, model: onnx.ModelProto, n_features: int, seed: int = 0) -> np.ndarray:
    """A copy of float rows with a few missing values (NaN) in the columns trees read directly:
    trees route NaN down a branch of their own, which a candidate must match."""
    columns = sorted({c for node, cols in column_consumers(model, n_features) if node.op_type in TREE_OPS
                      for c in cols})
    out = rows.copy()
    holes = np.random.default_rng(seed).random((len(rows), len(columns))) < _MISSING_SHARE
    out[:, columns] = np.where(holes, np.nan, out[:, columns])
    return out


_MISSING_SHARE = 0.03  # of the values of each column a tree reads, made NaN

# Ops that pass input columns through unchanged, or select some of them.
_PASS_THROUGH = ("Cast", "Identity")
_SELECT = ("ArrayFeatureExtractor", "Gather")


def column_consumers(model: onnx.ModelProto, n_features: int) -> list[tuple[onnx.NodeProto, list[int]]]:
    """Nodes that read input columns directly (through casts and column selections), with those columns."""
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    traced = {input_names(model)[0]: list(range(n_features))}
    found = []
    for node in model.graph.node:  # topologically sorted
        source = node.input[0] if node.input else ""
        if source not in traced:
            continue
        columns = traced[source]
        if node.op_type in _PASS_THROUGH:
            traced[node.output[0]] = columns
        elif node.op_type in _SELECT and len(node.input) > 1 and node.input[1] in constants:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0 if node.op_type == "Gather" else 1)
            if node.op_type == "Gather" and axis not in (1, -1):
                continue
            picked = np.asarray(constants[node.input[1]]).ravel()
            traced[node.output[0]] = [columns[int(i)] for i in picked]
        else:
            found.append((node, columns))
    return found


def _around_thresholds(rows: np.ndarray, columns: list[int], attrs: dict[str, onnx.AttributeProto],
                       rng: np.random.Generator) -> None:
    """Half the rows near a random threshold of each feature, half uniform over the thresholds' range."""
    if "nodes_featureids" not in attrs:
        return
    features = np.asarray(attrs["nodes_featureids"].ints)
    if "nodes_values" in attrs and attrs["nodes_values"].floats:
        values = np.asarray(attrs["nodes_values"].floats, dtype=np.float64)
    elif "nodes_values_as_tensor" in attrs:
        values = numpy_helper.to_array(attrs["nodes_values_as_tensor"].t).astype(np.float64)
    else:
        return
    split = np.asarray([m != b"LEAF" for m in attrs["nodes_modes"].strings])
    n_rows = len(rows)
    for f, column in enumerate(columns):
        thresholds = np.unique(values[split & (features == f)])
        thresholds = thresholds[np.isfinite(thresholds)]
        if thresholds.size == 0:
            continue
        lo, hi = float(thresholds[0]), float(thresholds[-1])
        spread = max(hi - lo, 1e-3 * max(1.0, abs(lo)))
        near = thresholds[rng.integers(0, thresholds.size, n_rows)] + rng.normal(0, 0.02 * spread, n_rows)
        wide = rng.uniform(lo - 0.1 * spread, hi + 0.1 * spread, n_rows)
        rows[:, column] = np.where(rng.random(n_rows) < 0.5, near, wide).astype(np.float32)
