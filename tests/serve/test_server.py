"""The v2 endpoints of a real `mlc serve` process: metadata, inference, Triton's extensions, errors."""

from __future__ import annotations

import json
import re
import socket

import numpy as np
import pytest

from .conftest import N_FEATURES, infer_body

ROWS = np.random.default_rng(0).normal(size=(5, N_FEATURES)).astype(np.float32)


def test_server_metadata_and_health(server):
    status, meta = server.json("GET", "/v2")
    assert status == 200 and meta["name"] == "mlc"
    assert {"binary_tensor_data", "statistics", "model_configuration"} <= set(meta["extensions"])
    assert server.json("GET", "/v2/health/live") == (200, {"live": True})
    assert server.json("GET", "/v2/health/ready") == (200, {"ready": True})
    assert server.json("GET", "/v2/models/iris/ready") == (200, {"name": "iris", "ready": True})
    assert server.json("GET", "/v2/models/iris/versions/2/ready")[0] == 200


def test_model_metadata_lists_versions_and_tensors(server):
    status, meta = server.json("GET", "/v2/models/iris")
    assert status == 200
    assert meta["name"] == "iris" and meta["versions"] == ["1", "2"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, N_FEATURES]}]
    assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    assert server.json("GET", "/v2/models/iris/versions/2")[1]["versions"] == ["2"]


def test_json_inference_matches_the_models_own_predictions(server, models):
    for version, model in (("1", models["iris1"]), ("2", models["iris2"])):
        status, reply = server.json("POST", f"/v2/models/iris/versions/{version}/infer", infer_body(ROWS, id="abc"))
        assert status == 200 and reply["model_version"] == version and reply["id"] == "abc"
        out = {o["name"]: o for o in reply["outputs"]}
        assert out["label"]["datatype"] == "INT64" and out["label"]["shape"] == [5]
        assert out["label"]["data"] == model.predict(ROWS).tolist()
        np.testing.assert_allclose(np.array(out["probabilities"]["data"]).reshape(5, 3), model.predict_proba(ROWS),
                                   atol=1e-5)


def test_binary_inference_both_ways(server, models):
    header = json.dumps({
        "inputs": [{"name": "X", "datatype": "FP32", "shape": list(ROWS.shape),
                    "parameters": {"binary_data_size": ROWS.nbytes}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "label"}],
    }).encode()
    status, headers, body = server.request(
        "POST", "/v2/models/iris/versions/1/infer", header + ROWS.tobytes(),
        {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})
    assert status == 200
    length = int(headers["inference-header-content-length"])
    reply = json.loads(body[:length])
    probs, label = reply["outputs"]
    assert probs["parameters"]["binary_data_size"] == ROWS.shape[0] * 3 * 4
    np.testing.assert_allclose(np.frombuffer(body[length:], np.float32).reshape(5, 3),
                               models["iris1"].predict_proba(ROWS), atol=1e-5)
    assert label["data"] == models["iris1"].predict(ROWS).tolist()


def test_binary_data_output_request_parameter_makes_every_output_binary(server):
    status, headers, body = server.request(
        "POST", "/v2/models/reg/infer", infer_body(ROWS, name="X", parameters={"binary_data_output": True}))
    assert status == 200
    length = int(headers["inference-header-content-length"])
    (variable,) = json.loads(body[:length])["outputs"]
    assert variable["parameters"]["binary_data_size"] == len(body) - length == 5 * 4


def test_config_is_tritons_model_configuration(server):
    status, config = server.json("GET", "/v2/models/iris/config")
    assert status == 200
    assert config["name"] == "iris" and config["platform"] == "onnxruntime_onnx" and config["max_batch_size"] == 64
    assert config["input"] == [{"name": "X", "data_type": "TYPE_FP32", "dims": [N_FEATURES], "format": "FORMAT_NONE"}]
    assert {o["name"]: o["dims"] for o in config["output"]} == {"label": [1], "probabilities": [3]}
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 200
    assert config["instance_group"][0]["kind"] == "KIND_CPU"


def test_stats_count_inferences_in_tritons_shape(server):
    before = server.json("GET", "/v2/models/reg/stats")[1]["model_stats"][0]
    for _ in range(3):
        assert server.json("POST", "/v2/models/reg/infer", infer_body(ROWS))[0] == 200
    status, stats = server.json("GET", "/v2/models/reg/stats")
    assert status == 200
    (entry,) = stats["model_stats"]
    assert entry["name"] == "reg" and entry["version"] == "1" and entry["last_inference"] > 0
    assert entry["inference_count"] - before["inference_count"] == 15
    assert entry["execution_count"] - before["execution_count"] == 3
    success = entry["inference_stats"]["success"]
    assert success["count"] - before["inference_stats"]["success"]["count"] == 3 and success["ns"] > 0
    for key in ("fail", "queue", "compute_input", "compute_infer", "compute_output"):
        assert set(entry["inference_stats"][key]) == {"count", "ns"}
    assert any(b["batch_size"] == 5 for b in entry["batch_stats"])
    all_models = server.json("GET", "/v2/models/stats")[1]["model_stats"]
    assert {(m["name"], m["version"]) for m in all_models} == {("iris", "1"), ("iris", "2"), ("reg", "1"),
                                                               ("boom", "1")}


def test_repository_index_lists_what_is_served(server):
    status, index = server.json("POST", "/v2/repository/index", b"{}")
    assert status == 200 and {"name": "reg", "version": "1", "state": "READY"} in index


def test_prometheus_metrics(server):
    server.json("POST", "/v2/models/reg/infer", infer_body(ROWS))
    server.json("POST", "/v2/models/reg/infer", infer_body(ROWS, name="nope"))
    status, headers, body = server.request("GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    success = re.search(r'mlc_inference_requests_total\{model="reg",version="1",outcome="success"\} (\d+)', text)
    failed = re.search(r'mlc_inference_requests_total\{model="reg",version="1",outcome="client_error"\} (\d+)', text)
    assert success and int(success[1]) >= 1 and failed and int(failed[1]) >= 1
    assert 'mlc_request_duration_seconds_bucket{model="reg",version="1",le="+Inf"}' in text
    assert 'mlc_batch_size_rows_count{model="reg",version="1"}' in text
    assert 'mlc_pending_rows{model="iris",version="1"} 0' in text
    assert re.search(r'mlc_http_responses_total\{code="400"\} [1-9]', text)


@pytest.mark.parametrize(("path", "body", "status", "needle"), [
    ("/v2/models/iris/infer", b"{oops", 400, "not valid JSON"),
    ("/v2/models/iris/infer", infer_body(ROWS, name="nope"), 400, "one input named 'X'"),
    ("/v2/models/iris/infer", infer_body(ROWS, datatype="FP64"), 400, "is FP32, not FP64"),
    ("/v2/models/iris/infer", infer_body(ROWS[:, :3]), 400, "shape"),
    ("/v2/models/iris/infer", infer_body(ROWS.ravel()), 400, "shape"),
    ("/v2/models/iris/infer", infer_body(ROWS, outputs=[{"name": "nope"}]), 400, "no output 'nope'"),
    # No rows: refused alike whether the request would run inline or through the batcher.
    ("/v2/models/iris/infer", infer_body(np.zeros((0, N_FEATURES), np.float32)), 400, "has no rows"),
    # JSON values of another kind are refused, not cast into a different input.
    ("/v2/models/iris/infer", {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, N_FEATURES],
                                          "data": ["1"] * N_FEATURES}]}, 400, "string values"),
    ("/v2/models/nope/infer", infer_body(ROWS), 404, "'nope' is not served"),
    ("/v2/models/iris/versions/9/infer", infer_body(ROWS), 404, "version '9'"),
    ("/v2/models/nope", None, 404, "not served"),
    ("/v2/nothing", None, 404, "no route"),
    ("/v3", None, 404, "under /v2"),
])
def test_bad_requests_get_4xx_with_an_error_that_says_why(server, path, body, status, needle):
    method = "GET" if body is None else "POST"
    got, reply = server.json(method, path, body)
    assert got == status and needle in reply["error"], reply
    assert server.json("GET", "/v2/health/ready")[0] == 200


def test_wrong_method_is_405_with_the_allowed_one_and_head_works_where_get_does(server):
    status, headers, _ = server.request("GET", "/v2/models/iris/infer")
    assert status == 405 and headers["allow"] == "POST"
    status, headers, _ = server.request("POST", "/v2/models/iris", b"{}")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, body = server.request("HEAD", "/v2/health/ready")  # load balancers probe with HEAD
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_listed_outputs_follow_the_requests_binary_default_and_none_listed_means_all(server):
    status, headers, body = server.request("POST", "/v2/models/iris/infer", infer_body(
        ROWS, parameters={"binary_data_output": True}, outputs=[{"name": "probabilities"}]))
    length = int(headers["inference-header-content-length"])
    (probabilities,) = json.loads(body[:length])["outputs"]
    assert status == 200 and probabilities["parameters"]["binary_data_size"] == len(body) - length
    status, reply = server.json("POST", "/v2/models/iris/infer", infer_body(ROWS, outputs=[]))
    assert status == 200 and {o["name"] for o in reply["outputs"]} == {"label", "probabilities"}


def test_a_lying_binary_header_is_refused(server):
    header = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [5, N_FEATURES],
                                     "parameters": {"binary_data_size": ROWS.nbytes + 40}}]}).encode()
    status, _, body = server.request("POST", "/v2/models/iris/infer", header + ROWS.tobytes(),
                                     {"Inference-Header-Content-Length": str(len(header))})
    assert status == 400 and "runs past the end" in json.loads(body)["error"]
    status, _, body = server.request("POST", "/v2/models/iris/infer", header + ROWS.tobytes(),
                                     {"Inference-Header-Content-Length": "999999"})
    assert status == 400 and "Inference-Header-Content-Length" in json.loads(body)["error"]
    status, _, body = server.request("POST", "/v2/models/iris/infer", header, {"Inference-Header-Content-Length": "x"})
    assert status == 400
    status, _, body = server.request("POST", "/v2/models/iris/infer", header,
                                     {"Inference-Header-Content-Length": "\u00b2"})  # sent as the byte 0xb2
    assert status == 400 and "not a non-negative integer" in json.loads(body)["error"]  # a Unicode digit


def test_a_model_that_raises_fails_only_that_request(server):
    bad = np.array([[100.0, 0.0]], dtype=np.float32)
    good = np.array([[3.0, 0.0]], dtype=np.float32)
    status, reply = server.json("POST", "/v2/models/boom/infer", infer_body(bad, name="x"))
    assert status == 500 and "Gather" in reply["error"]
    status, reply = server.json("POST", "/v2/models/boom/infer", infer_body(good, name="x"))
    assert status == 200 and reply["outputs"][0]["data"] == [3.0]


def test_requests_bigger_than_a_batch_are_chunked_and_reassembled(server, models):
    rows = np.random.default_rng(1).normal(size=(150, N_FEATURES)).astype(np.float32)
    status, reply = server.json("POST", "/v2/models/iris/versions/2/infer", infer_body(rows))
    assert status == 200
    assert reply["outputs"][0]["data"] == models["iris2"].predict(rows).tolist()


def test_a_request_bigger_than_the_queue_is_refused_as_too_big_not_as_busy(start_server):
    srv = start_server("reg", "--max-queue-rows", "100", "--max-batch-size", "64")
    status, reply = srv.json("POST", "/v2/models/reg/infer", infer_body(np.zeros((101, N_FEATURES), np.float32)))
    assert status == 400 and "at most 100" in reply["error"]  # a 503 "retry later" would never succeed
    assert srv.json("POST", "/v2/models/reg/infer", infer_body(np.zeros((100, N_FEATURES), np.float32)))[0] == 200


def test_size_and_row_limits(start_server):
    srv = start_server("reg", env={"MLC_MAX_REQUEST_BYTES": "2000", "MLC_MAX_REQUEST_ROWS": "10"})
    status, reply = srv.json("POST", "/v2/models/reg/infer", infer_body(np.zeros((11, N_FEATURES), np.float32)))
    assert status == 400 and "at most 10" in reply["error"]
    # Refused by Content-Length before the body is read: send only the headers.
    with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/reg/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        head = _read_response(sock)
    assert head.startswith("HTTP/1.1 413") and "at most 2000" in head
    # Refused while streaming: chunked encoding declares no length.
    with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/reg/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 1500
        for _ in range(2):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        head = _read_response(sock)
    assert head.startswith("HTTP/1.1 413") and "over this server's limit" in head
    assert srv.json("POST", "/v2/models/reg/infer", infer_body(ROWS))[0] == 200


def _read_response(sock: socket.socket) -> str:
    """A whole HTTP/1.1 response (headers and Content-Length body) off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])
    while len(body) < length:
        body += sock.recv(4096)
    return (head + b"\r\n\r\n" + body).decode()
