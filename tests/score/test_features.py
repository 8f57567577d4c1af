"""Column matching and the parsing of rows into model input: what is scored, what is rejected and why."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mlc.errors import UsageError
from mlc.score.columns import plan_columns
from mlc.score.features import check_type, to_features
from mlc.score.inputs import parse_jsonl

F32 = np.dtype(np.float32)


def test_columns_are_matched_by_name_in_any_order() -> None:
    plan = plan_columns(["id", "c", "a", "b"], source="t", n_features=3, feature_names=["a", "b", "c"],
                        id_column="id")
    assert plan.features == ("a", "b", "c") and plan.by_name
    assert plan.read == ("a", "b", "c", "id") and plan.passthrough == ("id",)


def test_a_missing_feature_column_is_named() -> None:
    with pytest.raises(UsageError, match=r"lacks 1 of the model's 3 feature columns: 'c'"):
        plan_columns(["a", "b", "x"], source="t", n_features=3, feature_names=["a", "b", "c"])


def test_without_names_the_other_columns_are_taken_in_order_and_must_count_right() -> None:
    plan = plan_columns(["id", "x1", "x0", "keep"], source="t", n_features=2, feature_names=None,
                        id_column="id", keep=["keep"])
    assert plan.features == ("x1", "x0") and not plan.by_name
    with pytest.raises(UsageError, match="takes 3 features but t has 2 columns") as info:
        plan_columns(["id", "x1", "x0"], source="t", n_features=3, feature_names=None, id_column="id")
    assert "--features" in (info.value.hint or "")


def test_an_id_or_kept_column_that_is_absent_is_named() -> None:
    with pytest.raises(UsageError, match=r"no column 'key' \(asked for by --id-column\)"):
        plan_columns(["a"], source="t", n_features=1, feature_names=None, id_column="key")
    with pytest.raises(UsageError, match=r"no column 'z' \(asked for by --keep\)"):
        plan_columns(["a"], source="t", n_features=1, feature_names=None, keep=["z"])


def test_a_column_that_holds_no_numbers_is_refused_up_front() -> None:
    with pytest.raises(UsageError, match="'when' is of type timestamp"):
        check_type("when", pa.timestamp("s"), "t")
    check_type("x", pa.string(), "t")  # text may hold numbers: judged row by row
    check_type("x", pa.int64(), "t")


def test_numbers_nulls_and_text_become_the_model_input() -> None:
    table = pa.table({"i": pa.array([1, None, 3], pa.int64()), "s": pa.array(["0.5", "NA", " 2 "]),
                      "b": pa.array([True, False, None])})
    x, rejects = to_features(table, ["i", "s", "b"], F32)
    assert rejects == {}
    expected = np.array([[1, 0.5, 1], [np.nan, np.nan, 0], [3, 2, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(x, expected)
    assert x.dtype == np.float32 and x.flags.c_contiguous


def test_a_value_that_is_no_number_rejects_its_row_with_the_reason() -> None:
    table = pa.table({"a": pa.array(["1", "oops", "3", "4"]), "b": pa.array(["1", "2", "x", "4e0"])})
    x, rejects = to_features(table, ["a", "b"], F32)
    assert rejects == {1: "column 'a': 'oops' is not a number", 2: "column 'b': 'x' is not a number"}
    np.testing.assert_array_equal(x[[0, 3]], [[1, 1], [4, 4]])


def test_an_integer_model_input_rejects_fractions_and_missing_values() -> None:
    table = pa.table({"a": pa.array([1.0, 2.5, None, 4.0])})
    x, rejects = to_features(table, ["a"], np.dtype(np.int64))
    assert set(rejects) == {1, 2} and "not an integer" in rejects[1] and "missing" in rejects[2]
    assert x[0, 0] == 1 and x[3, 0] == 4


def test_json_lines_parse_the_same_by_chunk_or_by_line() -> None:
    """Arrow parses a clean chunk whole; a chunk with a bad line is parsed line by line. The good
    lines must give the same features either way (floats round-trip through their text)."""
    good = b'{"a": 0.1, "b": 1, "id": 7}\n{"a": 1e-7, "b": null, "id": 8}\n'
    bad = good + b'not json\n[1, 2]\n{"a": [1], "b": 2, "id": 9}\n'
    fast, no_rejects = parse_jsonl(good, ["a", "b", "id"], ["id"])
    slow, rejects = parse_jsonl(bad, ["a", "b", "id"], ["id"])
    assert no_rejects == {}
    assert sorted(rejects) == [2, 3, 4]
    assert "not JSON" in rejects[2] and "not an object" in rejects[3] and "column 'a'" in rejects[4]
    x_fast, _ = to_features(fast, ["a", "b"], F32)
    x_slow, _ = to_features(slow, ["a", "b"], F32)
    np.testing.assert_array_equal(x_fast, x_slow[:2])
    assert fast.column("id").to_pylist() == slow.column("id").to_pylist()[:2] == ["7", "8"]
