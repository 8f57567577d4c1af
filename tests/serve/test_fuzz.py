"""Property-based fuzz of both transports, as an outside tester would: no request gets a 5xx (REST)
or INTERNAL/UNKNOWN/UNAVAILABLE (gRPC), and the server's memory after the run is where warm-up
left it.

REST requests come from schemathesis over tests/serve/data/v2_rest_openapi.yaml, an OpenAPI
document of the v2 REST data plane written from the protocol's specification (valid and invalid
requests by that schema, for any model name and for the served ones); gRPC messages are
ModelInferRequest and metadata requests drawn by hypothesis from every field the protocol has.
The run is bounded by example counts sized to about a minute in CI (MLC_FUZZ_EXAMPLES scales
them); every failure prints the request and hypothesis' reproduction blob.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .conftest import N_FEATURES, Server, infer_body
from .test_grpc import grpc_url

schemathesis = pytest.importorskip("schemathesis")
grpc = pytest.importorskip("grpc")
import requests  # noqa: E402 - schemathesis's own HTTP client
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402

OPENAPI = Path(__file__).parent / "data" / "v2_rest_openapi.yaml"
SCALE = float(os.environ.get("MLC_FUZZ_EXAMPLES", "1"))
REST_EXAMPLES = int(600 * SCALE)
GRPC_EXAMPLES = int(1500 * SCALE)
RSS_SLACK = 20 * 2**20
# No shrinking: a failure reports the request that failed at once (shrinking an HTTP round trip
# per step took minutes), with the blob to replay it.
_FUZZ = settings(deadline=None, database=None, print_blob=True, suppress_health_check=list(HealthCheck),
                 phases=[Phase.explicit, Phase.reuse, Phase.generate])
# A full queue (UNAVAILABLE, 503) cannot happen at these sizes, so it counts as a failure too.
_ALLOWED_CODES = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED"}
_ROWS = np.random.default_rng(17).normal(size=(3, N_FEATURES)).astype(np.float32)


@pytest.fixture(scope="module")
def fuzzed(mlc_home: Path) -> Iterator[tuple[Server, str, psutil.Process]]:
    """A server with REST and gRPC (iris v1/v2 classifiers, reg regressor), warmed up on both."""
    srv = Server(["iris:1", "iris:2", "reg", "--grpc-port", "0"], mlc_home)
    url = grpc_url(srv)
    yield srv, url, psutil.Process(srv.proc.pid)
    srv.stop()


def _warm_up(srv: Server, url: str) -> None:
    """A few hundred good and bad requests on both transports, so the RSS baseline includes the
    allocator arenas, caches and code paths that steady traffic settles into."""
    bodies = [infer_body(_ROWS), infer_body(_ROWS, name="nope"), infer_body(_ROWS[:, :2]), {"inputs": []}]
    channel = grpc.insecure_channel(url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    try:
        for i in range(300):
            srv.request("POST", "/v2/models/iris/infer", bodies[i % len(bodies)])
            request = service_pb2.ModelInferRequest(model_name=("iris", "reg", "nosuch")[i % 3])
            request.inputs.add(name="X", datatype="FP32", shape=list(_ROWS.shape))
            request.raw_input_contents.append(_ROWS.tobytes() if i % 2 else b"\0")
            with contextlib.suppress(grpc.RpcError):
                stub.ModelInfer(request, timeout=30)
    finally:
        channel.close()


def _rss(process: psutil.Process) -> int:
    return process.memory_info().rss


# -- REST: schemathesis ----------------------------------------------------------------------------

def _rest_cases() -> st.SearchStrategy[Any]:
    """Valid and invalid requests for every operation, with any model name and with the served ones."""
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_path(OPENAPI)
    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        names = [None]
        if "{model_name}" in operation.path:
            names += [{"model_name": "iris"}, {"model_name": "reg"}]
            if "{model_version}" in operation.path:
                names += [{"model_name": "iris", "model_version": "2"}, {"model_name": "reg", "model_version": "1"}]
        # Only a body can break the schema: any string is a valid name or version.
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if operation.method.upper() == "POST" else (
            GenerationMode.POSITIVE,)
        for mode in modes:
            for path_parameters in names:
                strategies.append(operation.as_strategy(mode, path_parameters=path_parameters))
    return st.one_of(strategies)


def _check_rest(srv: Server) -> Callable[[], None]:
    session = requests.Session()
    base = f"http://{srv.url}"

    @settings(_FUZZ, max_examples=REST_EXAMPLES)
    @given(case=_rest_cases())
    def check(case: Any) -> None:
        response = case.call(base_url=base, session=session, timeout=30)
        assert response.status_code < 500, (case.as_curl_command(), response.status_code, response.text[:500])
        if response.status_code >= 400 and response.request.method != "HEAD":
            assert isinstance(json.loads(response.content)["error"], str)

    return check


# -- gRPC: hypothesis messages ---------------------------------------------------------------------

_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
              "FP64", "BYTES"]
_ITEMSIZE = {"BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1, "INT16": 2, "INT32": 4,
             "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8}
_CONTENTS = {
    "bool_contents": st.booleans(),
    "int_contents": st.integers(-2**31, 2**31 - 1),
    "int64_contents": st.integers(-2**63, 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "bytes_contents": st.binary(max_size=8),
}
_texts = st.text(max_size=8)
_model_names = st.sampled_from(["iris", "reg", "nosuch", ""]) | _texts
_versions = st.sampled_from(["", "1", "2", "9", "-1"]) | _texts
# Mostly a served version, so that most messages get past the lookup to the tensors.
_SERVED = [("iris", ""), ("iris", "1"), ("iris", "2"), ("reg", ""), ("reg", "1")]
_targets = st.one_of(st.sampled_from(_SERVED), st.sampled_from(_SERVED), st.sampled_from(_SERVED),
                     st.tuples(_model_names, _versions))
_shapes = st.lists(st.integers(0, 5) | st.integers(-3, 2**62), max_size=4)
_FIELD_OF = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
             "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
             "FP64": "fp64_contents"}
_counts = st.one_of(st.integers(0, 5), st.integers(0, 5), st.integers(-2**63, 2**63 - 1))
_parameter = st.one_of(
    st.builds(service_pb2.InferParameter, int64_param=_counts),
    st.builds(service_pb2.InferParameter, bool_param=st.booleans()),
    st.builds(service_pb2.InferParameter, uint64_param=st.integers(0, 2**64 - 1)),
    st.builds(service_pb2.InferParameter, string_param=_texts),
    st.builds(service_pb2.InferParameter, double_param=st.floats()),
    st.builds(service_pb2.InferParameter),
)
_parameters = st.dictionaries(st.sampled_from(["classification", "binary_data", "priority"]) | _texts, _parameter,
                              max_size=2)


def _rarely(draw: st.DrawFn) -> bool:
    """True about one time in six: how often a field strays from what the model takes."""
    return draw(st.integers(0, 5)) == 0


@st.composite
def _infer_requests(draw: st.DrawFn) -> Any:
    """Messages near a valid request (FP32 rows of the models' width, raw or typed), each field
    straying now and then to anything its protobuf type allows."""
    name, version = draw(_targets)
    request = service_pb2.ModelInferRequest(model_name=name, model_version=version, id=draw(_texts))
    for key, value in draw(_parameters).items():
        request.parameters[key].CopyFrom(value)
    raw = draw(st.booleans())
    for _ in range(draw(st.sampled_from([1, 1, 1, 1, 1, 0, 2]))):
        datatype = draw(st.sampled_from(_DATATYPES) | _texts) if _rarely(draw) else "FP32"
        shape = draw(_shapes) if _rarely(draw) else [draw(st.integers(1, 5)), N_FEATURES]
        input_name = draw(st.sampled_from(["x", ""]) | _texts) if _rarely(draw) else "X"
        tensor = request.inputs.add(name=input_name, datatype=datatype, shape=shape)
        elements = math.prod(shape) if all(d >= 0 for d in shape) else -1
        fits = 0 <= elements <= 64
        if raw:  # mostly the exact byte count the shape needs, so the values reach the model
            exact = fits and datatype in _ITEMSIZE and not _rarely(draw)
            size = elements * _ITEMSIZE[datatype] if exact else draw(st.integers(0, 64))
            request.raw_input_contents.append(draw(st.binary(min_size=size, max_size=size)))
        else:
            field = _FIELD_OF.get(datatype)
            if field is None or _rarely(draw):
                field = draw(st.sampled_from(sorted(_CONTENTS)))
            count = elements if fits and not _rarely(draw) else draw(st.integers(0, 8))
            getattr(tensor.contents, field).extend(draw(st.lists(_CONTENTS[field], min_size=count, max_size=count)))
    if _rarely(draw):  # one raw entry too many, or raw beside typed contents
        request.raw_input_contents.append(draw(st.binary(max_size=16)))
    for _ in range(draw(st.integers(0, 2))):
        output = request.outputs.add(
            name=draw(_texts) if _rarely(draw) else draw(st.sampled_from(["label", "probabilities", "variable"])))
        for key, value in draw(_parameters).items():
            output.parameters[key].CopyFrom(value)
    return request


def _metadata_calls(stub: Any) -> st.SearchStrategy[Callable[[], Any]]:
    def call(method: str, message: Any) -> Callable[[], Any]:
        return lambda: getattr(stub, method)(message, timeout=30)

    name_version = st.tuples(_model_names, _versions)
    return st.one_of(
        name_version.map(lambda nv: call("ModelMetadata", service_pb2.ModelMetadataRequest(name=nv[0], version=nv[1]))),
        name_version.map(lambda nv: call("ModelReady", service_pb2.ModelReadyRequest(name=nv[0], version=nv[1]))),
        name_version.map(lambda nv: call("ModelConfig", service_pb2.ModelConfigRequest(name=nv[0], version=nv[1]))),
        name_version.map(lambda nv: call("ModelStatistics",
                                         service_pb2.ModelStatisticsRequest(name=nv[0], version=nv[1]))),
    )


def _check_grpc(url: str, channel: Any) -> Callable[[], None]:
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    calls = _infer_requests().map(lambda r: (lambda: stub.ModelInfer(r, timeout=30))) | _metadata_calls(stub)

    @settings(_FUZZ, max_examples=GRPC_EXAMPLES)
    @given(call=calls)
    def check(call: Callable[[], Any]) -> None:
        try:
            call()
        except grpc.RpcError as exc:
            assert exc.code().name in _ALLOWED_CODES, (exc.code(), exc.details())

    return check


# -- the run -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_fuzzed_requests_on_both_transports_get_no_server_error_and_leave_memory_flat(fuzzed):
    srv, url, process = fuzzed
    _warm_up(srv, url)
    warmed = _rss(process)
    _check_rest(srv)()
    channel = grpc.insecure_channel(url)
    try:
        _check_grpc(url, channel)()
    finally:
        channel.close()
    # The server still answers, and neither transport counted a server error.
    assert srv.json("POST", "/v2/models/iris/infer", infer_body(_ROWS))[0] == 200
    metrics = srv.request("GET", "/metrics")[2].decode()
    assert 'mlc_http_responses_total{code="500"} 0' in metrics and 'mlc_grpc_responses_total{code="INTERNAL"} 0' \
        in metrics
    grown = _rss(process) - warmed
    print(f"fuzz: {REST_EXAMPLES} REST and {GRPC_EXAMPLES} gRPC examples; server RSS {warmed / 2**20:.1f} MB after "
          f"warm-up, {(warmed + grown) / 2**20:.1f} MB after the run")
    assert grown <= RSS_SLACK, f"RSS grew {grown / 2**20:.1f} MB in the fuzz run (warm-up left {warmed / 2**20:.0f} MB)"
