"""A version's reference, stored beside it in the registry (models/NAME/VERSION/reference.json).

`mlc register --data` and `mlc optimize --data` summarise the rows they were given (with the
model's outputs on them) and attach the summary to the version as a report file, so `mlc
monitor NAME:V` and `mlc serve --drift-metrics` find it without being told where it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlc.errors import UsageError
from mlc.monitor.summary import DataSummary

_CHUNK = 8192  # rows scored at a time while building a reference

REFERENCE_FILE = "reference.json"


def store_reference(registry: Any, ref: str, summary: DataSummary) -> None:
    """Attach the summary to the version `ref` (replacing one stored before)."""
    summary.meta.setdefault("ref", ref)
    registry.attach_report(ref, REFERENCE_FILE, json.dumps(summary.to_dict(), indent=1))


def stored_reference(registry: Any, ref: str) -> DataSummary | None:
    """The version's stored reference, else its parent's (an optimized version was built on the
    rows its framework model was registered with); None when neither was registered with data."""
    mv = registry.get(ref)
    seen = set()
    while REFERENCE_FILE not in mv.reports:
        parent = mv.source.parent
        if not parent or parent in seen:
            return None
        seen.add(parent)
        mv = registry.get(parent)
    summary = DataSummary.load(registry.version_dir(mv) / REFERENCE_FILE)
    summary.meta.setdefault("stored_with", mv.ref)
    summary.meta["ref"] = registry.get(ref).ref
    return summary


def model_outputs(registry: Any, mv: Any, rows: np.ndarray, *, trust: bool = False) -> dict[str, np.ndarray]:
    """What the version answers for the rows, under the names a server collects: an ONNX version's
    own outputs; a framework model's as its own calls give them, under the names its converted
    ONNX answers with (label, probabilities / variable)."""
    parts: list[Mapping[str, np.ndarray]] = []
    if mv.format == "onnx":
        from mlc.runtime.scorer import Scorer

        scorer = Scorer(registry.artifact_path(mv), runtime_plan=mv.source.runtime, signature=mv.signature)
        parts = [scorer.predict(rows[i:i + _CHUNK]) for i in range(0, len(rows), _CHUNK)]
    else:
        from mlc.convert import native

        outputs = native(registry.load(mv, trust=trust)).outputs  # the converted graph's output names
        parts = [outputs(rows[i:i + _CHUNK]) for i in range(0, len(rows), _CHUNK)]
    return {name: np.concatenate([np.asarray(p[name]) for p in parts]) for name in parts[0]} if parts else {}


def build_reference(registry: Any, mv: Any, rows: np.ndarray, *, source: str = "", trust: bool = False
                    ) -> DataSummary:
    """The reference of the version on these rows: its features (named as the collector names them),
    its outputs on them, and the task and classes `mlc monitor labels` reads."""
    from mlc.monitor.serving import feature_names

    rows = np.asarray(rows)
    names = feature_names(mv.signature)
    if rows.ndim != 2 or rows.shape[1] != len(names):
        raise UsageError(f"the data has shape {list(rows.shape)}; {mv.ref} takes {len(names)} features")
    sig = mv.signature
    meta = {"ref": mv.ref, "from": source, "rows": len(rows), "task": sig.task,
            "classes": list(sig.classes) if sig.classes is not None else None}
    return DataSummary.from_rows(rows, model_outputs(registry, mv, rows, trust=trust), feature_names=names,
                                 meta=meta)


def store_data_reference(registry: Any, mv: Any, data: Any, *, trust: bool = False) -> DataSummary:
    """Read the rows (a file or an array), build the version's reference and store it with the version."""
    from pathlib import Path

    from mlc.optimize.data import load_rows

    rows = load_rows(data, mv.signature.n_features)
    source = Path(data).name if isinstance(data, (str, Path)) else f"{len(rows)} rows given in memory"
    summary = build_reference(registry, mv, rows, source=source, trust=trust)
    store_reference(registry, mv.ref, summary)
    return summary
