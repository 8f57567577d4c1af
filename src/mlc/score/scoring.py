"""Score a chunk of rows: features, the model, and the output columns; shared by both engines.

A model can fail on a row (an index out of its table, a shape it refuses); ONNX Runtime then
fails the whole call. Such a chunk is split in halves until the failing rows are alone, and
each is rejected with the runtime's message, so one bad row costs about log2(chunk) extra
calls and never the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mlc.runtime.scorer import Scorer
from mlc.score.features import Rejects, to_features


@dataclass(frozen=True)
class ScoredChunk:
    outputs: list[tuple[str, np.ndarray]]  # output columns, one value per scored row
    scored: np.ndarray  # bool mask over the chunk's rows: True where the row was scored
    rejects: Rejects  # row index in the chunk -> reason, for every row not scored


def score_chunk(scorer: Scorer, data: pa.Table | pa.RecordBatch | np.ndarray, features: Sequence[str],
                classes: Sequence[Any] | None, *, rejected: Rejects | None = None) -> ScoredChunk:
    """`rejected`: rows already refused (lines that are no JSON object), kept out of the model."""
    x, rejects = to_features(data, features, scorer.input_dtype)
    for row, reason in (rejected or {}).items():
        rejects[row] = reason
    scored = np.ones(len(x), dtype=bool)
    if rejects:
        scored[list(rejects)] = False
    rows = np.flatnonzero(scored)
    outputs: dict[str, np.ndarray] = {}
    if len(rows):
        outputs, failed = _predict(scorer, x if len(rows) == len(x) else x[rows], rows)
        if failed:  # the outputs are those of the other rows already
            rejects.update(failed)
            scored[list(failed)] = False
    columns = output_columns(outputs, scorer.output_names, classes) if outputs else []
    return ScoredChunk(columns, scored, rejects)


def _predict(scorer: Scorer, x: np.ndarray, rows: np.ndarray) -> tuple[dict[str, np.ndarray], Rejects]:
    """The model's outputs for the rows it can score (in order), and why the others failed."""
    try:
        return scorer.predict(x), {}
    except Exception as exc:
        if len(x) == 1:
            return {}, {int(rows[0]): f"the model failed on this row: {_first_line(exc)}"}
    half = len(x) // 2
    left, left_failed = _predict(scorer, x[:half], rows[:half])
    right, right_failed = _predict(scorer, x[half:], rows[half:])
    failed = left_failed | right_failed
    parts = [p for p in (left, right) if p]
    if not parts:
        return {}, failed
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, failed


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def output_columns(outputs: dict[str, np.ndarray], order: Sequence[str],
                   classes: Sequence[Any] | None) -> list[tuple[str, np.ndarray]]:
    """Flat output columns: a (rows,) or (rows, 1) output is one column named after it; a (rows, k) one
    gives k columns NAME_LABEL, the label being the class where k is the number of classes (the
    probabilities of a classifier), else the column's index."""
    columns: list[tuple[str, np.ndarray]] = []
    for name in order:
        values = outputs[name]
        if values.ndim == 1:
            columns.append((name, values))
            continue
        flat = values.reshape(len(values), -1)
        if flat.shape[1] == 1:
            columns.append((name, flat[:, 0]))
            continue
        labels = [str(c) for c in classes] if classes is not None and len(classes) == flat.shape[1] else None
        columns.extend((f"{name}_{labels[j] if labels else j}", np.ascontiguousarray(flat[:, j]))
                       for j in range(flat.shape[1]))
    return columns
