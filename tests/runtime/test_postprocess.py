"""The numba post-processing kernels against numpy, and their compile-at-import promise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlc.errors import InvalidInputError
from mlc.runtime import postprocess
from mlc.runtime.postprocess import argmax_labels, threshold_labels, top_k

KERNELS = [postprocess._argmax_kernel, postprocess._top_k_kernel, postprocess._threshold_kernel]

# Finite scores with many ties (few distinct values), the case where orders can differ.
scores = st.sampled_from([np.float32, np.float64]).flatmap(
    lambda dt: hnp.arrays(dt, st.tuples(st.integers(0, 20), st.integers(1, 8)),
                          elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, -3.0]))
)


def test_kernels_are_compiled_at_import_and_never_again():
    """No first-request stall: the signatures exist before any call, and calls add none."""
    before = [list(k.signatures) for k in KERNELS]
    assert all(before)
    rng = np.random.default_rng(0)
    p = rng.random((5, 3))
    for x in (p, p.astype(np.float32), np.asfortranarray(p), p[:, ::2], p.astype(np.int64)):
        x.flags.writeable = False
        argmax_labels(x)
        top_k(x, 1)
        threshold_labels(x[:, :2], 0.3)
    assert [list(k.signatures) for k in KERNELS] == before


@settings(deadline=None, max_examples=80)
@given(p=scores)
def test_argmax_labels_equals_numpy(p):
    labels = argmax_labels(p)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, np.argmax(p, axis=1))


@settings(deadline=None, max_examples=80)
@given(p=scores, data=st.data())
def test_top_k_equals_stable_sort(p, data):
    k = data.draw(st.integers(1, p.shape[1]))
    indices, values = top_k(p, k)
    expected = np.argsort(-p, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(values, np.take_along_axis(p, expected, axis=1))
    assert values.dtype == p.dtype


@settings(deadline=None, max_examples=60)
@given(p=scores.filter(lambda a: a.shape[1] <= 2), t=st.sampled_from([0.0, 0.25, 0.5, 0.9]))
def test_threshold_labels_equals_numpy(p, t):
    np.testing.assert_array_equal(threshold_labels(p, t), (p[:, -1] > t).astype(np.int64))
    np.testing.assert_array_equal(threshold_labels(p[:, -1], t), (p[:, -1] > t).astype(np.int64))


def test_threshold_tie_goes_to_class_zero_like_argmax():
    p = np.array([[0.5, 0.5], [0.4, 0.6]], np.float32)
    np.testing.assert_array_equal(threshold_labels(p), argmax_labels(p))


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: argmax_labels(np.zeros((3, 0))), "at least one class"),
        (lambda: argmax_labels(np.zeros(3)), r"\(rows, classes\)"),
        (lambda: argmax_labels(np.array([["a"]])), "numeric"),
        (lambda: top_k(np.zeros((2, 3)), 4), "k must be between 1 and the 3"),
        (lambda: top_k(np.zeros((2, 3)), 0), "k must be"),
        (lambda: threshold_labels(np.zeros((2, 3))), "argmax_labels or top_k"),
    ],
)
def test_bad_input_is_an_invalid_input_error(call, needle):
    with pytest.raises(InvalidInputError, match=needle):
        call()
