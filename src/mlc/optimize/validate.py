"""Parity of a candidate against the original model's own outputs on sample rows.

Two tolerances, by what a pass promises:
- lossless (conversion, graph optimization, session options, the tree kernel): labels
  identical, and every float output within float32 rounding *of that output*: its error
  relative to max(|original|, the output's typical magnitude) at most 1e-4 (about 840
  float32 ulps, room for the rounding a sum of hundreds of trees or a GEMM accumulates).
  The typical magnitude is the mean |value| of that output over the rows, so a regression
  whose outputs are ~1e-3 is held to ~1e-7 absolute, not to 1e-4 as if it were ~1;
- lossy (quantization, fp16): the share of rows whose label changes is bounded, and so is
  the error of the outputs on the rows: the 99th percentile over rows of a row's largest
  error (probabilities absolute, other outputs relative as above) must be within the user's
  limit. A percentile, not the maximum, because the maximum over n rows grows with n and is
  set by the rows on the decision boundary, where an int8 logit moves a probability most and
  whose flips the label limit already counts. Measured on the zoo's int8 MLP (64x64, ORT 1.32,
  2,000 drawn rows): labels changed on 0.6%, per-row error p99 0.056 and max 0.17; on its
  real rows p99 0.018, max 0.027. The largest error is still reported.
Rows where the original's two highest probabilities are within 1e-6 are ties: any
float32 computation may pick either class there, so their labels are excused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LOSSLESS_MAX_ERROR = 1e-4
TIE_GAP = 1e-6
# The share of rows whose error a lossy tolerance may exceed (its limit bounds the 99th percentile).
LOSSY_ERROR_QUANTILE = 0.99
LABEL_OUTPUT = "label"  # a classifier's label output, as mlc.convert and mlc.signature name it
PROBABILITIES_OUTPUT = "probabilities"  # a classifier's probabilities, as mlc.convert names them
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
    # The figure the tolerance bounds: |candidate - original| / max(|original|, the output's mean
    # |value|) (probabilities: absolute when lossy); lossless its maximum, lossy the 99th
    # percentile over rows of each row's largest.
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


def _scaled_errors(cand: np.ndarray, ref: np.ndarray, absolute: bool) -> tuple[np.ndarray, np.ndarray]:
    """(|candidate - original|, that error on the output's own scale), elementwise.

    The scale is max(|original|, the mean |original| of this output): relative for values
    above the output's typical magnitude, absolute at that magnitude below it (an output
    crossing zero is not judged relative to ~0). `absolute` (lossy probabilities): scale 1.
    """
    cand = cand.astype(np.float64)
    ref = ref.astype(np.float64)
    same = (np.isnan(cand) & np.isnan(ref)) | (cand == ref)  # equal infinities too (inf - inf is NaN)
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(cand - ref))
    diff = np.where(np.isnan(diff), np.inf, diff)
    if absolute:
        return diff, diff
    magnitude = np.abs(ref[np.isfinite(ref)])
    typical = float(magnitude.mean()) if magnitude.size else 1.0
    scale = np.maximum(np.nan_to_num(np.abs(ref), nan=typical, posinf=np.inf), typical)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = diff / np.where(scale > 0, scale, np.finfo(np.float32).tiny)
    # 0 where equal; inf where the candidate is off by an infinity (inf / inf would be NaN).
    scaled = np.where(diff == 0, 0.0, np.where(np.isinf(diff), np.inf, scaled))
    return diff, scaled


def compare(candidate: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *,
            tolerance: Tolerance, evidence: str) -> ParityReport:
    """Judge candidate outputs against the original's, output by output (names must match)."""
    ref = {k: np.asarray(v) for k, v in reference.items()}
    n = len(next(iter(ref.values())))
    ties = _tie_rows(ref, n)
    problems: list[str] = []
    max_abs = 0.0
    disagree = np.zeros(n, dtype=bool)
    row_error = np.zeros(n)  # each row's largest scaled error over the float outputs
    worst_output = ""
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
            diff, scaled = _scaled_errors(c, r, absolute=tolerance.lossy and name == PROBABILITIES_OUTPUT)
            if diff.size:
                max_abs = max(max_abs, float(diff.max()))
                per_row = scaled.reshape(n, -1).max(axis=1) if n else scaled.ravel()
                if per_row.size and float(per_row.max()) > float(row_error.max(initial=0.0)):
                    worst_output = name
                row_error = np.maximum(row_error, per_row) if per_row.size == n else row_error
        else:
            differs = (c != r).reshape(n, -1).any(axis=1)
            disagree |= differs & ~ties
    if tolerance.lossy:
        bounded = float(np.quantile(row_error, LOSSY_ERROR_QUANTILE)) if n else 0.0
        if bounded > tolerance.max_abs_error:
            problems.append(f"outputs differ by more than {tolerance.max_abs_error:g} on over "
                            f"{1 - LOSSY_ERROR_QUANTILE:.0%} of rows (99th percentile {bounded:.3g}, "
                            f"largest {float(row_error.max()):.3g} in '{worst_output}')")
    else:
        bounded = float(row_error.max(initial=0.0))
        if bounded > tolerance.max_abs_error:
            row = int(row_error.argmax())
            problems.append(f"'{worst_output}' differs by {bounded:.3g} of its scale "
                            f"(> {tolerance.max_abs_error:g}) at row {row}")
    share = float(disagree.sum()) / n if n else 0.0
    if share > tolerance.max_label_disagreement:
        problems.append(f"labels differ on {int(disagree.sum())} of {n} rows "
                        f"({share:.2%} > {tolerance.max_label_disagreement:.2%} allowed; "
                        f"first at row {int(disagree.argmax())})")
    return ParityReport(
        passed=not problems, max_abs_error=max_abs, max_rel_error=bounded, label_disagreement=share,
        n_rows=n, n_ties=int(ties.sum()), evidence=evidence,
        reason="; ".join(problems) if problems else "within tolerance", tolerance=tolerance,
    )


def check_parity(predict: Callable[[np.ndarray], Mapping[str, np.ndarray]],
                 reference: Mapping[str, np.ndarray], x: np.ndarray, *,
                 tolerance: Tolerance, evidence: str) -> ParityReport:
    """Run the candidate on `x` and compare with the original's outputs on the same rows."""
    return compare(predict(x), reference, tolerance=tolerance, evidence=evidence)
