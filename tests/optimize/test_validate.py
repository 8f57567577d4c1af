"""Parity judgments: what passes, what fails, and why."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.optimize.validate import DRAWN_INPUTS, REAL_DATA, Tolerance, compare

LOSSLESS = Tolerance.lossless()


def _clf(n=100, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([1, 1, 1], size=n)
    return {"label": p.argmax(1).astype(np.int64), "probabilities": p}


def test_identical_outputs_pass():
    ref = _clf()
    report = compare(ref, ref, tolerance=LOSSLESS, evidence=REAL_DATA)
    assert report.passed and report.max_abs_error == 0 and report.label_disagreement == 0
    assert report.n_rows == 100 and report.evidence == REAL_DATA and report.reason == "within tolerance"


def test_float32_rounding_passes_and_larger_error_fails():
    ref = _clf()
    cand = {"label": ref["label"], "probabilities": ref["probabilities"].astype(np.float32)}
    assert compare(cand, ref, tolerance=LOSSLESS, evidence=REAL_DATA).passed
    off = {"label": ref["label"], "probabilities": ref["probabilities"] + 2e-4}
    report = compare(off, ref, tolerance=LOSSLESS, evidence=REAL_DATA)
    assert not report.passed and "'probabilities' differs" in report.reason
    assert report.max_abs_error == pytest.approx(2e-4)


def test_one_label_flip_fails_lossless():
    ref = _clf()
    cand = {"label": ref["label"].copy(), "probabilities": ref["probabilities"]}
    cand["label"][7] = (cand["label"][7] + 1) % 3
    report = compare(cand, ref, tolerance=LOSSLESS, evidence=REAL_DATA)
    assert not report.passed and report.label_disagreement == pytest.approx(0.01)
    assert "first at row 7" in report.reason


def test_ties_are_excused():
    ref = _clf()
    ref["probabilities"][3] = [0.45, 0.45 + 5e-7, 0.1 - 5e-7]
    ref["label"][3] = 1
    cand = {"label": ref["label"].copy(), "probabilities": ref["probabilities"]}
    cand["label"][3] = 0
    report = compare(cand, ref, tolerance=LOSSLESS, evidence=REAL_DATA)
    assert report.passed and report.n_ties == 1


def test_lossy_limits():
    ref = _clf(n=1000)
    cand = {"label": ref["label"].copy(), "probabilities": ref["probabilities"] + 0.01}
    cand["label"][:4] = (cand["label"][:4] + 1) % 3
    ok = compare(cand, ref, tolerance=Tolerance(0.005, 0.05, lossy=True), evidence=DRAWN_INPUTS)
    assert ok.passed and ok.label_disagreement == pytest.approx(0.004)
    too_many = compare(cand, ref, tolerance=Tolerance(0.003, 0.05, lossy=True), evidence=DRAWN_INPUTS)
    assert not too_many.passed and "labels differ on 4 of 1000" in too_many.reason
    too_far = compare(cand, ref, tolerance=Tolerance(0.005, 0.005, lossy=True), evidence=DRAWN_INPUTS)
    assert not too_far.passed


def test_regression_error_is_relative_for_large_outputs():
    ref = {"variable": np.array([[1e5], [2e5], [0.5]])}
    close = {"variable": ref["variable"] * (1 + 5e-6)}
    report = compare(close, ref, tolerance=LOSSLESS, evidence=REAL_DATA)
    assert report.passed and report.max_abs_error > 0.5 and report.max_rel_error <= 1e-4
    # 5e-4 on the 0.5 of an output whose values are ~1e5 is within its float32 rounding (~0.008).
    small_value_abs = {"variable": ref["variable"] + np.array([[0], [0], [5e-4]])}
    assert compare(small_value_abs, ref, tolerance=LOSSLESS, evidence=REAL_DATA).passed


def test_small_outputs_are_judged_on_their_own_scale():
    """A regression whose outputs are ~1e-3, off by 10%: max(1, |y|) let that pass; its own scale does not."""
    rng = np.random.default_rng(0)
    ref = {"variable": rng.uniform(0.5e-3, 1.5e-3, size=(200, 1))}
    off = {"variable": ref["variable"] * 1.1}
    report = compare(off, ref, tolerance=LOSSLESS, evidence=REAL_DATA)
    assert not report.passed and "'variable' differs by 0.1 of its scale" in report.reason
    assert report.max_rel_error == pytest.approx(0.1, rel=1e-6)
    rounded = {"variable": ref["variable"].astype(np.float32)}  # float32 rounding of the same outputs passes
    assert compare(rounded, ref, tolerance=LOSSLESS, evidence=REAL_DATA).passed
    # Near zero, the output's typical magnitude is the scale: a value crossing 0 is not judged relative to ~0.
    signed = {"variable": np.array([[1e-3], [-1e-3], [1e-9]])}
    assert compare({"variable": signed["variable"] + 1e-9}, signed, tolerance=LOSSLESS, evidence=REAL_DATA).passed


def test_each_output_has_its_own_scale():
    """A large second output does not loosen the judgment of a small one."""
    small = np.full((10, 1), 1e-3)
    ref = {"small": small, "large": np.full((10, 1), 1e6)}
    report = compare({"small": small * 1.05, "large": ref["large"]}, ref, tolerance=LOSSLESS, evidence=REAL_DATA)
    assert not report.passed and "'small'" in report.reason


def test_lossy_error_bounds_the_99th_percentile_of_rows():
    """One row far off (on the decision boundary of an int8 model) does not fail a lossy candidate;
    2% of rows off does, and the largest error is reported either way."""
    ref = _clf(n=1000)
    cand = {"label": ref["label"], "probabilities": ref["probabilities"].copy()}
    cand["probabilities"][5] += 0.2
    one = compare(cand, ref, tolerance=Tolerance(0.005, 0.05, lossy=True), evidence=REAL_DATA)
    assert one.passed and one.max_abs_error == pytest.approx(0.2) and one.max_rel_error == 0.0
    cand["probabilities"][100:120] += 0.2
    many = compare(cand, ref, tolerance=Tolerance(0.005, 0.05, lossy=True), evidence=REAL_DATA)
    assert not many.passed and "99th percentile 0.2" in many.reason


def test_shape_is_reconciled_but_size_must_match():
    ref = {"variable": np.arange(4.0)}
    assert compare({"variable": np.arange(4.0).reshape(4, 1)}, ref, tolerance=LOSSLESS, evidence=REAL_DATA).passed
    report = compare({"variable": np.arange(8.0)}, ref, tolerance=LOSSLESS, evidence=REAL_DATA)
    assert not report.passed and "shape" in report.reason


def test_missing_output_and_nans():
    ref = _clf()
    assert "missing" in compare({"label": ref["label"]}, ref, tolerance=LOSSLESS, evidence=REAL_DATA).reason
    reg = {"variable": np.array([1.0, np.nan, 3.0])}
    assert compare({"variable": reg["variable"].copy()}, reg, tolerance=LOSSLESS, evidence=REAL_DATA).passed
    bad = {"variable": np.array([1.0, 2.0, np.nan])}
    assert not compare(bad, reg, tolerance=LOSSLESS, evidence=REAL_DATA).passed


def test_string_labels():
    ref = {"label": np.array(["a", "b", "c"], dtype=object)}
    assert compare({"label": np.array(["a", "b", "c"])}, ref, tolerance=LOSSLESS, evidence=REAL_DATA).passed
    assert not compare({"label": np.array(["a", "b", "b"])}, ref, tolerance=LOSSLESS, evidence=REAL_DATA).passed


def test_float_labels_are_compared_as_labels():
    """Year classes: a flip from 2019 to 2020 is a 5e-4 relative error, and must count as a flip."""
    ref = {"label": np.array([2019.0, 2020.0, 2021.0]), "probabilities": np.eye(3)}
    cand = {"label": np.array([2019.0, 2020.0, 2020.0]), "probabilities": np.eye(3)}
    report = compare(cand, ref, tolerance=Tolerance(0.0, 0.05, lossy=True), evidence=REAL_DATA)
    assert not report.passed and report.label_disagreement == pytest.approx(1 / 3)


def test_equal_infinities_are_equal():
    ref = {"variable": np.array([[np.inf], [-np.inf], [1.0]])}
    assert compare({k: v.copy() for k, v in ref.items()}, ref, tolerance=LOSSLESS, evidence=REAL_DATA).passed
    flipped = {"variable": np.array([[-np.inf], [-np.inf], [1.0]])}
    assert not compare(flipped, ref, tolerance=LOSSLESS, evidence=REAL_DATA).passed
