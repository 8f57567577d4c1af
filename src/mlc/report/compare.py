"""Compare two bench reports and decide whether the new one regressed, for CI gating.

Speed is judged only on ratios to a reference measured in the same run (e.g. mlc / native at
batch 32), never on absolute times: a CI machine that is uniformly slower moves both sides of a
ratio and is not a regression. Each ratio comes with its repeat values; the change between two
reports is the ratio of their medians, and its uncertainty is a seeded bootstrap interval over
those repeats. A change fails the gate only when the *whole* interval lies beyond the allowed
slowdown, so a noisy run whose interval straddles the threshold (or zero) never fails CI.

References are not trusted blindly. A reference can move on its own (BLAS threads fighting
other processes for cores made the native MLP 100x slower for a whole run), and a reference that
got slower makes mlc look faster against it, hiding a real regression. So each line (model and
batch size) is judged against ONE reference, chosen for its stability: a reference is stable
when its own repeats are tight (relative MAD at most SPREAD_LIMIT in both reports; `mlc bench`
re-measures a batch size until they are, a few times at most) and its own median time moved at
most MOVE_LIMIT against the baseline. The judge is the stable reference that moved least. When
none is stable (a uniformly slower machine moves them all; or, as measured on a busy 2-core
machine, the 10-40 ms calls of the references at batch 1024 swing 2-4x with the load while mlc's
0.4 ms calls do not), the line is judged by the machine: mlc's own time against the baseline,
divided by how much the run's references moved overall (the median of every reference's own
move, over all models and batch sizes). A line with no stable reference ran while the host was
not in the baseline's state, and such a host moves ratios by itself: on CI's host at 22:06 UTC on 2026-12-03
(same CPU as the baseline's, its references slowed +46% to +120% on two models and sped up 26-37%
on the third), an unchanged forest read mlc/machine @b32 +55% and mlc/ort-default +32%, both with
tight intervals, three runs out of three. So there a regression must be beyond HOST_SLOWDOWN
against the machine and against the least moved reference alike; finer changes are shown as
unclear, and the line asks for a re-measure on a quiet host. Either way a line is always judged:
a noisy or moved reference can never excuse mlc, it only stops being the judge. The other
references' lines are shown, not gated, with the judge named.

All of that holds on the baseline's host. On another host (another CPU, or three quarters of the
references moved beyond MOVE_LIMIT one way) the same code's ratios move by themselves. Measured with
one tree on this project's dev host against CI's, whose references ran 2.3x faster and 10x steadier:
forest mlc/native @b1024 +23% [+20%, +27%], mlc/ort-default +23% [+15%, +26%], mlc/native @b32 +37%,
logreg mlc/ort-default @b32 +17%. The machine judge (mlc's own time over the references' move) read
+89% there, so across hosts it is not used: a line fails only when it is beyond HOST_SLOWDOWN
against every reference. A 2x slowdown still fails on any host; finer ones are caught on the
baseline's host, which is why the baseline is recorded there.

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
# A reference is stable when its own repeats spread at most this much (relative MAD, in both
# reports) and its own median time moved at most MOVE_LIMIT against the baseline.
SPREAD_LIMIT = 0.10
MOVE_LIMIT = 0.25
# On another host than the baseline's, the slowdown a line must show against every reference.
HOST_SLOWDOWN = 0.50

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
        """The comparison as `report compare --json` prints it and a compare report's body holds it."""
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        """Reads what to_dict wrote (derived fields are recomputed, not trusted)."""
        return cls(str(data["baseline"]), str(data["new"]), Thresholds(**data["thresholds"]),
                   [Change(**c) for c in data.get("changes", [])], list(data.get("notes", [])))


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


def relative_mad(values: list[float]) -> float:
    """How far one repeat strays from the median: the spread a stable reference stays within (SPREAD_LIMIT)."""
    v = np.asarray(values, dtype=float)
    med = float(np.median(v))
    return float(np.median(np.abs(v - med))) / med if med > 0 else math.inf


@dataclass(frozen=True)
class _Reference:
    """How far one reference of a line can be trusted: its own move against the baseline and its spread."""

    name: str
    moved: float | None  # the reference's own median time, new / baseline - 1 (None: not recorded)
    spread: float  # the larger relative MAD of its own repeats, over both reports

    @property
    def stable(self) -> bool:
        return self.spread <= SPREAD_LIMIT and self.moved is not None and abs(self.moved) <= MOVE_LIMIT

    @property
    def distance(self) -> float:
        """How far it moved, symmetric in slower and faster (log scale); unknown counts as far."""
        return abs(math.log1p(self.moved)) if self.moved is not None and self.moved > -1 else math.inf

    def describe(self) -> str:
        moved = "own time not recorded" if self.moved is None else f"own time {self.moved:+.0%}"
        return f"{self.name} ({moved}, spread {self.spread:.0%})"


def _reference(name: str, batch: int, bratio: dict[str, Any], nratio: dict[str, Any],
               b_times: dict[tuple[str, int], dict[str, Any]], n_times: dict[tuple[str, int], dict[str, Any]]
               ) -> _Reference:
    bt, nt = b_times.get((name, batch)), n_times.get((name, batch))
    if bt and nt and bt.get("median") and nt.get("median") and bt.get("values") and nt.get("values"):
        moved = float(nt["median"]) / float(bt["median"]) - 1
        return _Reference(name, moved, max(relative_mad(bt["values"]), relative_mad(nt["values"])))
    # No times of its own recorded: its spread is read from mlc's ratio to it, and its move is unknown.
    return _Reference(name, None, max(relative_mad(bratio["values"]), relative_mad(nratio["values"])))


def _judge(refs: list[_Reference]) -> tuple[_Reference, str]:
    """The reference that judges a line, and the note that says why it, not another."""
    stable = [r for r in refs if r.stable]
    judge = min(stable or refs, key=lambda r: (r.distance, r.spread))
    others = [r for r in refs if r is not judge]
    if not stable:
        note = (f"judged by {judge.describe()}, the least moved reference; none was stable (spread <= "
                f"{SPREAD_LIMIT:.0%}, own time within {MOVE_LIMIT:.0%}): re-measure to confirm")
    else:
        note = f"judged by {judge.describe()}"
    if others:
        note += "; not by " + ", ".join(o.describe() for o in others)
    return judge, note


@dataclass(frozen=True)
class Machine:
    """How much the new run's machine moved: the median of every reference's own time, new / baseline."""

    factor: float
    lines: int  # reference timings it was read from
    quartiles: tuple[float, float] = (1.0, 1.0)  # the 25th and 75th percentiles of those moves

    def describe(self) -> str:
        return f"the machine (every reference's median move {self.factor - 1:+.0%}, over {self.lines} timings)"

    @property
    def moved_whole(self) -> bool:
        """Three quarters of the references moved beyond MOVE_LIMIT one way: the host, not one reference, changed.

        One reference moving alone (BLAS threads fighting for cores) leaves the quartiles in place.
        """
        low, high = self.quartiles
        return high < 1 / (1 + MOVE_LIMIT) or low > 1 + MOVE_LIMIT


# Fewer reference timings than this in both reports say nothing about the machine.
_MIN_MACHINE_LINES = 3


def machine_move(baseline: dict[str, Any], new: dict[str, Any], subject: str) -> Machine | None:
    """The run-wide move of the references, or None when too few were measured in both reports."""
    moves = []
    for name, bmodel in baseline["body"]["models"].items():
        nmodel = new["body"]["models"].get(name) or {}
        if bmodel.get("status") != "ok" or nmodel.get("status") != "ok":
            continue
        n_times = _timings(nmodel)
        for key, bt in _timings(bmodel).items():
            nt = n_times.get(key)
            if key[0] != subject and nt and bt.get("median") and nt.get("median"):
                moves.append(float(nt["median"]) / float(bt["median"]))
    if len(moves) < _MIN_MACHINE_LINES:
        return None
    low, high = np.percentile(moves, [25, 75])
    return Machine(float(np.median(moves)), len(moves), (float(low), float(high)))


def host_change(baseline: dict[str, Any], new: dict[str, Any], machine: Machine | None) -> str | None:
    """Why the new report ran on another host than the baseline's (then HOST_SLOWDOWN applies), or None."""
    b_cpu, n_cpu = baseline.get("hardware", {}).get("cpu_model"), new.get("hardware", {}).get("cpu_model")
    if b_cpu and n_cpu and b_cpu != n_cpu:
        why = f"another CPU ({b_cpu} in the baseline, {n_cpu} now)"
    elif machine and machine.moved_whole:
        why = f"{machine.describe()}, three quarters of them beyond {MOVE_LIMIT:.0%} one way"
    else:
        return None
    return (f"another host than the baseline's: {why}. Ratios move between hosts by themselves, so a line fails "
            f"only beyond +{HOST_SLOWDOWN:.0%} against every reference; record the baseline on the CI host "
            "to gate finer changes")


def _compare_ratios(name: str, base: dict[str, Any], new: dict[str, Any], subject: str,
                    limits: Thresholds, machine: Machine | None = None, other_host: bool = False) -> list[Change]:
    out = []
    b_times, n_times = _timings(base), _timings(new)
    for key, bt in b_times.items():
        nt = n_times.get(key)
        variant, batch = key
        judged: list[tuple[Change, _Reference]] = []
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
            line = Change(name, label, "ratio", gated, bratio["median"], nratio["median"], point, low, high,
                          _ratio_verdict(point, low, high, limits.max_slowdown))
            out.append(line)
            if gated:
                judged.append((line, _reference(ref, batch, bratio, nratio, b_times, n_times)))
        if judged and other_host:
            _judge_across_hosts(judged, limits)
        elif judged:
            out += _one_judge(judged, machine, (name, variant, batch), bt, nt or {}, limits)
    return out


def _judge_across_hosts(lines: list[tuple[Change, _Reference]], limits: Thresholds,
                        why: str = "another host than the baseline's") -> None:
    """On another host, or one whose references all moved: the least moved reference's line is gated, and fails
    only if every line is beyond HOST_SLOWDOWN.

    A line beyond --max-slowdown but within HOST_SLOWDOWN is shown as unclear: as far as the same code moved
    between two hosts (or two states of one), so neither excused nor failed.
    """
    limit = max(limits.max_slowdown, HOST_SLOWDOWN)
    beyond = [_ratio_verdict(line.change, line.low, line.high, limit) == REGRESSION  # type: ignore[arg-type]
              for line, _ref in lines]
    every = all(beyond)
    judge, judged_by = _judge([ref for _line, ref in lines])
    note = (f"{why}: a regression must be beyond +{limit:.0%} against every "
            f"reference ({'it is' if every else 'it is not'}); {judged_by}")
    for (line, ref), far in zip(lines, beyond, strict=True):
        line.gated = ref is judge
        line.note = note if line.gated else f"not the judge: {note}"
        if far and every:
            line.verdict = REGRESSION
        elif far or line.verdict == REGRESSION:
            line.verdict = UNCLEAR


def _one_judge(lines: list[tuple[Change, _Reference]], machine: Machine | None, where: tuple[str, str, int],
               bt: dict[str, Any], nt: dict[str, Any], limits: Thresholds) -> list[Change]:
    """Of a timing's gated lines (one per reference), keep the judge's gated and ungate the others.

    With no stable reference and a machine move to read, the judge is a line of its own (returned):
    mlc's own time against the baseline, corrected by the machine's move.
    """
    refs = [ref for _line, ref in lines]
    name, variant, batch = where
    busy = max(limits.max_slowdown, HOST_SLOWDOWN)
    if not any(r.stable for r in refs) and machine and bt.get("values") and nt.get("values") \
            and min(len(bt["values"]), len(nt["values"])) >= MIN_REPEATS:
        point, low, high = ratio_change(bt["values"], [v / machine.factor for v in nt["values"]])
        verdict = _ratio_verdict(point, low, high, busy)
        least, _ = _judge(refs)
        beside = next(line for line, ref in lines if ref is least)
        beside_verdict = _ratio_verdict(beside.change, beside.low, beside.high, busy)  # type: ignore[arg-type]
        note = (f"judged by {machine.describe()} with {least.describe()}, the least moved reference: no reference "
                f"was stable (spread <= {SPREAD_LIMIT:.0%}, own time within {MOVE_LIMIT:.0%}; "
                + ", ".join(r.describe() for r in refs) + f"), so the host is not in the baseline's state and a "
                f"regression must be beyond +{busy:.0%} against both: re-measure on a quiet host to gate finer")
        if (verdict == REGRESSION) != (beside_verdict == REGRESSION):
            verdict = UNCLEAR
            note += f" (mlc's own time moved {point:+.0%} against the machine, {beside.change or 0:+.0%} against "\
                    f"{least.name}: not both)"
        elif verdict == OK and (point > limits.max_slowdown or (beside.change or 0) > limits.max_slowdown):
            verdict = UNCLEAR
        for line, _ref in lines:
            line.gated, line.note = False, f"not the judge: {note}"
            if line.verdict == REGRESSION:
                line.verdict = UNCLEAR
        return [Change(name, f"{variant}/machine @b{batch}", "ratio", True, bt.get("median"),
                       round(float(nt["median"]) / machine.factor, 4), point, low, high, verdict, note)]
    if not any(r.stable for r in refs):
        # No machine to read either: the least moved reference judges, at the busy host's threshold.
        _judge_across_hosts(lines, limits, why="no reference was stable, so the host is not in the baseline's state")
        return []
    if len(lines) < 2:
        return []
    judge, note = _judge(refs)
    for line, ref in lines:
        line.note = note if ref is judge else f"not the judge: {note}"
        line.gated = ref is judge
    return []


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
    machine = machine_move(baseline, new, subject)
    other_host = host_change(baseline, new, machine)
    if other_host:
        result.notes.append(other_host)
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
        result.changes += _compare_ratios(name, bmodel, nmodel, subject, limits, machine, bool(other_host))
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
