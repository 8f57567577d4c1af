"""A data summary: one mergeable sketch per input feature and per model output column.

The same type serves both sides of a drift check. A version's reference is the summary of
the rows it was built or validated on (with the model's outputs on them); a window of
collected data is summarised "like" the reference, so each column keeps the reference's kind
(a categorical-like feature stays categorical even if a window happens to hold many values).
Summaries of several files or windows merge into one, so nothing needs the raw rows twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.errors import NotFoundError, UsageError
from mlc.monitor.sketch import ColumnSketch, infer_kind

SCHEMA = "mlc.reference/1"


def output_columns(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each output as 1-D columns: `label`, or `probabilities[0]`, `probabilities[1]`, ..."""
    columns: dict[str, np.ndarray] = {}
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.ndim <= 1:
            columns[name] = array.reshape(-1)
        else:
            flat = array.reshape(array.shape[0], -1)
            for j in range(flat.shape[1]):
                columns[f"{name}[{j}]"] = flat[:, j]
    return columns


def default_feature_names(n: int) -> list[str]:
    return [f"x{j}" for j in range(n)]


@dataclass
class DataSummary:
    """Per-column sketches of a model's inputs and outputs over some rows."""

    features: dict[str, ColumnSketch]
    outputs: dict[str, ColumnSketch] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # model ref, where the rows came from, when

    @property
    def rows(self) -> int:
        first = next(iter(self.features.values()), None)
        return first.rows if first is not None else 0

    @classmethod
    def empty_like(cls, other: DataSummary) -> DataSummary:
        """A summary with the other's columns and kinds and no rows yet."""
        return cls({k: ColumnSketch(v.kind) for k, v in other.features.items()},
                   {k: ColumnSketch(v.kind) for k, v in other.outputs.items()})

    @classmethod
    def from_rows(cls, x: np.ndarray, outputs: Mapping[str, np.ndarray] | None = None, *,
                  feature_names: Sequence[str] | None = None, like: DataSummary | None = None,
                  meta: Mapping[str, Any] | None = None) -> DataSummary:
        """Summarise a 2-D feature array (and the model's outputs on it).

        like: the reference to mirror (its columns and kinds); without it kinds are inferred.
        """
        x = np.asarray(x)
        if x.ndim != 2:
            raise UsageError(f"a data summary needs 2-D rows (rows x features), not shape {list(x.shape)}")
        names = list(feature_names) if feature_names is not None else (
            list(like.features) if like is not None else default_feature_names(x.shape[1]))
        if len(names) != x.shape[1]:
            raise UsageError(f"the rows have {x.shape[1]} features; {len(names)} names were given"
                             + (" by the reference" if like is not None and feature_names is None else ""),
                             "send rows with the reference's features, in its order")
        outs = output_columns(outputs or {})
        summary = cls.empty_like(like) if like is not None else cls(
            {n: ColumnSketch(infer_kind(x[:, j])) for j, n in enumerate(names)},
            {n: ColumnSketch(infer_kind(v)) for n, v in outs.items()})
        summary.meta = dict(meta or {})
        summary.update(x, outs)
        return summary

    def update(self, x: np.ndarray, outputs: Mapping[str, np.ndarray] | None = None) -> DataSummary:
        """Add rows: x with one column per feature in this summary's order; outputs by column name."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise UsageError(f"rows of shape {list(x.shape)} do not fit a summary of {len(self.features)} features")
        for j, sketch in enumerate(self.features.values()):
            sketch.update(x[:, j])
        columns = output_columns(outputs or {})
        for name, values in columns.items():
            if name in self.outputs:
                self.outputs[name].update(values)
        return self

    def merge(self, other: DataSummary) -> DataSummary:
        if list(other.features) != list(self.features):
            raise UsageError("cannot merge summaries of different features",
                             f"one has {list(self.features)[:5]}..., the other {list(other.features)[:5]}...")
        for name, sketch in other.features.items():
            self.features[name].merge(sketch)
        for name, sketch in other.outputs.items():
            if name in self.outputs:
                self.outputs[name].merge(sketch)
        return self

    # -- storage -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "meta": self.meta,
                "features": {k: v.to_dict() for k, v in self.features.items()},
                "outputs": {k: v.to_dict() for k, v in self.outputs.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "reference") -> DataSummary:
        schema = str(data.get("schema", ""))
        if schema.split("/")[0] != SCHEMA.split("/")[0] or schema.split("/")[-1] != SCHEMA.split("/")[-1]:
            raise UsageError(f"{source} is not an mlc reference of schema {SCHEMA} (it says {schema or 'nothing'})",
                             "build it again with this mlc (mlc register --data / mlc optimize --data)")
        return cls({k: ColumnSketch.from_dict(v) for k, v in data["features"].items()},
                   {k: ColumnSketch.from_dict(v) for k, v in data.get("outputs", {}).items()},
                   dict(data.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        from mlc.files import atomic_write

        path = Path(path)
        self.meta.setdefault("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        atomic_write(path, json.dumps(self.to_dict(), indent=1).encode())
        return path

    @classmethod
    def load(cls, path: str | Path) -> DataSummary:
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"no reference file at {path}")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path} is not a JSON reference: {exc}") from exc
        return cls.from_dict(data, str(path))
