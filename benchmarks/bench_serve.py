"""Measure mlc serve over loopback HTTP: which HTTP stack to build on, and how it compares.

    python benchmarks/bench_serve.py stack    # same app on uvicorn / granian / aiohttp -> results/serve_stack.*
    python benchmarks/bench_serve.py compare  # mlc serve vs MLServer (or a plain per-request ORT app)
                                              #   on the example random forest -> results/serve_compare.*
    python benchmarks/bench_serve.py grpc --mlserver VENV/bin/mlserver
                                              # perf_analyzer -i grpc (and -i http) against mlc serve
                                              #   and MLServer 1.7 with adaptive batching, beside a bare
                                              #   grpc.aio server (the transport's ceiling) -> results/serve_grpc.*
    python benchmarks/bench_serve.py tail --before REV
                                              # one worker at 64 connections, this tree vs revision REV,
                                              #   with each server's full-GC pauses -> results/serve_tail.*

Load comes from wrk (Debian's `wrk`; closed loop, fixed connections, one thread) for a fixed
number of seconds per point, against 127.0.0.1 only, so every run is short and bounded; `grpc`
drives Triton's perf_analyzer instead (`bash .ci/perf_analyzer.sh` makes it runnable here).
Every server's answer is checked against the model's own predictions before it is timed: a
fast wrong answer is not a result. The machine is shared and small; the JSON records its
cores and load average so a reader can judge the noise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
HERE = Path(__file__).resolve().parent


# -- models --------------------------------------------------------------------------------


def train_models(home: Path) -> dict[str, Any]:
    """A tiny forest (stack comparison) and the example's random forest (README / optimize suite)."""
    import joblib
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from mlc.registry import Registry
    from mlc.signature import tabular

    registry = Registry(home)
    fitted = {}
    for name, trees, depth, features in (("tiny", 5, 3, 4), ("forest", 50, 8, 20)):
        x, y = make_classification(n_samples=2000, n_features=features, n_informative=min(8, features),
                                   n_redundant=0, random_state=0)
        x = x.astype(np.float32)
        model = RandomForestClassifier(n_estimators=trees, max_depth=depth, random_state=0, n_jobs=1).fit(x, y)
        onx = to_onnx(model, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
        registry.register(name, onx.SerializeToString(), format="onnx", framework="sklearn",
                          signature=tabular(features, task="classification", classes=[0, 1]))
        joblib.dump(model, home / f"{name}.joblib")
        (home / f"{name}.onnx").write_bytes(onx.SerializeToString())
        fitted[name] = (model, x[:64])
    return fitted


# -- load ----------------------------------------------------------------------------------


@dataclass
class Point:
    server: str
    connections: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def wrk(port: int, path: str, body: bytes, headers: dict[str, str], connections: int, seconds: float,
        label: str) -> Point:
    """One closed-loop run of `connections` keep-alive connections for `seconds` against 127.0.0.1."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\n')
        script.write(f"wrk.body = {_lua_string(body)}\n")
        for key, value in headers.items():
            script.write(f'wrk.headers["{key}"] = "{value}"\n')
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", script.name,
             f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    finally:
        os.unlink(script.name)
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.MULTILINE)
    return Point(server=label, connections=connections, seconds=seconds,
                 requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
                 p50_ms=_ms(latency["50"]), p90_ms=_ms(latency["90"]), p99_ms=_ms(latency["99"]),
                 errors=(int(errors[1]) if errors else 0) + (1 if socket_errors else 0))


def _lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{b:03d}" for b in data) + '"'


# -- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


class Running:
    """A server subprocess, stopped with SIGTERM (then SIGKILL) when the block ends."""

    def __init__(self, command: list[str], port: int, env: dict[str, str], cwd: Path | None = None) -> None:
        self.port = port
        self.proc = subprocess.Popen(command, env={**os.environ, **env}, cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> Running:
        try:
            wait_listening(self.port, self.proc)
        except RuntimeError as exc:
            self.__exit__()
            raise RuntimeError(f"{exc}: {self.proc.stderr.read().decode()[-3000:]}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def load_app(ref: str) -> Any:
    """mlc's V2App for one registered model, outside the CLI (for other HTTP servers to host)."""
    from mlc.config import load_settings
    from mlc.registry import Registry
    from mlc.serve.app import V2App
    from mlc.serve.dataplane import DataPlane
    from mlc.serve.metrics import MetricsBoard
    from mlc.serve.plan import ServeOptions, build_plan
    from mlc.serve.workers import layout_of
    from mlc.targets import get_target

    plan = build_plan(ServeOptions(refs=(ref,)), Registry.open(), get_target(None), load_settings())
    board = MetricsBoard(Path(tempfile.mkdtemp(prefix="bench-metrics-")), 0, layout_of(plan))
    return V2App(DataPlane.load(plan, board), plan.max_request_bytes)


def granian_app() -> Any:
    """Factory granian imports in its worker (it takes an import string, not an object)."""
    return load_app(os.environ["BENCH_REF"])


def run_aiohttp(ref: str, port: int) -> None:
    """The same data plane behind aiohttp's own server and router (infer route only)."""
    import asyncio

    import uvloop
    from aiohttp import web

    plane = load_app(ref).dataplane

    async def infer(request: web.Request) -> web.Response:
        length = request.headers.get("Inference-Header-Content-Length")
        plane.active_requests += 1  # as V2App does, so lone and overlapping requests are told apart alike
        try:
            payload, _ = await plane.infer(request.match_info["name"], None, await request.read(),
                                           int(length) if length else None, time.perf_counter_ns())
        finally:
            plane.active_requests -= 1
        return web.Response(body=payload, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v2/models/{name}/infer", infer)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def run_uvicorn(ref: str, port: int, http: str, loop: str) -> None:
    import uvicorn

    uvicorn.run(load_app(ref), host="127.0.0.1", port=port, http=http, loop=loop, log_level="warning",
                access_log=False, lifespan="on")


def run_ort_per_request(onnx_path: str, port: int) -> None:
    """Baseline: a plain uvicorn ASGI app that runs ONNX Runtime once per request, no batching."""
    import onnxruntime as ort
    import orjson
    import uvicorn

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, opts)
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        tensor = orjson.loads(body)["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        outputs = session.run(None, {input_name: x})
        reply = orjson.dumps({"model_name": "forest", "outputs": [
            {"name": n, "datatype": "FP32" if o.dtype == np.float32 else "INT64", "shape": o.shape,
             "data": o.reshape(-1)} for n, o in zip(names, outputs, strict=True)]},
            option=orjson.OPT_SERIALIZE_NUMPY)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": reply})

    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", loop="uvloop", log_level="warning",
                access_log=False)


def run_grpc_floor(port: int) -> None:
    """The transport's ceiling: a bare grpc.aio server on uvloop (as mlc serve runs it) that reads each
    ModelInfer's raw input into numpy and answers one fixed reply. No model, batcher, validation or
    metrics: what grpcio's asyncio server carries on this machine with this client, not a peer."""
    import grpc
    import uvloop
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pb_grpc

    config = pb.ModelConfigResponse(config=json_format.ParseDict(
        {**_triton_config(_ORT, 64, 0.0), "platform": "onnxruntime_onnx"}, model_config_pb2.ModelConfig()))
    tensor = pb.ModelMetadataResponse.TensorMetadata
    metadata = pb.ModelMetadataResponse(
        name="forest", versions=["1"], platform="onnxruntime_onnx",
        inputs=[tensor(name="X", datatype="FP32", shape=[-1, 20])],
        outputs=[tensor(name="label", datatype="INT64", shape=[-1]),
                 tensor(name="probabilities", datatype="FP32", shape=[-1, 2])])
    output = pb.ModelInferResponse.InferOutputTensor
    reply = pb.ModelInferResponse(
        model_name="forest", model_version="1",
        outputs=[output(name="label", datatype="INT64", shape=[1]),
                 output(name="probabilities", datatype="FP32", shape=[1, 2])],
        raw_output_contents=[np.zeros(1, np.int64).tobytes(), np.zeros(2, np.float32).tobytes()])

    class Floor(pb_grpc.GRPCInferenceServiceServicer):
        async def ServerLive(self, request: Any, context: Any) -> Any:
            return pb.ServerLiveResponse(live=True)

        async def ServerReady(self, request: Any, context: Any) -> Any:
            return pb.ServerReadyResponse(ready=True)

        async def ModelReady(self, request: Any, context: Any) -> Any:
            return pb.ModelReadyResponse(ready=True)

        async def ServerMetadata(self, request: Any, context: Any) -> Any:
            return pb.ServerMetadataResponse(name="grpc-floor", version="1")

        async def ModelMetadata(self, request: Any, context: Any) -> Any:
            return metadata

        async def ModelConfig(self, request: Any, context: Any) -> Any:
            return config

        async def ModelStatistics(self, request: Any, context: Any) -> Any:
            return pb.ModelStatisticsResponse()

        async def ModelInfer(self, request: Any, context: Any) -> Any:
            np.frombuffer(request.raw_input_contents[0], np.float32)
            return reply

    async def serve() -> None:
        server = grpc.aio.server()
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(Floor(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(serve())


def _self(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def _mlc_serve(ref: str, port: int, *flags: str) -> list[str]:
    return [sys.executable, "-c", "from mlc.cli.serve import serve_cmd; serve_cmd()", ref, "--port", str(port), *flags]


# -- output check --------------------------------------------------------------------------


def _body(rows: np.ndarray) -> bytes:
    return json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": list(rows.shape),
                                   "data": rows.ravel().tolist()}]}).encode()


def _get(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_model_ready(port: int, name: str, timeout: float = 120) -> None:
    """MLServer listens before its models have loaded; v2 readiness says when they have."""
    deadline = time.monotonic() + timeout
    while _get(port, "GET", f"/v2/models/{name}/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"model {name} not ready after {timeout}s")
        time.sleep(0.5)


def same_output(port: int, path: str, model: Any, rows: np.ndarray) -> bool:
    """Does the server's label output (`label`, or MLServer sklearn's `predict`) equal model.predict()?"""
    status, data = _get(port, "POST", path, _body(rows))
    if status != 200:
        raise RuntimeError(f"the server answered {status}: {data[:500]!r}")
    outputs = {o["name"]: o for o in json.loads(data)["outputs"]}
    got = (outputs.get("label") or outputs.get("predict") or next(iter(outputs.values())))["data"]
    return [int(v) for v in got] == model.predict(rows).astype(int).tolist()


# -- reports -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import platform

    return {"cpus": os.cpu_count(), "loadavg_1m_at_start": os.getloadavg()[0], "python": platform.python_version(),
            "platform": platform.platform(), "load_client": "wrk -t1 (closed loop, keep-alive), 127.0.0.1"}


def _start_results(name: str, title: str, meta: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """Write results/NAME.json; the Markdown page's first lines (title and conditions)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    return [f"# {title}", "", f"Machine: {meta['cpus']} CPUs ({meta['platform']}), load average at start "
            f"{meta['loadavg_1m_at_start']:.2f}; client: {meta['load_client']}.", ""]


def write(name: str, title: str, meta: dict[str, Any], points: list[Point], checks: dict[str, bool],
          notes: list[str]) -> None:
    data = {"benchmark": name, "machine": meta, "same_output": checks, "points": [asdict(p) for p in points],
            "notes": notes}
    lines = [*_start_results(name, title, meta, data),
             "| server | connections | req/s | p50 ms | p90 ms | p99 ms | errors | same output |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for p in points:
        lines.append(f"| {p.server} | {p.connections} | {p.requests_per_s:,.0f} | {p.p50_ms:.2f} | {p.p90_ms:.2f} "
                     f"| {p.p99_ms:.2f} | {p.errors} | {checks.get(p.server)} |")
    lines += ["", "Mean req/s over passes:", ""]
    for conns in sorted({p.connections for p in points}):
        means = {}
        for p in points:
            if p.connections == conns:
                means.setdefault(p.server, []).append(p.requests_per_s)
        ranked = sorted(((sum(v) / len(v), k) for k, v in means.items()), reverse=True)
        lines.append(f"- {conns} connection(s): " + "; ".join(f"{k} {m:,.0f}" for m, k in ranked))
    lines += ["", *[f"- {n}" for n in notes], ""]
    (RESULTS / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


# -- benchmarks ----------------------------------------------------------------------------


def bench_stack(seconds: float, connections: tuple[int, ...], repeats: int) -> None:
    """The same mlc app (tiny model, batching on) on each candidate HTTP stack, one process each."""
    home = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        fitted = train_models(home)
        model, rows = fitted["tiny"]
        env = {"MLC_HOME": str(home), "BENCH_REF": "tiny", "PYTHONPATH": str(HERE)}
        stacks = {
            "uvicorn+httptools+uvloop, bare ASGI (mlc serve)": lambda p: _mlc_serve("tiny", p),
            "uvicorn+h11+asyncio, bare ASGI": lambda p: _self("_uvicorn", "tiny", str(p), "h11", "asyncio"),
            "granian (Rust HTTP), bare ASGI": lambda p: [
                sys.executable, "-c", "import pathlib, sys; from granian import Granian; from granian.constants import "
                "Interfaces; Granian('bench_serve:granian_app', address='127.0.0.1', port=int(sys.argv[1]), "
                "interface=Interfaces.ASGI, factory=True, log_level='warning', websockets=False, "
                "working_dir=pathlib.Path(sys.argv[2])).serve()", str(p), str(HERE)],
            "aiohttp web (+uvloop), same data plane": lambda p: _self("_aiohttp", "tiny", str(p)),
        }
        path, one_row = "/v2/models/tiny/infer", _body(rows[:1])
        points, checks = [], {}
        for _ in range(repeats):
            for label, command in stacks.items():
                port = free_port()
                with Running(command(port), port, env):
                    checks[label] = checks.get(label, True) and same_output(port, path, model, rows)
                    for conns in connections:
                        points.append(wrk(port, path, one_row, {"Content-Type": "application/json"}, conns,
                                          seconds, label))
        write("serve_stack", "HTTP stack for mlc serve: one-row JSON inference on a 5-tree forest", machine(),
              points, checks, [
                  "Each stack hosts the same mlc data plane (decode, dynamic batcher, ONNX Runtime, encode); "
                  "only the HTTP server, event loop and routing differ. One worker process each.",
                  f"{seconds:g} s per point, {repeats} pass(es) interleaved across stacks; the machine is shared "
                  "with other jobs, so compare within a pass and treat differences under ~15% as noise.",
                  "mlc serve is built on uvicorn+httptools+uvloop with the bare ASGI app. Besides speed, uvicorn "
                  "serves pre-bound sockets (SO_REUSEPORT workers, --port 0 resolved once for all workers) and "
                  "drains in-flight requests on SIGTERM; granian binds its own sockets. The app is plain ASGI, so "
                  "a re-run that ranks another stack first by more than the noise only changes workers.py."])
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _mlserver_settings(folder: Path, port: int, home: Path, implementation: str, grpc_port: int | None = None,
                       model: dict[str, Any] | None = None) -> None:
    """An MLServer folder serving the forest; `model` adds to model-settings.json (batching, metadata)."""
    folder.mkdir(parents=True)
    grpc, metrics = grpc_port or free_port(), free_port()
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": grpc, "metrics_port": metrics, "debug": False}))
    uri = str(home / ("forest.joblib" if implementation == _SKLEARN else "forest.onnx"))
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "forest", "implementation": implementation, "parameters": {"uri": uri}, **(model or {})}))
    (folder / "ort_runtime.py").write_text(_ORT_RUNTIME)


_SKLEARN, _ORT = "mlserver_sklearn.SKLearnModel", "ort_runtime.OrtModel"


# An MLServer runtime running the same ONNX model, so the comparison isolates the server.
_ORT_RUNTIME = '''
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.codecs.numpy import to_datatype
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri


class OrtModel(MLModel):
    async def load(self) -> bool:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(await get_model_uri(self._settings), opts)
        self.input_name = self.session.get_inputs()[0].name
        self.names = [o.name for o in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        outputs = self.session.run(None, {self.input_name: x})
        # Plain outputs, without NumpyCodec's content_type parameter: Triton's HTTP client (perf_analyzer)
        # reads any output "parameters" as binary data and fails on JSON outputs that carry them.
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name=name, shape=list(value.shape), datatype=to_datatype(value.dtype),
                           data=value.ravel().tolist()) for name, value in zip(self.names, outputs)])
'''


def bench_compare(seconds: float, connections: tuple[int, ...], mlserver: str | None) -> None:
    """mlc serve vs MLServer (its sklearn runtime and an ONNX Runtime one) or, without MLServer,
    vs a plain uvicorn app that runs ONNX Runtime once per request."""
    home = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        fitted = train_models(home)
        model, rows = fitted["forest"]
        env = {"MLC_HOME": str(home)}
        path, one_row = "/v2/models/forest/infer", _body(rows[:1])
        servers: dict[str, Any] = {
            "mlc serve (1 worker)": lambda p: (_mlc_serve("forest", p), None),
            "mlc serve (2 workers)": lambda p: (_mlc_serve("forest", p, "--workers", "2"), None),
            "uvicorn + ORT per request (no batching)": lambda p: (
                _self("_ort", str(home / "forest.onnx"), str(p)), None),
        }
        if mlserver:
            for label, impl in (("MLServer 1.x, sklearn runtime", _SKLEARN),
                                ("MLServer 1.x, ONNX Runtime model", _ORT)):
                def command(p: int, impl: str = impl, label: str = label) -> tuple[list[str], Path]:
                    folder = home / f"mlserver-{p}"
                    _mlserver_settings(folder, p, home, impl)
                    return [mlserver, "start", str(folder)], folder
                servers[label] = command
        points, checks = [], {}
        for label, make in servers.items():
            print(f"-- {label}", flush=True)
            port = free_port()
            command, cwd = make(port)
            with Running(command, port, env, cwd=cwd):
                if cwd:
                    wait_model_ready(port, "forest")
                checks[label] = same_output(port, path, model, rows)
                for conns in connections:
                    points.append(wrk(port, path, one_row, {"Content-Type": "application/json"}, conns, seconds,
                                      label))
        notes = [
            "Model: the example random forest (50 trees, depth 8, 20 features, skl2onnx, zipmap off); one-row "
            "JSON requests (the latency-bound case the dynamic batcher targets).",
            "mlc serve runs with its defaults for target cpu-2 (max_batch_size 64, max_queue_delay_us 0).",
            "The per-request ORT app is a floor, not a peer: one route, no validation, limits, metrics, "
            "metadata, stats, traffic split or batching; the gap to it is what those cost per one-row request.",
            "MLServer ran from its own venv (MLServer 1.7.1 with uvloop<0.22: its inference pool fails with "
            "uvloop 0.23) with default settings (parallel inference pool, no adaptive batching).",
            f"{seconds:g} s per point; the machine is shared with other jobs, so differences under ~15% are noise.",
        ]
        if not mlserver:
            notes.append("MLServer was not available (pass --mlserver PATH/TO/venv/bin/mlserver).")
        write("serve_compare", "mlc serve vs other servers on the example random forest", machine(), points, checks,
              notes)
    finally:
        shutil.rmtree(home, ignore_errors=True)


# -- gRPC beside REST, with perf_analyzer -----------------------------------------------------


@dataclass
class PerfPoint:
    """One perf_analyzer point (its CSV: the merged stable windows); `error` when it failed."""

    server: str
    transport: str
    concurrency: int
    seconds: float
    infer_per_s: float | None
    p50_us: float | None
    p90_us: float | None
    p99_us: float | None
    error: str | None = None


def perf_analyzer_command() -> str:
    """MLC_PERF_ANALYZER, a perf_analyzer on PATH, or the wrapper .ci/perf_analyzer.sh builds (once)."""
    found = os.environ.get("MLC_PERF_ANALYZER") or shutil.which("perf_analyzer")
    if found:
        return found
    repo = HERE.parent
    out = subprocess.run(["bash", str(repo / ".ci" / "perf_analyzer.sh")], cwd=repo, capture_output=True, text=True,
                         timeout=900, check=True).stdout
    return out.strip().splitlines()[-1]


def perf_analyzer(command: str, url: str, transport: str, concurrency: int, seconds: float, label: str,
                  trials: int) -> PerfPoint:
    """One closed-loop point of `concurrency` synchronous clients, measured over windows of `seconds`.

    HTTP sends and asks for JSON tensors: MLServer reads no binary tensor extension."""
    with tempfile.TemporaryDirectory(prefix="bench-pa-") as tmp:
        out = Path(tmp) / "results.csv"
        args = [command, "-m", "forest", "-u", url, "-i", transport, "--concurrency-range", str(concurrency),
                "--measurement-interval", str(int(seconds * 1000)), "--max-trials", str(trials),
                "--stability-percentage", "100", "-f", str(out)]
        if transport == "http":
            args += ["--input-tensor-format", "json", "--output-tensor-format", "json"]
        try:
            run = subprocess.run(args, capture_output=True, text=True, timeout=seconds * (trials + 2) + 120)
        except subprocess.TimeoutExpired:
            return PerfPoint(label, transport, concurrency, seconds, None, None, None, None, "perf_analyzer timed out")
        if run.returncode or not out.exists():
            tail = (run.stdout + run.stderr).strip().splitlines()[-3:]
            return PerfPoint(label, transport, concurrency, seconds, None, None, None, None, " / ".join(tail)[-400:])
        with out.open(newline="") as handle:
            row = next(csv.DictReader(handle))
    return PerfPoint(label, transport, concurrency, seconds, float(row["Inferences/Second"]),
                     float(row["p50 latency"]), float(row["p90 latency"]), float(row["p99 latency"]))


def same_output_grpc(url: str, model: Any, rows: np.ndarray) -> bool:
    """same_output over gRPC, with Triton's own client."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    try:
        tensor = grpcclient.InferInput("X", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        result = client.infer("forest", [tensor], timeout=30)
    finally:
        client.close()
    names = [o.name for o in result.get_response().outputs]
    name = next((n for n in ("label", "predict") if n in names), names[0])
    return result.as_numpy(name).astype(int).ravel().tolist() == model.predict(rows).astype(int).tolist()


def _triton_config(implementation: str, max_batch_size: int, max_batch_time: float) -> dict[str, Any]:
    """The Triton model config perf_analyzer asks for, describing MLServer's forest (it serves none itself)."""
    outputs: list[dict[str, Any]]
    if implementation == _SKLEARN:
        outputs = [{"name": "predict", "data_type": "TYPE_INT64", "dims": [1]}]
    else:
        outputs = [{"name": "label", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []}},
                   {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [2]}]
    return {"name": "forest", "platform": "mlserver", "max_batch_size": max_batch_size,
            "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [20]}], "output": outputs,
            "dynamic_batching": {"max_queue_delay_microseconds": int(max_batch_time * 1e6)}}


def _mlserver_for_perf_analyzer(folder: Path, port: int, grpc_port: int, home: Path, implementation: str,
                                max_batch_size: int, max_batch_time: float) -> None:
    """An MLServer folder with adaptive batching on, the metadata perf_analyzer needs, and a launcher
    that adds Triton's model-config extension (REST and gRPC) to MLServer, which lacks it."""
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2, service_pb2

    metadata: dict[str, Any] = {
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 20]}],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1, 1]}] if implementation == _SKLEARN else
        [{"name": "label", "datatype": "INT64", "shape": [-1]}, {"name": "probabilities", "datatype": "FP32",
                                                                  "shape": [-1, 2]}]}
    _mlserver_settings(folder, port, home, implementation, grpc_port,
                       {"max_batch_size": max_batch_size, "max_batch_time": max_batch_time, **metadata})
    config = _triton_config(implementation, max_batch_size, max_batch_time)
    reply = service_pb2.ModelConfigResponse(config=json_format.ParseDict(config, model_config_pb2.ModelConfig()))
    (folder / "triton_config.json").write_text(json.dumps(
        {"json": json.dumps(config), "grpc": reply.SerializeToString().hex()}))
    (folder / "launch.py").write_text(_MLSERVER_LAUNCHER)


# Runs `mlserver start FOLDER` with Triton's model-config extension added: perf_analyzer reads the
# model config before it sends any load, and MLServer serves none (gRPC: "Method not found!").
# Only that route is added; MLServer's inference path is untouched.
_MLSERVER_LAUNCHER = """
import json
import sys
from pathlib import Path

import grpc
import mlserver.grpc.server as grpc_server
import mlserver.rest.server as rest_server
from fastapi.responses import Response

HERE = Path(__file__).resolve().parent
CONFIG = json.loads((HERE / "triton_config.json").read_text())
_create_server = grpc_server.GRPCServer._create_server
_create_app = rest_server.create_app


def create_server(self):
    server = _create_server(self)
    reply = bytes.fromhex(CONFIG["grpc"])

    async def model_config(request, context):
        return reply

    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelConfig": grpc.unary_unary_rpc_method_handler(model_config)}),))
    return server


def create_app(*args, **kwargs):
    app = _create_app(*args, **kwargs)
    body = CONFIG["json"].encode()

    async def model_config(model_name: str) -> Response:
        return Response(body, media_type="application/json")

    app.add_api_route("/v2/models/{model_name}/config", model_config, methods=["GET"])
    return app


grpc_server.GRPCServer._create_server = create_server
rest_server.create_app = create_app

if __name__ == "__main__":
    from mlserver.cli.main import main

    sys.argv = ["mlserver", "start", str(HERE)]
    main()
"""

_TARGET_RATIO = 5.0
_FLOOR = "bare grpc.aio (fixed reply, no model)"


def _ratios(points: list[PerfPoint]) -> list[dict[str, Any]]:
    """mlc / MLServer at c=16 and c=64, per transport: throughput ratio and whether mlc's p99 is lower."""
    got = {(p.server, p.transport, p.concurrency): p for p in points if p.infer_per_s}
    rows = []
    for (server, transport, conc), mine in got.items():
        if not server.startswith("mlc") or conc not in (16, 64):
            continue
        for (other, other_transport, other_conc), theirs in got.items():
            if other.startswith("MLServer") and (other_transport, other_conc) == (transport, conc):
                ratio = (mine.infer_per_s or 0) / (theirs.infer_per_s or 1)
                lower = (mine.p99_us or 0) < (theirs.p99_us or 0)
                rows.append({"mlc": server, "mlserver": other, "transport": transport, "concurrency": conc,
                             "throughput_ratio": round(ratio, 2), "p99_mlc_us": mine.p99_us,
                             "p99_mlserver_us": theirs.p99_us, "p99_lower": lower,
                             "target_met": ratio >= _TARGET_RATIO and lower})
    return sorted(rows, key=lambda r: (r["transport"] != "grpc", r["mlc"], r["mlserver"], r["concurrency"]))


def _ceiling_lines(points: list[PerfPoint]) -> list[str]:
    """Per concurrency: the gRPC throughput the target asks of mlc (5× the fastest MLServer runtime) set
    beside the bare grpc.aio server's, so a target above what the transport carries shows as such."""
    grpc_points = {(p.server, p.concurrency): p.infer_per_s for p in points if p.transport == "grpc" and p.infer_per_s}
    lines = []
    for conc in (16, 64):
        ceiling = grpc_points.get((_FLOOR, conc))
        theirs = {s: v for (s, c), v in grpc_points.items() if c == conc and s.startswith("MLServer")}
        if not ceiling or not theirs:
            continue
        best = max(theirs, key=lambda s: theirs[s])
        need = _TARGET_RATIO * theirs[best]
        mine = "; ".join(f"{s} {v:,.0f} ({v / ceiling:.0%} of it)" for (s, c), v in sorted(grpc_points.items())
                         if c == conc and s.startswith("mlc"))
        lines.append(f"- gRPC c={conc}: {_TARGET_RATIO:g}× {best} needs {need:,.0f} infer/s; the {_FLOOR} did "
                     f"{ceiling:,.0f}, so that target is {'above' if need > ceiling else 'within'} what the "
                     f"transport carries here. {mine}.")
    return lines


def write_perf(name: str, title: str, meta: dict[str, Any], points: list[PerfPoint], checks: dict[str, bool],
               notes: list[str]) -> None:
    ratios = _ratios(points)
    # Per mlc server and MLServer runtime: met only if both gRPC pairs (c=16 and 64) were measured and met.
    verdict = {}
    for mlc in sorted({p.server for p in points if p.server.startswith("mlc")}):
        for mlserver in sorted({p.server for p in points if p.server.startswith("MLServer")}):
            pairs = {r["concurrency"]: r["target_met"] for r in ratios
                     if (r["mlc"], r["mlserver"], r["transport"]) == (mlc, mlserver, "grpc")}
            verdict[f"{mlc} / {mlserver}"] = all(pairs.get(c, False) for c in (16, 64))
    data = {"benchmark": name, "machine": meta, "same_output": checks, "points": [asdict(p) for p in points],
            "ratios": ratios, "grpc_target_met": verdict, "notes": notes}

    def num(value: float | None, digits: int = 0) -> str:
        return "–" if value is None else f"{value:,.{digits}f}"

    lines = [*_start_results(name, title, meta, data),
             "| server | transport | concurrency | infer/s | p50 µs | p90 µs | p99 µs | same output | error |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for p in points:
        checked = checks.get(f"{p.server} / {p.transport}", "– (fixed reply)")
        lines.append(f"| {p.server} | {p.transport} | {p.concurrency} | {num(p.infer_per_s, 1)} | {num(p.p50_us)} "
                     f"| {num(p.p90_us)} | {num(p.p99_us)} | {checked} "
                     f"| {p.error or ''} |")
    lines += ["", f"mlc / MLServer (target: ≥ {_TARGET_RATIO:g}× the throughput with a lower p99, gRPC, c=16 and 64):",
              "", "| mlc | MLServer | transport | concurrency | throughput ratio | p99 mlc µs | p99 MLServer µs "
              "| p99 lower | target met |", "|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in ratios:
        lines.append(f"| {r['mlc']} | {r['mlserver']} | {r['transport']} | {r['concurrency']} "
                     f"| {r['throughput_ratio']:.2f}× | {num(r['p99_mlc_us'])} | {num(r['p99_mlserver_us'])} "
                     f"| {'yes' if r['p99_lower'] else 'no'} | {'yes' if r['target_met'] else 'no'} |")
    if not ratios:
        lines.append("| (no mlc and MLServer points at c=16 or 64 to compare) | | | | | | | | |")
    lines += ["", *[f"- gRPC target (≥ {_TARGET_RATIO:g}×, lower p99, c=16 and 64), {pair}: "
                    f"{'met' if met else 'NOT met (or not measured)'}" for pair, met in verdict.items()]]
    lines += _ceiling_lines(points)
    lines += ["", *[f"- {n}" for n in notes], ""]
    (RESULTS / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


def bench_grpc(seconds: float, concurrencies: tuple[int, ...], mlserver: str, max_batch_size: int,
               max_batch_time: float, trials: int, only: str | None) -> None:
    """perf_analyzer -i grpc and -i http, one row per request, against mlc serve (1 and 2 workers) and
    MLServer 1.7 with adaptive batching (its sklearn runtime and the same ONNX model in ORT)."""
    command = perf_analyzer_command()
    mlserver_python = str(Path(mlserver).with_name("python"))
    home = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        fitted = train_models(home)
        model, rows = fitted["forest"]
        env = {"MLC_HOME": str(home)}
        Launch = Callable[[int, int], tuple[list[str], Path | None]]
        servers: dict[str, Launch] = {
            "mlc serve (1 worker)": lambda p, g: (_mlc_serve("forest", p, "--grpc-port", str(g)), None),
            "mlc serve (2 workers)": lambda p, g: (_mlc_serve("forest", p, "--grpc-port", str(g), "--workers", "2"),
                                                   None),
        }
        for label, impl in (("MLServer 1.7, sklearn runtime", _SKLEARN), ("MLServer 1.7, ONNX Runtime model", _ORT)):
            def launch(p: int, g: int, impl: str = impl) -> tuple[list[str], Path | None]:
                folder = home / f"mlserver-{p}"
                _mlserver_for_perf_analyzer(folder, p, g, home, impl, max_batch_size, max_batch_time)
                return [mlserver_python, str(folder / "launch.py")], folder
            servers[label] = launch
        servers[_FLOOR] = lambda p, g: (_self("_grpc_floor", str(g)), None)
        if only:
            servers = {k: v for k, v in servers.items() if only.lower() in k.lower()}
        points: list[PerfPoint] = []
        checks: dict[str, bool] = {}
        for label, make in servers.items():
            print(f"-- {label}", flush=True)
            port, grpc_port = free_port(), free_port()
            args, cwd = make(port, grpc_port)
            floor = label == _FLOOR  # gRPC only, and a fixed reply: nothing to check
            with Running(args, grpc_port if floor else port, env, cwd=cwd) as running:
                wait_listening(grpc_port, running.proc)
                if not floor:
                    wait_model_ready(port, "forest")
                    checks[f"{label} / http"] = same_output(port, "/v2/models/forest/infer", model, rows)
                    checks[f"{label} / grpc"] = same_output_grpc(f"127.0.0.1:{grpc_port}", model, rows)
                # Triton's HTTP client reads any output "parameters" as binary data, and MLServer's sklearn
                # runtime always sends content_type there: perf_analyzer -i http cannot read its answers.
                transports = ("grpc",) if floor or (cwd and label.endswith("sklearn runtime")) else ("grpc", "http")
                for transport in transports:
                    url = f"127.0.0.1:{grpc_port if transport == 'grpc' else port}"
                    for conc in concurrencies:
                        point = perf_analyzer(command, url, transport, conc, seconds, label, trials)
                        print(f"   {transport} c={conc}: {point.infer_per_s} infer/s, p99 {point.p99_us} µs"
                              f"{' ' + point.error if point.error else ''}", flush=True)
                        points.append(point)
        notes = [
            "Model: the example random forest (50 trees, depth 8, 20 features, skl2onnx, zipmap off); one row per "
            "request (perf_analyzer -b 1), random FP32 inputs.",
            f"Load: perf_analyzer (Triton's, service kind triton) -i grpc, and -i http with JSON tensors both ways "
            f"(MLServer reads no binary tensor extension), synchronous clients at --concurrency-range "
            f"{', '.join(map(str, concurrencies))} one at a time; --measurement-interval {int(seconds * 1000)} ms, "
            f"--stability-percentage 100, --max-trials {trials}: each figure merges perf_analyzer's last three "
            f"{seconds:g} s windows (about {3 * seconds:g} s of load per point).",
            "mlc serve: defaults for target cpu-2 (max_batch_size 64, max_queue_delay_us 0), 1 worker and "
            "--workers 2, REST and --grpc-port in the same process(es).",
            f"MLServer 1.7.1 from its own venv ({mlserver}; uvloop<0.22) with default server settings "
            f"(parallel_workers 1: one inference process beside the front end) and adaptive batching on in "
            f"model-settings.json, as its docs advise: max_batch_size {max_batch_size} (requests), max_batch_time "
            f"{max_batch_time:g} s. Its docs give no values (\"found through experimentation\"); re-run with "
            "--mlserver-max-batch-size / --mlserver-max-batch-time to try others.",
            "MLServer serves no Triton model config, which perf_analyzer reads before any load (gRPC: 'Method not "
            "found!'); it runs through a launcher that adds GET /v2/models/forest/config and the ModelConfig RPC, "
            "returning a fixed answer, and declares the model's inputs and outputs in model-settings.json. Its "
            "inference path is untouched. The ONNX Runtime model returns plain outputs (no content_type "
            "parameter); the sklearn runtime's REST answers always carry one, which Triton's HTTP client "
            "misreads as binary data, so it has gRPC rows only.",
            "Every server's labels were checked against the model's predict() on 64 rows over both transports "
            "before timing (same output), except the bare grpc.aio server's, a fixed reply.",
            f"{_FLOOR}: no model, batcher, validation or metrics; it reads the raw input into numpy and returns "
            "one prebuilt ModelInferResponse, on uvloop as mlc serve runs grpc.aio. It bounds what grpcio's asyncio "
            "server carries here with this client; it is not a peer.",
            "The machine is shared with other jobs and perf_analyzer shares its CPUs; differences under ~15% are "
            "noise.",
        ]
        meta = {**machine(), "load_client": f"perf_analyzer ({command}), 127.0.0.1"}
        write_perf("serve_grpc", "mlc serve vs MLServer over gRPC (and REST), perf_analyzer, example random forest",
                   meta, points, checks, notes)
    finally:
        shutil.rmtree(home, ignore_errors=True)


# A probe loaded into each server through sitecustomize: the duration of every full (generation 2)
# collection, written when the process exits, so the tail can be set beside the collector's pauses.
_GC_PROBE = """
import atexit, gc, json, os, time
_start, _pauses = [0.0], []
def _probe(phase, info):
    if info["generation"] != 2:
        return
    if phase == "start":
        _start[0] = time.perf_counter()
    else:
        _pauses.append((time.perf_counter() - _start[0]) * 1e3)
gc.callbacks.append(_probe)
atexit.register(lambda: open(os.path.join(os.environ["BENCH_GC_DIR"], f"{os.getpid()}.json"), "w").write(
    json.dumps(_pauses)))
"""


def _worktree(rev: str, dest: Path) -> Path:
    """`rev`'s src/ checked out in `dest`, with this checkout's compiled extension copied in (the
    extension's sources must be the same at both revisions: checked), to run as PYTHONPATH."""
    repo = HERE.parent
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(dest), rev], check=True,
                   capture_output=True)
    changed = subprocess.run(["git", "-C", str(repo), "diff", "--name-only", rev, "--", "csrc", "setup.py"],
                             check=True, capture_output=True, text=True).stdout.split()
    if changed:
        raise SystemExit(f"the compiled extension differs between {rev} and the working tree ({changed}): "
                         "build it there instead")
    for built in (repo / "src").rglob("*.so"):
        target = dest / built.relative_to(repo)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, target)
    return dest / "src"


def bench_tail(seconds: float, connections: int, passes: int, before: str) -> None:
    """One worker under many connections: this tree against `before` (a git revision), interleaved."""
    home = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    old_src = None
    try:
        fitted = train_models(home)
        model, rows = fitted["forest"]
        old_src = _worktree(before, home / "before")
        probe = home / "probe"
        probe.mkdir()
        (probe / "sitecustomize.py").write_text(_GC_PROBE)
        variants = {f"1 worker, {before}": str(old_src), "1 worker, this tree": None, "2 workers, this tree": None}
        path, one_row = "/v2/models/forest/infer", _body(rows[:1])
        points, checks, pauses = [], {}, {}
        for _ in range(passes):
            for label, src in variants.items():
                gc_dir = home / "gc" / f"{len(points)}"
                gc_dir.mkdir(parents=True)
                env = {"MLC_HOME": str(home), "BENCH_GC_DIR": str(gc_dir),
                       "PYTHONPATH": os.pathsep.join(p for p in (src, str(probe)) if p)}
                flags = ("--workers", "2") if label.startswith("2") else ()
                port = free_port()
                with Running(_mlc_serve("forest", port, *flags), port, env):
                    checks[label] = checks.get(label, True) and same_output(port, path, model, rows)
                    wrk(port, path, one_row, {"Content-Type": "application/json"}, connections, 2, label)  # warm-up
                    point = wrk(port, path, one_row, {"Content-Type": "application/json"}, connections, seconds,
                                label)
                    points.append(point)
                    print(f"{label}: {point.requests_per_s:,.0f} req/s, p50 {point.p50_ms:.2f} ms, "
                          f"p99 {point.p99_ms:.2f} ms", flush=True)
                for recorded in gc_dir.glob("*.json"):
                    pauses.setdefault(label, []).extend(json.loads(recorded.read_text()))
        notes = [f"Model: the example random forest (50 trees, depth 8, 20 features); one-row JSON requests; "
                 f"{connections} keep-alive connections; {seconds:g} s per point after a 2 s warm-up; {passes} "
                 f"passes, the variants interleaved in each; {before} runs from a git worktree of that "
                 "revision with this tree's compiled extension (unchanged between them).",
                 "Full garbage collections seen in each server (all of its life: loading, warm-up and load), "
                 "longest and median pause in ms: " + "; ".join(
                     f"{label}: {len(v)} collections, max {max(v):.1f}, median {statistics.median(v):.1f}"
                     for label, v in pauses.items() if v)]
        summary = []
        for label in variants:
            mine = [p for p in points if p.server == label]
            p50 = statistics.median(p.p50_ms for p in mine)
            p99 = statistics.median(p.p99_ms for p in mine)
            rps = statistics.median(p.requests_per_s for p in mine)
            summary.append(f"{label}: median req/s {rps:,.0f}, p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
                           f"p99/p50 {p99 / p50:.2f}")
        notes.append("Medians over passes: " + "; ".join(summary))
        write("serve_tail", f"mlc serve with one worker at {connections} connections: the tail, before and after",
              machine(), points, checks, notes)
    finally:
        if old_src is not None:
            subprocess.run(["git", "-C", str(HERE.parent), "worktree", "remove", "--force", str(old_src.parent)],
                           capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    stack = sub.add_parser("stack", help="compare HTTP stacks hosting the mlc app")
    compare = sub.add_parser("compare", help="mlc serve vs MLServer / a plain per-request server")
    grpc = sub.add_parser("grpc", help="perf_analyzer over gRPC and REST: mlc serve vs MLServer with adaptive batching")
    tail = sub.add_parser("tail", help="one worker at many connections: this tree vs a git revision")
    tail.add_argument("--before", required=True, help="the git revision to compare with (e.g. HEAD~1)")
    tail.add_argument("--seconds", type=int, default=10)
    tail.add_argument("--connections", type=int, default=64)
    tail.add_argument("--passes", type=int, default=3)
    for p in (stack, compare):
        p.add_argument("--seconds", type=int, default=5)
        p.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    stack.add_argument("--repeats", type=int, default=2)
    compare.add_argument("--mlserver", help="the mlserver executable of a separate venv with mlserver-sklearn")
    grpc.add_argument("--mlserver", required=True,
                      help="the mlserver executable of a separate venv with mlserver 1.7.1, mlserver-sklearn 1.7.1, "
                           "onnxruntime and uvloop<0.22")
    grpc.add_argument("--seconds", type=float, default=5, help="perf_analyzer's measurement window")
    grpc.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    grpc.add_argument("--max-trials", type=int, default=6, help="perf_analyzer windows at most per point")
    grpc.add_argument("--mlserver-max-batch-size", type=int, default=64)
    grpc.add_argument("--mlserver-max-batch-time", type=float, default=0.001, help="seconds")
    grpc.add_argument("--only", help="servers whose label contains this (e.g. 'mlc', 'MLServer')")
    for name, nargs in (("_uvicorn", 4), ("_aiohttp", 2), ("_ort", 2), ("_grpc_floor", 1)):
        sub.add_parser(name).add_argument("args", nargs=nargs)
    args = parser.parse_args()
    if args.command == "stack":
        bench_stack(args.seconds, tuple(args.connections), args.repeats)
    elif args.command == "compare":
        bench_compare(args.seconds, tuple(args.connections), args.mlserver)
    elif args.command == "grpc":
        bench_grpc(args.seconds, tuple(args.concurrency), args.mlserver, args.mlserver_max_batch_size,
                   args.mlserver_max_batch_time, args.max_trials, args.only)
    elif args.command == "tail":
        bench_tail(args.seconds, args.connections, args.passes, args.before)
    elif args.command == "_uvicorn":
        run_uvicorn(args.args[0], int(args.args[1]), args.args[2], args.args[3])
    elif args.command == "_aiohttp":
        run_aiohttp(args.args[0], int(args.args[1]))
    elif args.command == "_ort":
        run_ort_per_request(args.args[0], int(args.args[1]))
    elif args.command == "_grpc_floor":
        run_grpc_floor(int(args.args[0]))


if __name__ == "__main__":
    main()
