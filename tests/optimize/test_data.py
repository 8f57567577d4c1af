"""Rows from files: a CSV's first row is a header only when it holds something other than numbers."""

from __future__ import annotations

import numpy as np

from mlc.optimize.data import load_rows


def test_a_headerless_csv_keeps_its_first_row_even_with_repeated_or_empty_cells(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("1.5,1.5,2\n3,,4\n")  # pandas would rename the header to 1.5, 1.5.1 / Unnamed: 1
    np.testing.assert_array_equal(load_rows(path, 3), np.array([[1.5, 1.5, 2], [3, np.nan, 4]], np.float32))


def test_a_header_row_is_dropped(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("f1,f2,f3\n1,2,3\n")
    assert load_rows(path, 3).tolist() == [[1.0, 2.0, 3.0]]


def test_missing_value_markers_are_nan(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("a,b,c\n1.0,NA,3\n4,,NULL\n")  # what R's write.csv and pandas' na_rep write
    rows = load_rows(path, 3)
    assert rows.shape == (2, 3) and np.isnan(rows[0, 1]) and np.isnan(rows[1, 1]) and np.isnan(rows[1, 2])
