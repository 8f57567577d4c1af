"""The wire format: JSON and binary tensors decode to the right arrays, and every malformed body says why."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlc.errors import InvalidInputError
from mlc.serve.codec import InferRequest, RequestedOutput, decode_request, encode_response


def _binary_body(header: dict, *blobs: bytes) -> tuple[bytes, int]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), len(head)


def test_json_tensor_decodes_flat_or_nested_data():
    flat = decode_request(json.dumps({"inputs": [
        {"name": "X", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}]}).encode())
    nested = decode_request(json.dumps({"inputs": [
        {"name": "X", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]}).encode())
    for request in (flat, nested):
        assert request.inputs["X"].dtype == np.float32
        np.testing.assert_array_equal(request.inputs["X"], [[1, 2], [3, 4]])


def test_binary_tensors_decode_in_order_with_json_ones_between():
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    b = np.array([7, 8], dtype=np.int64)
    body, length = _binary_body({"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [3, 2], "parameters": {"binary_data_size": a.nbytes}},
        {"name": "j", "datatype": "INT32", "shape": [1], "data": [5]},
        {"name": "b", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": b.nbytes}},
    ], "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}, a.tobytes(), b.tobytes())
    request = decode_request(body, length)
    np.testing.assert_array_equal(request.inputs["a"], a)
    np.testing.assert_array_equal(request.inputs["b"], b)
    assert request.inputs["j"].tolist() == [5]
    assert request.outputs == [RequestedOutput("y", True)]


@pytest.mark.parametrize(("body", "length", "needle"), [
    (b"{not json", None, "not valid JSON"),
    (b"[1, 2]", None, "must be a JSON object"),
    (b'{"inputs": []}', None, "non-empty 'inputs'"),
    (b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [2], "data": [1]}]}', None, "needs 2"),
    (b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": ["a"]}]}', None, "float32"),
    (b'{"inputs": [{"name": "X", "datatype": "STRING", "shape": [1], "data": [1]}]}', None, "unsupported datatype"),
    (b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [-1], "data": [1]}]}', None, "non-negative"),
    (b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1]}]}', None, "neither 'data'"),
    (b'{"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}', None, "string 'name'"),
    (b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1]}]}', 999, "body has only"),
])
def test_malformed_requests_say_what_is_wrong(body, length, needle):
    with pytest.raises(InvalidInputError, match=needle):
        decode_request(body, length)


def test_a_binary_header_that_lies_about_sizes_is_refused():
    x = np.zeros((2, 4), dtype=np.float32)
    tensor = {"name": "X", "datatype": "FP32", "shape": [2, 4]}
    # Claims more bytes than the body has.
    body, length = _binary_body({"inputs": [{**tensor, "parameters": {"binary_data_size": 64}}]}, x.tobytes())
    with pytest.raises(InvalidInputError, match="runs past the end"):
        decode_request(body, length)
    # Size agrees with the body but not with the shape.
    body, length = _binary_body({"inputs": [{**tensor, "parameters": {"binary_data_size": 16}}]}, x.tobytes()[:16])
    with pytest.raises(InvalidInputError, match="needs 32"):
        decode_request(body, length)
    # Extra bytes that no input claims.
    body, length = _binary_body({"inputs": [{**tensor, "parameters": {"binary_data_size": 32}}]},
                                x.tobytes() + b"junk")
    with pytest.raises(InvalidInputError, match="no input's binary_data_size"):
        decode_request(body, length)


def test_response_mixes_json_and_binary_outputs_as_asked():
    outputs = {"label": np.array([1, 0], dtype=np.int64), "p": np.array([[0.2, 0.8], [0.9, 0.1]], np.float32)}
    request = InferRequest(inputs={}, request_id="r1",
                           outputs=[RequestedOutput("p", True), RequestedOutput("label", False)])
    body, length = encode_response("m", "3", outputs, request)
    header = json.loads(body[:length])
    assert header["model_name"] == "m" and header["model_version"] == "3" and header["id"] == "r1"
    p, label = header["outputs"]
    assert label == {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]}
    assert p["parameters"]["binary_data_size"] == 16 and "data" not in p
    np.testing.assert_array_equal(np.frombuffer(body[length:], np.float32).reshape(2, 2), outputs["p"])


def test_all_outputs_json_by_default_and_binary_when_asked_for_the_request():
    outputs = {"y": np.array([1.5], dtype=np.float32)}
    body, length = encode_response("m", "1", outputs, InferRequest(inputs={}))
    assert length is None and json.loads(body)["outputs"][0]["data"] == [1.5]
    body, length = encode_response("m", "1", outputs, InferRequest(inputs={}, binary_default=True))
    assert length is not None and np.frombuffer(body[length:], np.float32).tolist() == [1.5]


def test_asking_for_an_unknown_output_is_an_input_error():
    with pytest.raises(InvalidInputError, match="no output 'nope'"):
        encode_response("m", "1", {"y": np.zeros(1)}, InferRequest(inputs={}, outputs=[RequestedOutput("nope", 0)]))


def test_classification_is_read_from_an_outputs_parameters():
    body = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1]}],
                       "outputs": [{"name": "p", "parameters": {"classification": 2, "binary_data": True}},
                                   {"name": "label"}]}).encode()
    assert decode_request(body).outputs == [RequestedOutput("p", True, 2), RequestedOutput("label", False, 0)]


@pytest.mark.parametrize("count", ["2", -1, 1.5, True])
def test_a_classification_that_is_not_a_count_is_refused(count):
    body = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1]}],
                       "outputs": [{"name": "p", "parameters": {"classification": count}}]}).encode()
    with pytest.raises(InvalidInputError, match="must be a count of classes"):
        decode_request(body)


def test_bytes_outputs_are_strings_in_json_and_length_prefixed_in_binary():
    outputs = {"c": np.array([[b"0.9:1", b"0.1:0"]], dtype=object), "s": np.array(["cat", "emu"])}
    body, length = encode_response("m", "1", outputs, InferRequest(inputs={}))
    c, s = json.loads(body)["outputs"]
    assert c == {"name": "c", "datatype": "BYTES", "shape": [1, 2], "data": ["0.9:1", "0.1:0"]}
    assert s["datatype"] == "BYTES" and s["data"] == ["cat", "emu"]
    body, length = encode_response("m", "1", outputs, InferRequest(inputs={}, outputs=[RequestedOutput("c", True)]))
    header = json.loads(body[:length])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 2 * (4 + 5)
    assert body[length:] == b"\x05\x00\x00\x000.9:1\x05\x00\x00\x000.1:0"


@pytest.mark.parametrize(("datatype", "data", "needle"), [
    ("INT64", [1.9, -2.7], "floating-point values, not int64"),
    ("INT64", [1, "42"], "string values"),
    ("BOOL", [0.5, 1], "not bool"),
    ("UINT8", [1, 300], "outside uint8's range"),
    ("FP32", [[1, 2], [3]], "list of numbers"),
])
def test_json_values_of_another_kind_are_refused_not_cast(datatype, data, needle):
    body = json.dumps({"inputs": [{"name": "X", "datatype": datatype, "shape": [2], "data": data}]}).encode()
    with pytest.raises(InvalidInputError, match=needle):
        decode_request(body)


def test_json_values_that_fit_are_taken():
    def decoded(datatype, data):
        body = json.dumps({"inputs": [{"name": "X", "datatype": datatype, "shape": [2], "data": data}]}).encode()
        return decode_request(body).inputs["X"]

    assert decoded("FP32", [1, 2.5]).tolist() == [1.0, 2.5] and decoded("FP32", [1, 2]).dtype == np.float32
    assert np.isnan(decoded("FP32", [0.5, None])[1])  # JSON has no NaN: null is a missing value
    assert decoded("UINT64", [2**64 - 1, 1]).tolist() == [2**64 - 1, 1]  # beyond int64: numpy made them floats
    assert decoded("BOOL", [True, False]).tolist() == [True, False]
    assert decoded("INT8", [-128, 127]).dtype == np.int8
