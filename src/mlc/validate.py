"""Parity of a candidate against the original model's own outputs on sample rows.

Two tolerances, by what a pass promises:
- lossless (conversion, graph optimization, session options, the tree kernel): labels
  identical and every float output within float32 rounding, max error <= 1e-4;
- lossy (quantization, fp16): the share of rows whose label changes and the max error
  are bounded by the user's limits.
Rows where the original's two highest probabilities are within 1e-6 are ties: any
float32 computation may pick either class there, so their labels are excused.
Float errors are measured relative to max(1, |original|): absolute for probabilities,
relative for regression outputs of large magnitude.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LOSSLESS_MAX_ERROR = 1e-4
TIE_GAP = 1e-6
LABEL_OUTPUT = "label"  # a classifier's label output, as mlc.convert and mlc.signature name it
REAL_DATA = "real data"
DRAWN_INPUTS = "drawn inputs (weaker evidence)"


@dataclass(frozen=True)
class Tolerance:
    max_label_disagreement: float
    max_abs_error: float
    lossy: bool

    @classmethod
    def lossless(cls) -> Tolerance:
        return cls(max_label_disagreement=0.0, max_abs_error=LOSSLESS_MAX_ERROR, lossy=False)


@dataclass(frozen=True)
class ParityReport:
    passed: bool
    # Largest |candidate - original| over float outputs.
    max_abs_error: float
    # Largest |candidate - original| / max(1, |original|): the figure the tolerance bounds.
    max_rel_error: float
    # Share of rows whose label differs, ties excused.
    label_disagreement: float
    n_rows: int
    n_ties: int
    evidence: str
    reason: str
    tolerance: Tolerance

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_float(a: np.ndarray) -> bool:
    return a.dtype.kind == "f"


def _tie_rows(reference: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Rows whose two highest original probabilities are within TIE_GAP of each other."""
    scores = [a for a in reference.values() if _is_float(a) and a.ndim == 2 and a.shape[1] >= 2]
    if len(scores) != 1:
        return np.zeros(n, dtype=bool)
    top2 = np.sort(scores[0], axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) < TIE_GAP


def _float_errors(cand: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cand = cand.astype(np.float64)
    ref = ref.astype(np.float64)
    same = (np.isnan(cand) & np.isnan(ref)) | (cand == ref)  # equal infinities too (inf - inf is NaN)
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(cand - ref))
    diff = np.where(np.isnan(diff), np.inf, diff)
    rel = diff / np.maximum(1.0, np.nan_to_num(np.abs(ref), nan=1.0))
    return diff, rel


def compare(candidate: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *,
            tolerance: Tolerance, evidence: str) -> ParityReport:
    """Judge candidate outputs against the original's, output by output (names must match)."""
    ref = {k: np.asarray(v) for k, v in reference.items()}
    n = len(next(iter(ref.values())))
    ties = _tie_rows(ref, n)
    problems: list[str] = []
    max_abs = max_rel = 0.0
    disagree = np.zeros(n, dtype=bool)
    for name, r in ref.items():
        if name not in candidate:
            problems.append(f"output '{name}' is missing")
            continue
        c = np.asarray(candidate[name])
        if c.size != r.size:
            problems.append(f"output '{name}' has shape {c.shape}, the original {r.shape}")
            continue
        c = c.reshape(r.shape)
        # A classifier's labels are compared as labels whatever their type: float classes
        # (2019.0, 2020.0) must not pass as a small relative error.
        if _is_float(r) and name != LABEL_OUTPUT:
            diff, rel = _float_errors(c, r)
            if diff.size:
                max_abs = max(max_abs, float(diff.max()))
                max_rel = max(max_rel, float(rel.max()))
                if float(rel.max()) > tolerance.max_abs_error:
                    row = int(np.unravel_index(int(rel.argmax()), rel.shape)[0])
                    problems.append(f"'{name}' differs by {float(rel.max()):.3g} "
                                    f"(> {tolerance.max_abs_error:g}) at row {row}")
        else:
            differs = (c != r).reshape(n, -1).any(axis=1)
            disagree |= differs & ~ties
    share = float(disagree.sum()) / n if n else 0.0
    if share > tolerance.max_label_disagreement:
        problems.append(f"labels differ on {int(disagree.sum())} of {n} rows "
                        f"({share:.2%} > {tolerance.max_label_disagreement:.2%} allowed; "
                        f"first at row {int(disagree.argmax())})")
    return ParityReport(
        passed=not problems, max_abs_error=max_abs, max_rel_error=max_rel, label_disagreement=share,
        n_rows=n, n_ties=int(ties.sum()), evidence=evidence,
        reason="; ".join(problems) if problems else "within tolerance", tolerance=tolerance,
    )


def check_parity(predict: Callable[[np.ndarray], Mapping[str, np.ndarray]],
                 reference: Mapping[str, np.ndarray], x: np.ndarray, *,
                 tolerance: Tolerance, evidence: str) -> ParityReport:
    """Run the candidate on `x` and compare with the original's outputs on the same rows."""
    return compare(predict(x), reference, tolerance=tolerance, evidence=evidence)
