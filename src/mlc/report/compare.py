"""Compare two bench reports and decide whether the new one regressed, for CI gating.

Speed is judged only on ratios to a reference measured in the same run (e.g. mlc / native at
batch 32), never on absolute times: a CI machine that is uniformly slower moves both sides of a
ratio and is not a regression. Each ratio comes with its repeat values; the change between two
reports is the ratio of their medians, and its uncertainty is a seeded bootstrap interval over
those repeats. A change fails the gate only when the *whole* interval lies beyond the allowed
slowdown, so a noisy run whose interval straddles the threshold (or zero) never fails CI.

One more rule, learned on a shared 2-core machine: a reference can move on its own (BLAS
threads fighting other processes for cores can make the native MLP 100× slower for a whole
run). A real slowdown of mlc shows against *every* reference measured beside it, so a model
and batch size fail only when each of mlc's ratios regressed; a ratio that regressed alone is
reported as "unclear" with the reason.

Accuracy (label agreement, output error against the reference) has no repeats: it is
deterministic for a fixed model and data, so it is compared directly against its threshold.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.errors import NotFoundError, UsageError
from mlc.report.envelope import check_schema

DEFAULT_MAX_SLOWDOWN = 0.10
DEFAULT_MAX_ACCURACY_DROP = 0.001
CONFIDENCE = 0.95
_RESAMPLES = 4000
# Fewer repeats than this on either side give an interval that means nothing: shown, never failed.
MIN_REPEATS = 3

# Verdicts, in the order a reader cares about them.
REGRESSION = "regression"  # the whole interval is beyond the threshold (or accuracy fell beyond it)
UNCLEAR = "unclear"  # beyond the threshold at the median only, or against one reference only: noise
FASTER = "faster"  # the whole interval is beyond the threshold the other way
OK = "ok"
MISSING = "missing"  # measured in the baseline, absent (skipped, failed) in the new report
NEW = "new"  # absent from the baseline


@dataclass(frozen=True)
class Thresholds:
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP


@dataclass
class Change:
    model: str
    metric: str  # e.g. "mlc/native @b32" or "label_agreement mlc @b1024"
    kind: str  # "ratio" (speed), "accuracy", or "status"
    gated: bool  # whether this line can fail the comparison
    baseline: float | None
    new: float | None
    change: float | None  # ratio: relative change of the median; accuracy: the drop (positive = worse)
    low: float | None = None  # bounds of the change's interval (ratio only)
    high: float | None = None
    verdict: str = OK
    note: str = ""


@dataclass
class Comparison:
    baseline: str
    new: str
    thresholds: Thresholds
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.gated and c.verdict == REGRESSION]

    @property
    def failed(self) -> bool:
        return bool(self.regressions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "new": self.new,
            "thresholds": asdict(self.thresholds),
            "confidence": CONFIDENCE,
            "failed": self.failed,
            "regressions": len(self.regressions),
            "notes": self.notes,
            "changes": [asdict(c) for c in self.changes],
        }


def parse_fraction(text: str, option: str) -> float:
    """'10%' or '0.1' -> 0.1; a bare number above 1 is refused, since '10' meaning 1000% is a trap."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a number", f"write e.g. {option} 10% or {option} 0.1") from None
    if not math.isfinite(value) or value < 0 or (not raw.endswith("%") and value > 1):
        raise UsageError(f"{option} {text!r} is out of range", f"write a percentage ({option} 10%) or a fraction "
                         f"between 0 and 1 ({option} 0.1)")
    return value


def read_report(path: Path) -> dict[str, Any]:
    """Any mlc report file, refusing what is not one (not JSON, no schema, another major version) clearly."""
    if not path.is_file():
        raise NotFoundError(f"no such report file: {path}")
    try:
        report = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not an mlc report (not JSON: {exc})") from None
    if not isinstance(report, dict):
        raise UsageError(f"{path} is not an mlc report (a JSON {type(report).__name__}, not an object)")
    return check_schema(report, str(path))


def load_bench_report(path: Path) -> dict[str, Any]:
    """A bench report file; compare reads nothing else."""
    report = read_report(path)
    if report.get("kind") != "bench":
        raise UsageError(f"{path} is a {report.get('kind')!r} report; compare reads bench reports",
                         "produce one with: mlc bench --out DIR (then DIR/report.json)")
    body = report.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("models"), dict):
        raise UsageError(f"{path} is a bench report without a 'models' section", "re-run mlc bench")
    for name, model in body["models"].items():
        _check_timings(path, name, model)
    return report


def _check_timings(path: Path, name: str, model: Any) -> None:
    """Refuse what the gate cannot judge: a NaN median compares False with every threshold, so a
    report holding one would pass whatever it measured."""
    if not isinstance(model, dict):
        raise UsageError(f"{path}: model {name!r} is not an object")
    for timing in model.get("timings") or []:
        for ref, ratio in (timing.get("ratios") or {}).items():
            values = [*ratio.get("values", []), ratio.get("median")]
            if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values):
                raise UsageError(f"{path}: {name} {timing.get('variant')}/{ref} @b{timing.get('batch_size')} "
                                 "holds a ratio that is not a positive number (NaN, zero or missing)",
                                 "re-run mlc bench; a report with such values cannot be judged")


def ratio_change(base: list[float], new: list[float], *, seed: int = 0) -> tuple[float, float, float]:
    """Relative change of the median ratio, new vs base, with a percentile-bootstrap interval.

    Both samples are resampled independently (the runs are independent); the seed is fixed so
    the same two reports always give the same verdict.
    """
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    point = float(np.median(n) / np.median(b) - 1)
    rng = np.random.default_rng(seed)
    mb = np.median(rng.choice(b, size=(_RESAMPLES, b.size)), axis=1)
    mn = np.median(rng.choice(n, size=(_RESAMPLES, n.size)), axis=1)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(mn / mb - 1, [tail, 1 - tail])
    return point, float(low), float(high)


def _ratio_verdict(point: float, low: float, high: float, limit: float) -> str:
    if low > limit:
        return REGRESSION
    if high < -limit:
        return FASTER
    return UNCLEAR if point > limit else OK


def _timings(model: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(t["variant"], int(t["batch_size"])): t for t in model.get("timings", [])}


def _compare_ratios(name: str, base: dict[str, Any], new: dict[str, Any], subject: str,
                    limits: Thresholds) -> list[Change]:
    out = []
    new_timings = _timings(new)
    for key, bt in _timings(base).items():
        nt = new_timings.get(key)
        variant, batch = key
        for ref, bratio in bt.get("ratios", {}).items():
            label = f"{variant}/{ref} @b{batch}"
            gated = variant == subject
            nratio = (nt or {}).get("ratios", {}).get(ref)
            if nratio is None:
                out.append(Change(name, label, "ratio", gated, bratio["median"], None, None, verdict=MISSING,
                                  note="not measured in the new report"))
                continue
            bv, nv = bratio["values"], nratio["values"]
            if min(len(bv), len(nv)) < MIN_REPEATS:
                change = nratio["median"] / bratio["median"] - 1
                out.append(Change(name, label, "ratio", gated, bratio["median"], nratio["median"], change,
                                  verdict=UNCLEAR if change > limits.max_slowdown else OK,
                                  note=f"fewer than {MIN_REPEATS} repeats: no interval, not judged"))
                continue
            point, low, high = ratio_change(bv, nv)
            out.append(Change(name, label, "ratio", gated, bratio["median"], nratio["median"], point, low, high,
                              _ratio_verdict(point, low, high, limits.max_slowdown)))
    _require_every_reference(out)
    return out


def _require_every_reference(changes: list[Change]) -> None:
    """Downgrade a gated ratio regression when another reference of the same timing did not regress."""
    groups: dict[tuple[str, str], list[Change]] = {}
    for c in changes:
        if c.gated and c.verdict != MISSING:
            variant, _, batch = c.metric.partition(" ")
            groups.setdefault((variant.split("/")[0], batch), []).append(c)
    for group in groups.values():
        # Only a reference whose median stayed within the threshold clears mlc: one that moved as
        # much, with a wide interval from a noisy repeat (UNCLEAR), shows mlc moved too.
        calm = [c for c in group if c.verdict in (OK, FASTER)]
        if not calm or len(calm) == len(group):
            continue
        others = ", ".join(f"{c.metric.split(' ')[0]} {c.change:+.1%}" for c in calm if c.change is not None)
        for c in group:
            if c.verdict == REGRESSION:
                c.verdict = UNCLEAR
                c.note = f"not against every reference ({others}): the reference moved, not mlc"


def _compare_parity(name: str, base: dict[str, Any], new: dict[str, Any], limits: Thresholds) -> list[Change]:
    out = []
    new_timings = _timings(new)
    for (variant, batch), bt in _timings(base).items():
        bp, np_ = bt.get("parity"), (new_timings.get((variant, batch)) or {}).get("parity")
        if not bp or not np_:
            continue
        if bp.get("match") and not np_.get("match"):
            out.append(Change(name, f"match {variant} @b{batch}", "accuracy", True, 1.0, 0.0, 1.0,
                              verdict=REGRESSION, note="outputs no longer match the reference"))
        if bp.get("label_agreement") is not None and np_.get("label_agreement") is not None:
            drop = float(bp["label_agreement"]) - float(np_["label_agreement"])
            out.append(Change(name, f"label_agreement {variant} @b{batch}", "accuracy", True,
                              bp["label_agreement"], np_["label_agreement"], drop,
                              verdict=REGRESSION if drop > limits.max_accuracy_drop else OK))
        b_err, n_err = float(bp["max_rel_err"]), float(np_["max_rel_err"])
        rise = n_err - b_err
        out.append(Change(name, f"output_error {variant} @b{batch}", "accuracy", True, b_err, n_err, rise,
                          verdict=REGRESSION if rise > limits.max_accuracy_drop else OK))
    return out


def _plan(model: dict[str, Any]) -> str:
    runtime = model.get("runtime") or {}
    session = runtime.get("session") or {}
    engines = "/".join(e.get("engine", "?") for e in runtime.get("engines", []))
    chain = " -> ".join(model.get("chain") or []) or "no graph passes"
    return (f"{chain}, {session.get('intra_op_threads', '?')} thread(s)"
            f"{', spinning' if session.get('allow_spinning') else ''}, {engines or 'ort'}")


def compare_reports(baseline: dict[str, Any], new: dict[str, Any], thresholds: Thresholds | None = None, *,
                    baseline_name: str = "baseline", new_name: str = "new") -> Comparison:
    """Every ratio and accuracy figure of the baseline, set against the new report."""
    limits = thresholds or Thresholds()
    result = Comparison(baseline_name, new_name, limits)
    b_body, n_body = baseline["body"], new["body"]
    subject = n_body.get("settings", {}).get("subject", "mlc")
    b_cpu, n_cpu = baseline.get("hardware", {}).get("cpu_model"), new.get("hardware", {}).get("cpu_model")
    if b_cpu != n_cpu:
        result.notes.append(f"different CPUs ({b_cpu} vs {n_cpu}): ratios carry over between machines only "
                            "roughly; refresh the baseline on the CI machine if this persists")
    for name, bmodel in b_body["models"].items():
        nmodel = n_body["models"].get(name)
        if bmodel.get("status") != "ok":
            continue
        if nmodel is None or nmodel.get("status") != "ok":
            status = "absent" if nmodel is None else nmodel.get("status")
            reason = (nmodel or {}).get("reason") or ""
            failed = nmodel is not None and status == "error"
            result.changes.append(Change(name, "status", "status", True, None, None, None,
                                         verdict=REGRESSION if failed else MISSING,
                                         note=f"{status} in the new report{': ' + reason if reason else ''}"))
            continue
        if _plan(bmodel) != _plan(nmodel):
            result.notes.append(f"{name}: the optimized plan differs ({_plan(bmodel)} in the baseline, "
                                f"{_plan(nmodel)} now), which explains some change")
        result.changes += _compare_ratios(name, bmodel, nmodel, subject, limits)
        result.changes += _compare_parity(name, bmodel, nmodel, limits)
    measured = [name for name, m in b_body["models"].items() if m.get("status") == "ok"]
    if measured and not any(name in n_body["models"] for name in measured):
        # Skipping a model (an extra not installed) is said per model; holding none at all is no run.
        result.changes.append(Change("(all)", "status", "status", True, None, None, None, verdict=REGRESSION,
                                     note="the new report holds none of the baseline's models"))
    for name, nmodel in n_body["models"].items():
        was_measured = b_body["models"].get(name, {}).get("status") == "ok"
        if not was_measured and nmodel.get("status") == "ok":
            result.changes.append(Change(name, "status", "status", False, None, None, None, verdict=NEW,
                                         note="not in the baseline: refresh it to start tracking this model"))
    return result
