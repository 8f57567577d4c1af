"""`mlc serve --grpc-port`: KServe v2 over gRPC, checked with clients nobody here wrote.

Triton's own tritonclient.grpc (sync and asyncio), a bare stub sending typed contents (what
KServe's and other clients send instead of raw bytes), the standard grpc.health.v1 client and
perf_analyzer -i grpc, all against real `mlc serve` processes serving REST beside gRPC.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from .conftest import N_FEATURES, Server, infer_body, listening_workers, wait_until
from .test_clients import _perf_analyzer, perf_analyzer_measures

grpcclient = pytest.importorskip("tritonclient.grpc")
grpc_aio = pytest.importorskip("tritonclient.grpc.aio")
grpc = pytest.importorskip("grpc")
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

ROWS = np.random.default_rng(11).normal(size=(7, N_FEATURES)).astype(np.float32)
_GRPC = re.compile(r"gRPC on ([\d.]+:\d+)")


def grpc_url(srv: Server) -> str:
    """The gRPC address the server printed (its --grpc-port 0 resolved)."""
    assert wait_until(lambda: any(_GRPC.search(line) for line in srv.output), timeout=30), "".join(srv.output)
    return next(m[1] for line in srv.output if (m := _GRPC.search(line)))


@pytest.fixture(scope="module")
def served(mlc_home: Path) -> Iterator[tuple[Server, str]]:
    """One server with REST and gRPC: iris (v1 and v2), reg and boom."""
    srv = Server(["iris:1", "iris:2", "reg", "boom", "--max-queue-delay-us", "200", "--grpc-port", "0"], mlc_home)
    yield srv, grpc_url(srv)
    srv.stop()


def _inputs(module, rows: np.ndarray = ROWS, name: str = "X") -> list:
    tensor = module.InferInput(name, list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    return [tensor]


def _error(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def test_tritonclient_grpc_gets_the_models_own_outputs_and_metadata(served, models):
    _, url = served
    client = grpcclient.InferenceServerClient(url)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("iris") and client.is_model_ready("iris", "2")
        meta = client.get_server_metadata(as_json=True)
        assert meta["name"] == "mlc" and "classification" in meta["extensions"]
        model = client.get_model_metadata("iris", as_json=True)
        assert model["platform"] == "onnxruntime_onnx" and model["versions"] == ["1", "2"]
        assert model["inputs"][0] == {"name": "X", "datatype": "FP32", "shape": ["-1", str(N_FEATURES)]}
        config = client.get_model_config("iris", as_json=True)["config"]
        assert config["max_batch_size"] == 64 and config["input"][0]["data_type"] == "TYPE_FP32"
        outputs = [grpcclient.InferRequestedOutput("label"), grpcclient.InferRequestedOutput("probabilities")]
        result = client.infer("iris", _inputs(grpcclient), model_version="2", outputs=outputs, request_id="r-7")
        np.testing.assert_array_equal(result.as_numpy("label"), models["iris2"].predict(ROWS))
        np.testing.assert_allclose(result.as_numpy("probabilities"), models["iris2"].predict_proba(ROWS), atol=1e-5)
        response = result.get_response()
        assert (response.model_name, response.model_version, response.id) == ("iris", "2", "r-7")
        every = client.infer("iris", _inputs(grpcclient), model_version="1")  # no outputs named: all of them
        np.testing.assert_array_equal(every.as_numpy("label"), models["iris1"].predict(ROWS))
        stats = client.get_inference_statistics("iris", "2", as_json=True)["model_stats"][0]
        assert int(stats["inference_count"]) >= len(ROWS)
        index = client.get_model_repository_index(as_json=True)["models"]
        assert {(m["name"], m["version"]) for m in index} >= {("iris", "1"), ("iris", "2"), ("reg", "1")}
    finally:
        client.close()


def test_grpc_and_rest_share_the_batcher_counters(served):
    """Both transports count into the same per-version statistics (one data plane)."""
    srv, url = served
    client = grpcclient.InferenceServerClient(url)
    try:
        def count() -> int:
            return int(srv.json("GET", "/v2/models/reg/versions/1/stats")[1]["model_stats"][0]["inference_count"])

        before = count()
        client.infer("reg", _inputs(grpcclient))
        assert srv.json("POST", "/v2/models/reg/infer", infer_body(ROWS))[0] == 200
        assert count() == before + 2 * len(ROWS)
        grpc_stats = client.get_inference_statistics("reg", "1", as_json=True)["model_stats"][0]
        assert int(grpc_stats["inference_count"]) == before + 2 * len(ROWS)
        metrics = srv.request("GET", "/metrics")[2].decode()
        assert re.search(r'mlc_grpc_responses_total\{code="OK"\} [1-9]', metrics)
    finally:
        client.close()


def test_class_count_gets_the_top_classes_over_grpc(served, models):
    _, url = served
    client = grpcclient.InferenceServerClient(url)
    try:
        outputs = [grpcclient.InferRequestedOutput("probabilities", class_count=2)]
        top = client.infer("iris", _inputs(grpcclient), model_version="2", outputs=outputs).as_numpy("probabilities")
    finally:
        client.close()
    proba = models["iris2"].predict_proba(ROWS)
    assert top.shape == (len(ROWS), 2)
    for row, (first, _) in enumerate(top):
        value, index, label = first.decode().split(":")
        assert int(index) == int(label) == int(np.argmax(proba[row]))
        assert abs(float(value) - proba[row].max()) < 1e-5


def test_errors_map_to_grpc_codes_with_the_rest_message(served):
    srv, url = served
    client = grpcclient.InferenceServerClient(url)
    try:
        bad = _error(lambda: client.infer("iris", _inputs(grpcclient, name="nope")))
        assert bad.status() == "StatusCode.INVALID_ARGUMENT" and "one input named 'X'" in bad.message()
        rest = srv.json("POST", "/v2/models/iris/infer", infer_body(ROWS, name="nope"))[1]["error"]
        assert bad.message() == rest
        missing = _error(lambda: client.infer("nosuch", _inputs(grpcclient)))
        assert missing.status() == "StatusCode.NOT_FOUND" and "'nosuch' is not served here" in missing.message()
        version = _error(lambda: client.get_model_metadata("iris", "9"))
        assert version.status() == "StatusCode.NOT_FOUND"
        # boom's model raises inside ONNX Runtime for a first value outside 0..9: that request only fails.
        raised = _error(lambda: client.infer("boom", _inputs(grpcclient, np.array([[50.0, 1.0]], np.float32), "x")))
        assert raised.status() == "StatusCode.INTERNAL" and raised.message().startswith("internal error:")
        fine = client.infer("boom", _inputs(grpcclient, np.array([[3.0, 1.0]], np.float32), "x"))
        np.testing.assert_array_equal(fine.as_numpy("y"), [3.0])
        wide = _error(lambda: client.infer("iris", _inputs(grpcclient, ROWS[:, :2])))
        assert wide.status() == "StatusCode.INVALID_ARGUMENT"
    finally:
        client.close()


def _stub(url: str) -> tuple[grpc.Channel, service_pb2_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(url)
    return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel)


def test_typed_contents_are_read_like_raw_ones(served, models):
    """KServe's clients send values in typed contents, not raw bytes; both must give the same answer."""
    _, url = served
    channel, stub = _stub(url)
    try:
        request = service_pb2.ModelInferRequest(model_name="iris", model_version="1")
        tensor = request.inputs.add(name="X", datatype="FP32", shape=list(ROWS.shape))
        tensor.contents.fp32_contents.extend(ROWS.ravel().tolist())
        request.outputs.add(name="label")
        reply = stub.ModelInfer(request, timeout=30)
        assert [o.name for o in reply.outputs] == ["label"] and reply.outputs[0].datatype == "INT64"
        labels = np.frombuffer(reply.raw_output_contents[0], dtype="<i8")
        np.testing.assert_array_equal(labels, models["iris1"].predict(ROWS))

        def refused(change) -> str:
            bad = service_pb2.ModelInferRequest()
            bad.CopyFrom(request)
            change(bad.inputs[0])
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(bad, timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            return info.value.details()

        assert "unsupported datatype 'NOPE'" in refused(lambda t: setattr(t, "datatype", "NOPE"))
        assert "non-negative" in refused(lambda t: t.shape.append(-3))
        assert "needs 28" in refused(lambda t: t.contents.fp32_contents.append(1.0))
        assert "not int_contents" in refused(lambda t: t.contents.int_contents.append(1))
        both = service_pb2.ModelInferRequest()
        both.CopyFrom(request)
        both.raw_input_contents.append(ROWS.tobytes())
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(both, timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "beside raw" in info.value.details()
    finally:
        channel.close()


def test_grpc_health_service_says_serving(served):
    _, url = served
    with grpc.insecure_channel(url) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_tritonclient_grpc_aio_runs_requests_concurrently(served, models):
    _, url = served

    async def run() -> None:
        client = grpc_aio.InferenceServerClient(url)
        try:
            assert await client.is_model_ready("iris", "1")
            outputs = [grpc_aio.InferRequestedOutput("label"), grpc_aio.InferRequestedOutput("probabilities")]
            results = await asyncio.gather(*(
                client.infer("iris", _inputs(grpc_aio), model_version="1", outputs=outputs) for _ in range(16)))
            for result in results:
                np.testing.assert_array_equal(result.as_numpy("label"), models["iris1"].predict(ROWS))
                np.testing.assert_allclose(result.as_numpy("probabilities"), models["iris1"].predict_proba(ROWS),
                                           atol=1e-5)
        finally:
            await client.close()

    asyncio.run(run())


def test_message_size_and_rows_are_bounded_like_rest_bodies(start_server):
    srv = start_server("reg", "--grpc-port", "0", env={"MLC_MAX_REQUEST_BYTES": "2000", "MLC_MAX_REQUEST_ROWS": "10"})
    client = grpcclient.InferenceServerClient(grpc_url(srv))
    try:
        big = _error(lambda: client.infer("reg", _inputs(grpcclient, np.zeros((200, N_FEATURES), np.float32))))
        assert big.status() == "StatusCode.RESOURCE_EXHAUSTED"
        rows = _error(lambda: client.infer("reg", _inputs(grpcclient, np.zeros((11, N_FEATURES), np.float32))))
        assert rows.status() == "StatusCode.INVALID_ARGUMENT" and "at most 10" in rows.message()
        assert client.infer("reg", _inputs(grpcclient, np.zeros((10, N_FEATURES), np.float32))).as_numpy("variable") \
            is not None
    finally:
        client.close()


def test_a_full_queue_answers_unavailable_at_once(start_server):
    # A 2 s batching delay keeps the first request queued; the queue holds 8 rows.
    srv = start_server("reg", "--grpc-port", "0", "--max-batch-size", "8", "--max-queue-rows", "8",
                       "--max-queue-delay-us", "2000000")
    url = grpc_url(srv)
    first: list[bool] = []
    thread = threading.Thread(target=lambda: first.append(grpcclient.InferenceServerClient(url).infer(
        "reg", _inputs(grpcclient, np.zeros((5, N_FEATURES), np.float32))) is not None))
    thread.start()
    assert wait_until(lambda: "mlc_pending_rows{model=\"reg\",version=\"1\"} 5" in srv.request("GET", "/metrics")[2]
                      .decode())
    client = grpcclient.InferenceServerClient(url)
    try:
        full = _error(lambda: client.infer("reg", _inputs(grpcclient, ROWS[:4])))
        assert full.status() == "StatusCode.UNAVAILABLE" and "queue is full" in full.message()
    finally:
        client.close()
    thread.join(10)
    assert first == [True]


def test_grpc_port_must_differ_from_the_http_port(mlc_home):
    import os
    import sys

    result = subprocess.run([sys.executable, "-m", "mlc", "serve", "reg", "--port", "18431", "--grpc-port", "18431"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "MLC_HOME": str(mlc_home)})
    assert result.returncode != 0 and "--grpc-port 18431 is also the HTTP --port" in result.stderr + result.stdout


def test_workers_each_serve_grpc_on_the_shared_port(start_server):
    srv = start_server("reg", "--workers", "2", "--grpc-port", "0")
    url = grpc_url(srv)
    port = int(url.rsplit(":", 1)[1])
    workers = listening_workers(srv.proc.pid, port)
    assert len(workers) == 2
    cpu_before = [sum(w.cpu_times()[:2]) for w in workers]
    n = 60
    for _ in range(n):  # a new channel (connection) each time, so the kernel spreads them over the workers
        client = grpcclient.InferenceServerClient(url)
        try:
            client.infer("reg", _inputs(grpcclient, ROWS[:4]))
        finally:
            client.close()
    cpu_after = [sum(w.cpu_times()[:2]) for w in workers]
    assert all(after > before for before, after in zip(cpu_before, cpu_after, strict=True))
    stats = srv.json("GET", "/v2/models/reg/stats")[1]["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] == n


def test_sigterm_lets_in_flight_grpc_requests_finish(start_server):
    srv = start_server("reg", "--grpc-port", "0", "--max-queue-delay-us", "1500000")
    url = grpc_url(srv)
    result: list[object] = []

    def call() -> None:
        client = grpcclient.InferenceServerClient(url)
        try:
            result.append(client.infer("reg", _inputs(grpcclient, ROWS[:4])).as_numpy("variable"))
        except InferenceServerException as exc:
            result.append(exc)
        finally:
            client.close()

    thread = threading.Thread(target=call)
    thread.start()
    assert wait_until(lambda: "mlc_pending_rows{model=\"reg\",version=\"1\"} 4" in srv.request("GET", "/metrics")[2]
                      .decode())
    assert srv.stop() == 0
    thread.join(10)
    assert result and isinstance(result[0], np.ndarray) and result[0].shape[0] == 4


@pytest.mark.slow
def test_perf_analyzer_measures_mlc_serve_over_grpc(start_server, tmp_path):
    command = _perf_analyzer()
    srv = start_server("iris:1", "--grpc-port", "0")
    perf_analyzer_measures(command, grpc_url(srv), "grpc", tmp_path / "perf.csv")


def test_json_mode_reports_the_grpc_port_and_unserved_methods_are_unimplemented(mlc_home):
    import json
    import os
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "mlc", "serve", "reg", "--port", "0", "--grpc-port", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "MLC_HOME": str(mlc_home)})
    try:
        assert proc.stdout is not None
        summary = json.loads(proc.stdout.readline())
        assert summary["grpc"] != summary["url"].removeprefix("http://") and summary["tls"] is False
        channel, stub = _stub(summary["grpc"])
        try:
            assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=30).live
            with pytest.raises(grpc.RpcError) as info:
                stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name="reg"), timeout=30)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            channel.close()
    finally:
        proc.terminate()
        proc.wait(60)


def test_without_the_grpc_extra_the_flag_says_what_to_install(mlc_home):
    import os
    import sys

    hide = "import sys; sys.modules['tritonclient.grpc'] = None; from mlc.cli.serve import serve_cmd; serve_cmd()"
    result = subprocess.run([sys.executable, "-c", hide, "reg", "--port", "0", "--grpc-port", "0"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "MLC_HOME": str(mlc_home)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "needs the 'tritonclient[grpc]' package" in result.stderr and 'pip install "mlc[grpc]"' in result.stderr
