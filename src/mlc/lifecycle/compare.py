"""`mlc compare NEW OLD`: two registered versions side by side on the same rows, before one replaces the other.

Three questions a retrain asks, each answered on the versions as they would be served (the
ONNX version a reference serves, with its recorded runtime plan: see Registry.served):
- do they agree? label agreement, the largest and mean output difference, and where labels
  differ, a confusion table between the two;
- is the new one better? quality on labelled rows (accuracy, log-loss, ROC AUC, F1; or RMSE,
  MAE, R²) with paired bootstrap intervals (lifecycle/metrics.py);
- is it as fast? each one's latency at the target's batch sizes, measured interleaved in one
  run (mlc.timing), so the machine's drift hits both alike.
Any two versions compare, of one name or two, from different frameworks too: only their
outputs are read. The result is the body of a "model-comparison" report; `metric_values`
flattens one side into the names promotion criteria use (lifecycle/criteria.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlc.errors import UsageError
from mlc.lifecycle import metrics as m
from mlc.lifecycle.rows import Rows
from mlc.timing import cycling, distinct_batches, measure

if TYPE_CHECKING:
    from mlc.registry import ModelVersion, Registry
    from mlc.runtime.scorer import Scorer
    from mlc.targets import HardwareTarget

KIND = "model-comparison"
LABEL_OUTPUT = "label"  # a classifier's label output, as mlc.convert names it
DEFAULT_BUDGET_S = 1.0
_CHUNK = 4096  # rows per predict call when scoring the whole file


@dataclass(frozen=True)
class Contender:
    """One side of the comparison: the reference as asked, the version it serves, and its scorer."""

    asked: str
    version: ModelVersion
    note: str
    scorer: Scorer

    def describe(self) -> dict[str, Any]:
        return {"ref": self.asked, "served": self.version.ref, "framework": self.version.framework,
                "format": self.version.format, "engines": [e for e, _ in self.scorer.engines], "note": self.note}


def contender(registry: Registry, ref: str, target: HardwareTarget) -> Contender:
    """The version `ref` serves, with its scorer built from the runtime plan recorded with it."""
    from mlc.runtime.scorer import Scorer

    served = registry.served(ref)
    version = served.version
    scorer = Scorer(registry.artifact_path(version), target=target, runtime_plan=version.source.runtime,
                    signature=version.signature)
    return Contender(ref, version, served.note, scorer)


def _predict(scorer: Scorer, x: np.ndarray) -> dict[str, np.ndarray]:
    parts = [scorer.predict(x[i:i + _CHUNK]) for i in range(0, len(x), _CHUNK)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


@dataclass(frozen=True)
class Outputs:
    """What a model said about the rows, read the same way for every framework."""

    task: str
    values: np.ndarray  # classification: probabilities (rows, classes); regression: predictions (rows,)
    labels: np.ndarray | None  # classification: predicted class indices
    classes: tuple[Any, ...] | None
    output: str  # the output `values` came from


def _float_outputs(out: Mapping[str, np.ndarray]) -> list[str]:
    return [name for name, v in out.items() if name != LABEL_OUTPUT and v.dtype.kind == "f"]


def read_outputs(c: Contender, x: np.ndarray) -> Outputs:
    out = _predict(c.scorer, x)
    sig = c.version.signature
    floats = _float_outputs(out)
    if not floats:
        raise UsageError(f"{c.version.ref} has no numeric output to compare ({', '.join(out)})")
    if sig.task == m.CLASSIFICATION or LABEL_OUTPUT in out:
        proba = next((n for n in floats if out[n].ndim == 2), None)
        if proba is None or LABEL_OUTPUT not in out:
            raise UsageError(f"{c.version.ref} is a classifier without both a label and a probability output",
                             "convert it with probabilities and zipmap off, as mlc optimize does")
        values = out[proba].astype(np.float64)
        classes = tuple(sig.classes) if sig.classes is not None else tuple(range(values.shape[1]))
        index = {str(cls): i for i, cls in enumerate(classes)}
        raw = out[LABEL_OUTPUT].reshape(-1)
        labels = np.asarray([index.get(str(v), -1) for v in raw.tolist()], dtype=np.int64)
        if (labels < 0).any():
            raise UsageError(f"{c.version.ref} predicts labels outside its recorded classes {list(classes)}")
        return Outputs(m.CLASSIFICATION, values, labels, classes, proba)
    name = floats[0]
    return Outputs(m.REGRESSION, out[name].astype(np.float64).reshape(len(x), -1)[:, 0], None, None, name)


def _agreement(new: Outputs, old: Outputs) -> dict[str, Any]:
    if new.values.shape != old.values.shape:
        raise UsageError(f"the outputs differ in shape: {new.output} {list(new.values.shape)} against "
                         f"{old.output} {list(old.values.shape)}", "compare versions of the same task and classes")
    diff = np.abs(new.values - old.values)
    per_row = diff.reshape(len(diff), -1).max(axis=1)
    agree = None if new.labels is None or old.labels is None else float((new.labels == old.labels).mean())
    return {"label_agreement": agree, "max_abs_diff": float(per_row.max()), "mean_abs_diff": float(per_row.mean()),
            "output": new.output, "rows_differing": int((per_row > 1e-6).sum())}


def _confusion(new: Outputs, old: Outputs) -> dict[str, Any] | None:
    if new.labels is None or old.labels is None or new.classes is None:
        return None
    k = len(new.classes)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (old.labels, new.labels), 1)
    return {"classes": [str(c) for c in new.classes], "counts": counts.tolist()}  # rows: old, columns: new


def _label_indices(y: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    index = {str(c): i for i, c in enumerate(classes)}
    # "1.0" read from a CSV is the class 1: try each label as written, then as a number
    def find(v: Any) -> int:
        if str(v) in index:
            return index[str(v)]
        try:
            number = float(v)
        except (TypeError, ValueError):
            return -1
        return index.get(str(int(number)) if number.is_integer() else str(number), -1)

    out = np.asarray([find(v) for v in y.tolist()], dtype=np.int64)
    unknown = sorted({str(v) for v, i in zip(y.tolist(), out.tolist(), strict=True) if i < 0})
    if unknown:
        raise UsageError(f"labels {', '.join(unknown[:5])} are none of the models' classes {list(classes)}",
                         "the labels must be the classes the models were trained on")
    return out


def _quality(new: Outputs, old: Outputs, y: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
    if new.task == m.CLASSIFICATION:
        if new.classes is None or new.labels is None or old.labels is None:  # read_outputs sets all three
            raise UsageError("a classifier's outputs were read without labels or classes")
        yi = _label_indices(y, new.classes)
        metrics_new = m.classification_metrics(yi, new.values, new.labels)
        metrics_old = m.classification_metrics(yi, old.values, old.labels)
    else:
        try:
            yf = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise UsageError("the labels of a regression must be numbers") from None
        metrics_new, metrics_old = m.regression_metrics(yf, new.values), m.regression_metrics(yf, old.values)
    paired = m.paired_bootstrap(metrics_new, metrics_old, len(y), resamples=resamples, seed=seed)
    return {"metrics": list(metrics_new), "resamples": resamples, "confidence": m.CONFIDENCE,
            "new": {k: v.to_dict() for k, v in paired.new.items()},
            "old": {k: v.to_dict() for k, v in paired.old.items()},
            "diff": {k: v.to_dict() for k, v in paired.diff.items()}}


def _latency(new: Contender, old: Contender, x: np.ndarray, batch_sizes: Sequence[int],
             budget_s: float) -> dict[str, Any]:
    calls = {}
    for b in batch_sizes:
        batches = distinct_batches(x, b)
        calls[f"new@{b}"] = cycling(new.scorer.predict, batches)
        calls[f"old@{b}"] = cycling(old.scorer.predict, batches)
    timed = measure(calls, budget_s=budget_s)
    return {"batch_sizes": list(batch_sizes), "budget_s": budget_s, "interleaved": True,
            "new": {str(b): timed[f"new@{b}"].to_dict() for b in batch_sizes},
            "old": {str(b): timed[f"old@{b}"].to_dict() for b in batch_sizes}}


def compare_versions(registry: Registry, new_ref: str, old_ref: str, rows: Rows, target: HardwareTarget, *,
                     budget_s: float = DEFAULT_BUDGET_S, resamples: int = m.DEFAULT_RESAMPLES,
                     seed: int = 0) -> dict[str, Any]:
    """The body of a model-comparison report of NEW against OLD on `rows`."""
    new, old = contender(registry, new_ref, target), contender(registry, old_ref, target)
    if new.version.signature.n_features != old.version.signature.n_features:
        raise UsageError(f"{new.version.ref} takes {new.version.signature.n_features} features and "
                         f"{old.version.ref} {old.version.signature.n_features}: they cannot score the same rows")
    out_new, out_old = read_outputs(new, rows.x), read_outputs(old, rows.x)
    if out_new.task != out_old.task:
        raise UsageError(f"{new.version.ref} is a {out_new.task} model and {old.version.ref} a {out_old.task} one")
    if out_new.classes is not None and [str(c) for c in out_new.classes] != [str(c) for c in out_old.classes or ()]:
        raise UsageError(f"the two classify into different classes: {list(out_new.classes)} against "
                         f"{list(out_old.classes or ())}")
    return {
        "new": new.describe(), "old": old.describe(), "task": out_new.task, "rows": len(rows.x), "data": rows.source,
        "labelled": rows.y is not None, "target": target.name,
        "agreement": _agreement(out_new, out_old), "confusion": _confusion(out_new, out_old),
        "quality": None if rows.y is None else _quality(out_new, out_old, rows.y, resamples, seed),
        "latency": _latency(new, old, rows.x, target.batch_sizes, budget_s),
        "criteria": [],  # filled by mlc promote: each criterion as written, its values and whether it held
    }


def report(registry: Registry, new_ref: str, old_ref: str, rows: Rows, target: HardwareTarget, *,
           budget_s: float = DEFAULT_BUDGET_S, resamples: int = m.DEFAULT_RESAMPLES) -> dict[str, Any]:
    """The model-comparison report (the mlc.report envelope) of NEW against OLD."""
    from mlc.report.envelope import envelope

    body = compare_versions(registry, new_ref, old_ref, rows, target, budget_s=budget_s, resamples=resamples)
    return envelope(KIND, body, target=target.to_dict())


def metric_values(body: Mapping[str, Any], side: str) -> dict[str, float]:
    """One side's figures under the names criteria use: `auc`, `auc.low`, `auc.high`, `p99_us@1`,
    `median_us@32`; and the comparison's own: `agreement`, `max_diff`, `mean_diff`, `rows`."""
    out: dict[str, float] = {}
    quality = body.get("quality")
    if quality:
        for name, est in quality[side].items():
            out[name], out[f"{name}.low"], out[f"{name}.high"] = est["value"], est["low"], est["high"]
        for name, est in quality["diff"].items():
            out[f"diff.{name}"], out[f"diff.{name}.low"], out[f"diff.{name}.high"] = (
                est["value"], est["low"], est["high"])
    for batch, lat in body["latency"][side].items():
        out[f"median_us@{batch}"], out[f"p99_us@{batch}"] = float(lat["median_us"]), float(lat["p99_us"])
    agreement = body["agreement"]
    if agreement.get("label_agreement") is not None:
        out["agreement"] = float(agreement["label_agreement"])
    out["max_diff"], out["mean_diff"] = float(agreement["max_abs_diff"]), float(agreement["mean_abs_diff"])
    out["rows"] = float(body["rows"])
    return out
