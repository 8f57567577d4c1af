"""Measure mlc serve over loopback HTTP: which HTTP stack to build on, and how it compares.

    python benchmarks/bench_serve.py stack    # same app on uvicorn / granian / aiohttp -> results/serve_stack.*
    python benchmarks/bench_serve.py compare  # mlc serve vs MLServer (or a plain per-request ORT app)
                                              #   on the example random forest -> results/serve_compare.*

Load comes from wrk (Debian's `wrk`; closed loop, fixed connections, one thread) for a fixed
number of seconds per point, against 127.0.0.1 only, so every run is short and bounded.
Every server's answer is checked against the model's own predictions before it is timed: a
fast wrong answer is not a result. The machine is shared and small; the JSON records its
cores and load average so a reader can judge the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
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
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.MULTILINE))
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


def write(name: str, title: str, meta: dict[str, Any], points: list[Point], checks: dict[str, bool],
          notes: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "machine": meta, "same_output": checks, "points": [asdict(p) for p in points],
            "notes": notes}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [f"# {title}", "", f"Machine: {meta['cpus']} CPUs ({meta['platform']}), load average at start "
             f"{meta['loadavg_1m_at_start']:.2f}; client: {meta['load_client']}.", "",
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


def _mlserver_settings(folder: Path, port: int, home: Path, implementation: str) -> None:
    folder.mkdir(parents=True)
    grpc, metrics = free_port(), free_port()
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": grpc, "metrics_port": metrics, "debug": False}))
    uri = str(home / ("forest.joblib" if implementation == "mlserver_sklearn.SKLearnModel" else "forest.onnx"))
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "forest", "implementation": implementation, "parameters": {"uri": uri}}))
    (folder / "ort_runtime.py").write_text(_ORT_RUNTIME)


# An MLServer runtime running the same ONNX model, so the comparison isolates the server.
_ORT_RUNTIME = '''
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
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
        return InferenceResponse(model_name=self.name, outputs=[
            NumpyCodec.encode_output(name, value) for name, value in zip(self.names, outputs)])
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
            for label, impl in (("MLServer 1.x, sklearn runtime", "mlserver_sklearn.SKLearnModel"),
                                ("MLServer 1.x, ONNX Runtime model", "ort_runtime.OrtModel")):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    stack = sub.add_parser("stack", help="compare HTTP stacks hosting the mlc app")
    compare = sub.add_parser("compare", help="mlc serve vs MLServer / a plain per-request server")
    for p in (stack, compare):
        p.add_argument("--seconds", type=int, default=5)
        p.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    stack.add_argument("--repeats", type=int, default=2)
    compare.add_argument("--mlserver", help="the mlserver executable of a separate venv with mlserver-sklearn")
    for name, nargs in (("_uvicorn", 4), ("_aiohttp", 2), ("_ort", 2)):
        sub.add_parser(name).add_argument("args", nargs=nargs)
    args = parser.parse_args()
    if args.command == "stack":
        bench_stack(args.seconds, tuple(args.connections), args.repeats)
    elif args.command == "compare":
        bench_compare(args.seconds, tuple(args.connections), args.mlserver)
    elif args.command == "_uvicorn":
        run_uvicorn(args.args[0], int(args.args[1]), args.args[2], args.args[3])
    elif args.command == "_aiohttp":
        run_aiohttp(args.args[0], int(args.args[1]))
    elif args.command == "_ort":
        run_ort_per_request(args.args[0], int(args.args[1]))


if __name__ == "__main__":
    main()
