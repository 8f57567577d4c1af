"""Tensor shapes a client can get wrong answer 400 with what is wrong, through the real HTTP server.

Found by fuzzing (issue 19): `"shape": [], "data": []` answered 500 (`min() arg is an empty
sequence`). Its siblings are here too: scalars, empty integer data, negative and empty
dimensions, shapes that disagree with their data, and shapes too big or too deep for an array.
"""

from __future__ import annotations

import json

import pytest

from .conftest import N_FEATURES


def _json(shape: list[int], data: object, datatype: str = "FP32") -> dict[str, object]:
    return {"inputs": [{"name": "X", "datatype": datatype, "shape": shape, "data": data}]}


def _binary(shape: list[int], raw: bytes, datatype: str = "FP32") -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "X", "datatype": datatype, "shape": shape,
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


SCALAR = "a scalar is not a batch of rows"
JSON_CASES = [
    # The fuzzed 500, for each kind of datatype: integer types reached min() of no values.
    pytest.param([], [], "FP32", SCALAR, id="scalar-empty-fp32"),
    pytest.param([], [], "INT64", SCALAR, id="scalar-empty-int64"),
    pytest.param([], [], "BOOL", SCALAR, id="scalar-empty-bool"),
    pytest.param([], [1.5], "FP32", SCALAR, id="scalar-one-value"),
    pytest.param([], 1.5, "FP32", SCALAR, id="scalar-bare-number"),
    # Empty integer data with a shape that holds nothing: the same min() of no values.
    pytest.param([0, N_FEATURES], [], "INT64", "is FP32, not INT64", id="no-rows-int64"),
    pytest.param([0], [[]], "INT32", "is FP32, not INT32", id="nested-empty-int32"),
    pytest.param([0, N_FEATURES], [], "FP32", "has no rows", id="no-rows-fp32"),
    pytest.param([-1, N_FEATURES], [0.0] * N_FEATURES, "FP32", "non-negative integers", id="negative-dim"),
    pytest.param([2, N_FEATURES], [0.0] * N_FEATURES, "FP32", "needs 8", id="fewer-values-than-shape"),
    pytest.param([1, N_FEATURES], [0.0] * (N_FEATURES + 1), "FP32", "needs 4", id="more-values-than-shape"),
    pytest.param([1, 0], [], "FP32", "empty dimension", id="zero-width-row"),
    pytest.param([3, 0, N_FEATURES], [], "FP32", "empty dimension", id="zero-inner-dim"),
    # No array has these, whatever its data: the product overflows, or there are too many axes.
    pytest.param([0, 2**62, 2**62], [], "FP32", "too large", id="overflowing-dims-no-data"),
    pytest.param([2**62, 2**62], [0.0], "FP32", "too large", id="overflowing-dims"),
    pytest.param([2**63], [0.0], "FP32", "too large", id="dim-beyond-int64"),
    pytest.param([1] * 70, [0.0], "FP32", "dimensions", id="seventy-dims"),
]


@pytest.mark.parametrize(("shape", "data", "datatype", "needle"), JSON_CASES)
def test_json_tensors_of_impossible_shapes_are_client_errors(server, shape, data, datatype, needle):
    status, reply = server.json("POST", "/v2/models/iris/infer", _json(shape, data, datatype))
    assert status == 400 and needle in reply["error"], reply
    assert server.json("GET", "/v2/health/ready")[0] == 200


@pytest.mark.parametrize(("shape", "raw", "needle"), [
    pytest.param([], b"\0" * 4, SCALAR, id="scalar"),
    pytest.param([], b"", SCALAR, id="scalar-empty"),
    pytest.param([1, 0], b"", "empty dimension", id="zero-width-row"),
    pytest.param([0, 2**62, 2**62], b"", "too large", id="overflowing-dims-no-data"),
    pytest.param([2**40, 2**40], b"", "too large", id="overflowing-bytes"),
    pytest.param([1] * 70, b"\0" * 4, "dimensions", id="seventy-dims"),
    pytest.param([2, N_FEATURES], b"\0" * 4 * N_FEATURES, "needs 32", id="fewer-bytes-than-shape"),
])
def test_binary_tensors_of_impossible_shapes_are_client_errors(server, shape, raw, needle):
    body, headers = _binary(shape, raw)
    status, reply = server.json("POST", "/v2/models/iris/infer", body, headers)
    assert status == 400 and needle in reply["error"], reply


def test_a_well_formed_request_still_answers_after_them(server):
    status, reply = server.json("POST", "/v2/models/iris/infer", _json([1, N_FEATURES], [0.5] * N_FEATURES))
    assert status == 200 and reply["outputs"][0]["shape"] == [1]
