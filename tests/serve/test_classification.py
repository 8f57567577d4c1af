"""Triton's classification extension: top classes as "value:index[:label]", best first."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.errors import InvalidInputError
from mlc.serve.classification import classify


def test_top_classes_best_first_with_labels_when_the_columns_are_the_classes():
    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], dtype=np.float32)
    out = classify("p", p, 2, ["cat", "dog", "emu"])
    assert out.shape == (2, 2) and out.dtype == object
    assert out.tolist() == [[b"%.9f:1:dog" % np.float32(0.7), b"%.9f:2:emu" % np.float32(0.2)],
                            [b"%.9f:0:cat" % np.float32(0.5), b"%.9f:2:emu" % np.float32(0.3)]]


def test_without_matching_classes_there_are_no_labels_and_the_count_is_capped():
    scores = np.array([[3, 9]], dtype=np.int64)
    assert classify("s", scores, 5, ["a", "b", "c"]).tolist() == [[b"9.000000000:1", b"3.000000000:0"]]
    column = np.array([0.25, 0.75], dtype=np.float64)  # one element per row: its only class is index 0
    assert classify("y", column, 1, None).tolist() == [[b"0.250000000:0"], [b"0.750000000:0"]]


def test_ties_go_to_the_lowest_index():
    assert classify("p", np.array([[0.4, 0.4, 0.2]]), 2, None).tolist() == [[b"0.400000000:0", b"0.400000000:1"]]


def test_an_output_without_numeric_classes_is_refused():
    with pytest.raises(InvalidInputError, match="not numeric"):
        classify("label", np.array(["cat"]), 1, None)
