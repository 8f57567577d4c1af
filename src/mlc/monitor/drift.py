"""Drift verdicts: per column and overall, from a reference summary and a collected one.

A check flags drift only when two things hold: its test is significant after a Bonferroni
correction over every test run in the comparison (so checking 10 features x 3 checks does
not raise 30 chances of a false alarm), and the shift is large enough to matter (an effect
floor, because with many thousands of rows a test finds shifts nobody cares about).

Default thresholds (every one settable, see `Thresholds`):
- alpha 0.05, family-wise over all tests of one comparison (each test runs at 0.05 / tests);
- distribution: PSI >= 0.1 over the reference's deciles or the categories (the usual reading
  of PSI: below 0.1 no significant change), with KS (numeric) or chi-squared (categorical)
  significant;
- missing share: an absolute change >= 0.05 (five percentage points), z-test significant;
- out of range: >= 1% of present values outside the reference's [min, max] (or categories the
  reference never had), binomial test against chance significant;
- at least 100 present values on each side before a distribution is judged (else the column
  says "insufficient data" for that check).
The overall verdict is "drift" when any feature or output column drifts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlc.errors import UsageError
from mlc.monitor import stats
from mlc.monitor.sketch import NUMERIC, ColumnSketch
from mlc.monitor.summary import DataSummary

DRIFT, NO_DRIFT, INSUFFICIENT = "drift", "no drift", "insufficient data"


@dataclass(frozen=True)
class Thresholds:
    """When a check flags drift; see the module docstring for why each default."""

    alpha: float = 0.05
    psi: float = 0.1
    missing_shift: float = 0.05
    out_of_range: float = 0.01
    min_rows: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise UsageError(f"alpha must be between 0 and 1, not {self.alpha}")
        if self.psi < 0 or self.missing_shift < 0 or self.out_of_range < 0 or self.min_rows < 1:
            raise UsageError("drift thresholds must be non-negative and min_rows at least 1")


@dataclass
class Check:
    """One test of one column: statistic, p-value, effect size, and whether it flags drift."""

    name: str  # "distribution", "missing", "out_of_range"
    test: str  # "ks", "chi2", "z", "binomial"
    statistic: float
    p_value: float | None
    effect: float
    floor: float
    verdict: str = NO_DRIFT


@dataclass
class ColumnDrift:
    name: str
    role: str  # "feature" or "output"
    kind: str
    rows_reference: int
    rows_collected: int
    checks: list[Check]
    figures: dict[str, float | None] = field(default_factory=dict)  # psi, ks_d, wasserstein, shares, ...
    # What the report plots: bins (numeric: the reference's deciles; categorical: the categories)
    # with each side's share of present values in them. Empty when a side has no present value.
    distribution: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.checks}
        if DRIFT in verdicts:
            return DRIFT
        return INSUFFICIENT if verdicts == {INSUFFICIENT} else NO_DRIFT

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "kind": self.kind, "verdict": self.verdict,
                "rows_reference": self.rows_reference, "rows_collected": self.rows_collected,
                "figures": self.figures, "checks": [asdict(c) for c in self.checks],
                "distribution": self.distribution}


@dataclass
class DriftResult:
    rows_reference: int
    rows_collected: int
    thresholds: Thresholds
    tests: int  # how many tests shared the family-wise alpha
    columns: list[ColumnDrift]

    @property
    def drifted(self) -> list[str]:
        return [c.name for c in self.columns if c.verdict == DRIFT]

    @property
    def verdict(self) -> str:
        if self.drifted:
            return DRIFT
        return INSUFFICIENT if self.rows_collected < self.thresholds.min_rows else NO_DRIFT

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "drifted": self.drifted, "rows_reference": self.rows_reference,
                "rows_collected": self.rows_collected, "tests": self.tests,
                "alpha_per_test": self.thresholds.alpha / max(self.tests, 1),
                "thresholds": asdict(self.thresholds), "columns": [c.to_dict() for c in self.columns]}


def _column(name: str, role: str, ref: ColumnSketch, cur: ColumnSketch, t: Thresholds) -> ColumnDrift:
    checks: list[Check] = []
    figures: dict[str, float | None] = {
        "missing_reference": ref.missing_share, "missing_collected": cur.missing_share}
    if ref.present >= t.min_rows and cur.present >= t.min_rows:
        if ref.kind == NUMERIC:
            index = stats.numeric_psi(ref, cur)
            test = stats.ks(ref, cur)
            figures.update(psi=index, ks_d=test.statistic, wasserstein=stats.wasserstein(ref, cur),
                           mean_reference=ref.mean, mean_collected=cur.mean)
            checks.append(Check("distribution", "ks", test.statistic, test.p_value, index, t.psi))
        else:
            test, index = stats.categorical(ref, cur)
            figures.update(psi=index, chi2=test.statistic)
            checks.append(Check("distribution", "chi2", test.statistic, test.p_value, index, t.psi))
        rng = stats.out_of_range(ref, cur)
        figures["out_of_range"] = rng.effect
        checks.append(Check("out_of_range", "binomial", rng.statistic, rng.p_value, rng.effect, t.out_of_range))
    else:
        checks.append(Check("distribution", "ks" if ref.kind == NUMERIC else "chi2", 0.0, None, 0.0, t.psi,
                            INSUFFICIENT))
    if ref.rows and cur.rows:
        miss = stats.missing_shift(ref, cur)
        checks.append(Check("missing", "z", miss.statistic, miss.p_value, miss.effect, t.missing_shift))
    return ColumnDrift(name, role, ref.kind, ref.rows, cur.rows, checks, figures, stats.shares(ref, cur))


def compare(reference: DataSummary, collected: DataSummary, thresholds: Thresholds | None = None) -> DriftResult:
    """Every feature and output column of the reference, judged against the collected summary."""
    t = thresholds or Thresholds()
    if list(collected.features) != list(reference.features):
        raise UsageError("the collected data's features differ from the reference's",
                         f"reference: {', '.join(list(reference.features)[:8])}; "
                         f"collected: {', '.join(list(collected.features)[:8])}")
    columns = [_column(n, "feature", s, collected.features[n], t) for n, s in reference.features.items()]
    columns += [_column(n, "output", s, collected.outputs[n], t)
                for n, s in reference.outputs.items() if n in collected.outputs]
    tested = [c for col in columns for c in col.checks if c.p_value is not None]
    per_test = t.alpha / max(len(tested), 1)
    for check in tested:
        if check.p_value is not None and check.p_value < per_test and check.effect >= check.floor:
            check.verdict = DRIFT
    return DriftResult(reference.rows, collected.rows, t, len(tested), columns)
