"""Reading a window of collected rows (what `mlc serve --collect` wrote) into a data summary.

The folder is read as one Hive-partitioned Parquet dataset, filtered to the model and version
and to the rows newer than `since`, batch by batch into a summary mirroring the reference: raw
rows are never held all at once. Features the server did not write as numbers (left out with
--collect-exclude, hashed with --collect-hash) cannot be compared and are listed as skipped.
With `baseline_rows`, the oldest rows of the window become the reference instead, for a version
registered without data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.errors import MissingDependencyError, NotFoundError, UsageError
from mlc.monitor.summary import DataSummary

OUTPUT_PREFIX = "output:"


@dataclass
class Window:
    reference: DataSummary
    collected: DataSummary
    skipped: list[str] = field(default_factory=list)  # features not comparable, with why
    files: int = 0


def parse_since(text: str) -> float:
    """'24h', '90m', '7d', '3600s' (or plain seconds) as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    try:
        if value and value[-1] in units:
            return float(value[:-1]) * units[value[-1]]
        return float(value)
    except ValueError:
        raise UsageError(f"--since {text!r} is not a duration", "write it as 24h, 90m, 7d or seconds") from None


def open_dataset(directory: Path) -> Any:
    """The collected folder as one Hive-partitioned Parquet dataset (model=/version=/date=)."""
    try:
        import pyarrow.dataset as ds
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "data", "reading collected data") from exc
    if not directory.is_dir():
        raise NotFoundError(f"no collected data at {directory}",
                            "point --collected at the DIR given to mlc serve --collect")
    return ds.dataset(directory, format="parquet", partitioning="hive")


def dataset_filter(schema: Any, model: str | None, version: int | None, since_seconds: float | None,
                   now: float | None = None) -> Any:
    """The rows of one model and version, newer than `since_seconds` ago; None when all rows are wanted."""
    import pyarrow.compute as pc

    condition = None
    for column, value in (("model", model), ("version", version)):
        if value is not None and column in schema.names:
            term = pc.field(column) == value
            condition = term if condition is None else condition & term
    if since_seconds is not None:
        start = np.datetime64(int(((now or time.time()) - since_seconds) * 1e9), "ns")
        term = pc.field("time") >= pc.scalar(start).cast(schema.field("time").type)
        condition = term if condition is None else condition & term
    return condition


def _subset(summary: DataSummary, names: list[str]) -> DataSummary:
    return DataSummary({n: summary.features[n] for n in names}, dict(summary.outputs), dict(summary.meta))


def read_window(directory: Path, like: DataSummary | None, *, model: str | None = None, version: int | None = None,
                since_seconds: float | None = None, baseline_rows: int | None = None,
                now: float | None = None) -> Window:
    """Summaries of the reference (or the baseline rows) and of the collected window, over the same columns."""
    dataset = open_dataset(directory)
    schema = dataset.schema
    condition = dataset_filter(schema, model, version, since_seconds, now)
    meta_columns = {"request_id", "row", "time", "arm", "model", "version"}
    features = [n for n in schema.names if n not in meta_columns and not n.startswith(OUTPUT_PREFIX)]
    if like is None and baseline_rows is None:
        raise UsageError("no reference to compare with", "give the version's reference, or --baseline ROWS")
    names = list(like.features) if like is not None else features
    skipped = []
    for name in names:
        if name not in schema.names:
            skipped.append(f"{name}: not collected (--collect-exclude)")
        elif not _numeric(schema.field(name).type):
            skipped.append(f"{name}: collected as {schema.field(name).type} (--collect-hash), not comparable")
    usable = [n for n in names if not any(s.startswith(f"{n}:") for s in skipped)]
    if not usable:
        raise UsageError("none of the reference's features is in the collected data",
                         f"the collected columns are {', '.join(features[:10])}")
    outputs = [n for n in schema.names if n.startswith(OUTPUT_PREFIX)]
    columns = usable + outputs + ["time"]
    scanner = dataset.scanner(columns=columns, filter=condition)
    table_batches = scanner.to_batches()
    reference = DataSummary({})
    if baseline_rows is not None:
        table = scanner.to_table().sort_by("time")
        if table.num_rows <= baseline_rows:
            raise UsageError(f"--baseline {baseline_rows} leaves no rows to compare: the window has {table.num_rows}",
                             "collect longer, or use fewer baseline rows")
        x, out = _arrays(table.slice(0, baseline_rows), usable, outputs)
        reference = DataSummary.from_rows(x, out, feature_names=usable,
                                          meta={"baseline_rows": baseline_rows, "from": str(directory)})
        table_batches = table.slice(baseline_rows).to_batches()
    elif like is not None:
        reference = _subset(like, usable)
    collected = DataSummary.empty_like(reference)
    for batch in table_batches:
        if batch.num_rows:
            x, out = _arrays(batch, usable, outputs)
            collected.update(x, out)
    return Window(reference, collected, skipped, len(dataset.files))


def _numeric(kind: Any) -> bool:
    import pyarrow.types as pt

    return bool(pt.is_floating(kind) or pt.is_integer(kind) or pt.is_boolean(kind))


def _arrays(batch: Any, features: list[str], outputs: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    x = np.column_stack([batch.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in features])
    out = {n[len(OUTPUT_PREFIX):]: batch.column(n).to_numpy(zero_copy_only=False) for n in outputs}
    return x, out

