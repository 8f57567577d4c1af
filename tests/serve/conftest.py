"""Tiny models in a throwaway registry, and real `mlc serve` processes on free loopback ports.

Models are trained once per session (a few dozen rows, shallow trees), converted with
skl2onnx (zipmap off, as mlc's converters do) and registered into a tmp MLC_HOME that every
server of the session reads. Each server is a real subprocess, always stopped afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeRegressor

from mlc.registry import Registry
from mlc.signature import Signature, TensorSpec, tabular
from tests.zoo import failing_model

N_FEATURES = 4
_LISTENING = re.compile(r"listening on https?://([\d.]+):(\d+)")


def _classifier(seed: int) -> tuple[bytes, RandomForestClassifier]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    model = RandomForestClassifier(n_estimators=3 + seed, max_depth=3, random_state=seed).fit(x, y)
    onx = to_onnx(model, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    return onx.SerializeToString(), model


def _regressor() -> bytes:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, N_FEATURES)).astype(np.float32)
    model = DecisionTreeRegressor(max_depth=3, random_state=0).fit(x, x[:, 0] * 2.0)
    return to_onnx(model, x[:1], target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString()


@pytest.fixture(scope="session")
def models() -> dict[str, Any]:
    """Fitted sklearn models by name, to compare served outputs against their own predictions."""
    return {"iris1": _classifier(1)[1], "iris2": _classifier(2)[1]}


@pytest.fixture(scope="session")
def mlc_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with: iris:1, iris:2 (ONNX forests), reg:1 (ONNX tree regressor), boom:1 (raises
    on some inputs), legacy:1 (a pickled sklearn model, never compiled)."""
    home = tmp_path_factory.mktemp("mlc-home")
    reg = Registry(home)
    sig = tabular(N_FEATURES, task="classification", classes=[0, 1, 2])
    for seed in (1, 2):
        reg.register("iris", _classifier(seed)[0], format="onnx", framework="sklearn", signature=sig)
    reg.register("reg", _regressor(), format="onnx", framework="sklearn",
                 signature=tabular(N_FEATURES, task="regression"))
    reg.register("boom", failing_model(), format="onnx", framework="onnx", signature=Signature(
        inputs=(TensorSpec("x", "float32", (None, 2)),), outputs=(TensorSpec("y", "float32", (None,)),)))
    reg.register("legacy", pickle.dumps(_classifier(3)[1]), format="pickle", framework="sklearn", signature=sig)
    return home


class Server:
    """A running `mlc serve` subprocess; `stop()` sends SIGTERM and returns its exit code."""

    def __init__(self, args: list[str], home: Path, env: dict[str, str] | None = None) -> None:
        self.output: list[str] = []
        self._listening = threading.Event()
        full_env = {**os.environ, "MLC_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from mlc.cli.serve import serve_cmd; serve_cmd()", *args, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
        self.host, self.port = "", 0
        threading.Thread(target=self._pump, daemon=True).start()
        # Output ending without the listening line means it exited, even if it is not reaped yet.
        if not self._listening.wait(180) or self.proc.poll() is not None or not self.port:
            self.stop()
            raise RuntimeError("mlc serve did not start:\n" + "".join(self.output))

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            match = _LISTENING.search(line)
            if match and not self._listening.is_set():
                self.host, self.port = match[1], int(match[2])
                self._listening.set()
        self._listening.set()

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def request(self, method: str, path: str, body: bytes | dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = self.connection()
        try:
            payload = json.dumps(body).encode() if isinstance(body, dict) else body
            conn.request(method, path, body=payload, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: bytes | dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture()
def start_server(mlc_home: Path) -> Iterator[Any]:
    """start_server(*args, env=None, home=None) -> Server; every server started is stopped after the test."""
    started: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None, home: Path | None = None) -> Server:
        server = Server(list(args), home or mlc_home, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture()
def private_home(mlc_home: Path, tmp_path: Path) -> Path:
    """A copy of the session registry that a test may change (deployments, new versions)."""
    copy = tmp_path / "home"
    shutil.copytree(mlc_home, copy)
    return copy


@pytest.fixture(scope="module")
def server(mlc_home: Path) -> Iterator[Server]:
    """One shared server for the read-mostly tests: iris (v1 and v2), reg and boom."""
    srv = Server(["iris:1", "iris:2", "reg", "boom", "--max-queue-delay-us", "200"], mlc_home)
    yield srv
    srv.stop()


def infer_body(x: np.ndarray, name: str = "X", datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": list(x.shape), "data": x.ravel().tolist()}],
            **extra}


def listening_workers(server_pid: int, port: int) -> list[Any]:
    """The server's child processes listening on `port` (psutil.Process each). A child that exits while it
    is being looked at (a worker just killed, or its replacement not yet listening) is not one of them."""
    import psutil

    workers = []
    for child in psutil.Process(server_pid).children():
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in child.net_connections()):
                workers.append(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return workers


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
