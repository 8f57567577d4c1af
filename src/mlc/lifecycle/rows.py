"""The rows two versions are compared on, and their labels: from one file, or a file each.

`--labels` names either a file (one label per row, in the rows' order: .npy, or a CSV/Parquet
of one column, or with a column called `label`) or a column of the data file, which is then
taken out of the features. A number of labels that differs from the number of rows is refused
rather than truncated: a shifted join would grade every row against another's label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlc.errors import MissingDependencyError, UsageError
from mlc.optimize.data import load_rows


@dataclass(frozen=True)
class Rows:
    x: np.ndarray  # (rows, features) float32
    y: np.ndarray | None  # labels as read (numbers or strings), or None without --labels
    source: str  # what the rows came from, for the report (file names, not paths)


def _frame(path: Path) -> object:
    try:
        import pandas as pd
    except ImportError:
        raise MissingDependencyError("pandas", "data", f"reading the labels in {path.name}") from None
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise UsageError(f"cannot read labels from {path.name}", "use a .npy, .csv or .parquet file")


def _labels_file(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False).reshape(-1)
    frame = _frame(path)
    columns = list(frame.columns)  # type: ignore[attr-defined]
    if "label" in columns:
        return np.asarray(frame["label"])  # type: ignore[index]
    if len(columns) != 1:
        raise UsageError(f"{path.name} has {len(columns)} columns and none is called 'label'",
                         "write the labels as one column, or name the label column 'label'")
    return np.asarray(frame[columns[0]])  # type: ignore[index]


def read_rows(data: Path, labels: str | None, n_features: int | None) -> Rows:
    """The feature rows of `data` and, with `labels` (a file or a column of `data`), their labels."""
    if labels is None:
        return Rows(load_rows(data, n_features), None, data.name)
    if Path(labels).is_file():
        x = load_rows(data, n_features)
        y = _labels_file(Path(labels))
        source = f"{data.name}, labels from {Path(labels).name}"
    else:
        if data.suffix.lower() == ".npy":
            raise UsageError(f"--labels {labels!r} is no file, and {data.name} has no named columns",
                             "pass a labels file, or the rows as CSV/Parquet with a header naming the label column")
        frame = _frame(data)
        if labels not in frame.columns:  # type: ignore[attr-defined]
            raise UsageError(f"--labels {labels!r} is neither a file nor a column of {data.name}",
                             f"its columns: {', '.join(map(str, list(frame.columns)[:12]))}")  # type: ignore[attr-defined]
        y = np.asarray(frame[labels])  # type: ignore[index]
        x = load_rows(frame.drop(columns=[labels]).to_numpy(), n_features)  # type: ignore[attr-defined]
        source = f"{data.name}, labels in column {labels!r}"
    if len(y) != len(x):
        raise UsageError(f"{len(y)} labels for {len(x)} rows", "give one label per row, in the rows' order")
    return Rows(x, y, source)
