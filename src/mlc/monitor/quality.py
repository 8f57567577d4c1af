"""Live quality from late ground truth: labels joined to collected rows by request id.

Labels arrive after the model answered (a fraud confirmed a week later, a click or none). A
labels file (CSV, Parquet or JSON lines) holds a request id, optionally the row within the
request (requests may carry several rows), and the true value. Joined to what `mlc serve
--collect` recorded for those requests, it gives the quality the model has on live traffic:
accuracy and log-loss for a classifier (log-loss from the collected probabilities), RMSE and
MAE for a regressor. Labels whose request was not collected (not sampled, or already removed
by retention) are counted, not guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.errors import NotFoundError, UsageError
from mlc.monitor.sketch import category_key
from mlc.monitor.window import OUTPUT_PREFIX, dataset_filter, open_dataset

CLASSIFICATION, REGRESSION = "classification", "regression"
_EPS = 1e-15  # probabilities are clipped here before the log, as scikit-learn's log_loss does


@dataclass
class Quality:
    """What the joined labels say about the live model."""

    task: str
    labels: int  # rows in the labels file
    rows: int  # labels matched to a collected row
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def unmatched(self) -> int:
        return self.labels - self.rows

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "labels": self.labels, "rows": self.rows, "unmatched": self.unmatched,
                "metrics": self.metrics, "notes": self.notes}


def read_labels(path: Path, id_column: str = "request_id", label_column: str = "label") -> Any:
    """The labels file as a DataFrame of request_id, row (when given) and label."""
    import pandas as pd

    if not path.is_file():
        raise NotFoundError(f"no labels file at {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        frame = pd.read_json(path, lines=True, dtype=False)
    else:
        frame = pd.read_csv(path, dtype={id_column: str}, keep_default_na=True)
    missing = [c for c in (id_column, label_column) if c not in frame.columns]
    if missing:
        raise UsageError(f"{path} has no column {', '.join(missing)}",
                         f"its columns are {', '.join(map(str, frame.columns[:10]))}; "
                         "name them with --id-column and --label-column")
    columns = {id_column: "request_id", label_column: "label"}
    keep = [id_column, label_column] + (["row"] if "row" in frame.columns else [])
    out = frame[keep].rename(columns=columns)
    out["request_id"] = out["request_id"].astype(str)
    return out


def join(directory: Path, labels: Any, *, model: str | None, version: int | None,
         since_seconds: float | None = None, now: float | None = None) -> Any:
    """Collected rows (their outputs) that have a label, one per label; refuses an ambiguous join."""
    import pyarrow.compute as pc

    dataset = open_dataset(directory)
    outputs = [n for n in dataset.schema.names if n.startswith(OUTPUT_PREFIX)]
    if not outputs:
        raise UsageError(f"the data collected in {directory} has no model outputs to judge")
    ids = pc.field("request_id").isin(labels["request_id"].unique().tolist())
    condition = dataset_filter(dataset.schema, model, version, since_seconds, now)
    condition = ids if condition is None else condition & ids
    collected = dataset.scanner(columns=["request_id", "row", *outputs], filter=condition).to_table().to_pandas()
    on = ["request_id", "row"] if "row" in labels.columns else ["request_id"]
    if on == ["request_id"] and collected["request_id"].duplicated().any():
        raise UsageError("some labelled requests carried several rows, and the labels file has no 'row' column",
                         "add a 'row' column (0 for a request's first row) to say which row each label is for")
    collected = collected.drop_duplicates(on)  # a request offered twice (a retried write) counts once
    return labels.merge(collected, on=on, how="inner")


def task_of(columns: Sequence[str], task: str | None) -> str:
    """The given task, else classification when the model answered a label or probabilities."""
    if task in (CLASSIFICATION, REGRESSION):
        return task
    names = [c[len(OUTPUT_PREFIX):] for c in columns if c.startswith(OUTPUT_PREFIX)]
    if any(n == "label" or n.startswith("probabilities") for n in names):
        return CLASSIFICATION
    return REGRESSION


def _probability_columns(columns: Sequence[str]) -> list[str]:
    found = [c for c in columns if c.startswith(f"{OUTPUT_PREFIX}probabilities[")]
    return sorted(found, key=lambda c: int(c.rsplit("[", 1)[1].rstrip("]")))


def measure(joined: Any, labels: int, *, task: str | None = None, classes: Sequence[Any] | None = None) -> Quality:
    """Accuracy and log-loss, or RMSE and MAE, of the collected outputs against the joined labels."""
    kind = task_of(list(joined.columns), task)
    quality = Quality(kind, labels, len(joined))
    if not len(joined):
        quality.notes.append("no label matched a collected row: check the request ids, --since and the version")
        return quality
    if kind == REGRESSION:
        _regression(joined, quality)
    else:
        _classification(joined, quality, classes)
    return quality


def _regression(joined: Any, quality: Quality) -> None:
    names = [c for c in joined.columns if c.startswith(OUTPUT_PREFIX)]
    column = f"{OUTPUT_PREFIX}variable" if f"{OUTPUT_PREFIX}variable" in names else names[0]
    truth = joined["label"].to_numpy(dtype=np.float64)
    predicted = joined[column].to_numpy(dtype=np.float64)
    error = predicted - truth
    quality.metrics.update(rmse=float(math.sqrt(np.mean(error**2))), mae=float(np.mean(np.abs(error))))
    quality.notes.append(f"predictions read from {column}")


def _classification(joined: Any, quality: Quality, classes: Sequence[Any] | None) -> None:
    truth = [category_key(v) for v in joined["label"].tolist()]
    probabilities = _probability_columns(list(joined.columns))
    keys = [category_key(c) for c in classes] if classes else []
    if probabilities and len(keys) != len(probabilities):
        keys = [str(k) for k in range(len(probabilities))]
        quality.notes.append("the model's classes were not recorded: probability column k is read as class k")
    if f"{OUTPUT_PREFIX}label" in joined.columns:
        predicted = [category_key(v) for v in joined[f"{OUTPUT_PREFIX}label"].tolist()]
    elif probabilities:
        best = joined[probabilities].to_numpy(dtype=np.float64).argmax(axis=1)
        predicted = [keys[i] for i in best]
    else:
        raise UsageError("the collected outputs have neither a label nor probabilities to judge a classifier by")
    quality.metrics["accuracy"] = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
    if not probabilities:
        return
    index = {k: i for i, k in enumerate(keys)}
    known = [i for i, t in enumerate(truth) if t in index]
    if len(known) < len(truth):
        quality.notes.append(f"{len(truth) - len(known)} label(s) name a class the model does not have: "
                             "left out of the log-loss")
    if known:
        p = joined[probabilities].to_numpy(dtype=np.float64)[known]
        chosen = p[np.arange(len(known)), [index[truth[i]] for i in known]]
        quality.metrics["log_loss"] = float(-np.mean(np.log(np.clip(chosen, _EPS, 1.0))))
