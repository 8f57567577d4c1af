"""The Python-backend export served by a real tritonserver, answered through tritonclient.

nvidia-pytriton's wheel bundles a tritonserver with the Python backend only, which is what the
export of a tree-kernel plan needs. It runs from a separate environment (`.ci/triton_env.sh`
makes it: pytriton, mlc editable, numpy<2 for the backend's stub); point MLC_TRITON_PYTHON at
that environment's python to run this test, which skips with the reason otherwise:

    MLC_TRITON_PYTHON=$(bash .ci/triton_env.sh) python -m pytest tests/deploy/test_tritonserver.py
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from mlc.deploy import package
from tests.deploy.conftest import forest

ENV = "MLC_TRITON_PYTHON"
READY_BOUND_S = 180  # a bound on a failing start, not a timing: a healthy server is ready well before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _triton_python() -> Path:
    python = os.environ.get(ENV)
    if not python:
        pytest.skip(f"no tritonserver here: set {ENV}=$(bash .ci/triton_env.sh) to run Triton's Python backend")
    path = Path(python)
    if not path.is_file():
        pytest.fail(f"{ENV}={python} is not a file")
    return path


def _server_dir(python: Path, dest: Path) -> tuple[Path, Path]:
    """tritonserver and its backends copied out of pytriton's package, with the Python backend's stub for
    that environment's Python version (as pytriton itself prepares it); (server dir, its bundled libs)."""
    found = subprocess.run([str(python), "-c", "import pathlib, sys, pytriton; p = pathlib.Path(pytriton.__file__)"
                            ".parent; print(p); print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                           capture_output=True, text=True, check=True).stdout.split()
    package_dir, version = Path(found[0]), found[1]
    server = dest / "tritonserver"
    shutil.copytree(package_dir / "tritonserver", server, ignore=shutil.ignore_patterns("python_backend_stubs"))
    shutil.copy(package_dir / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub",
                server / "backends" / "python" / "triton_python_backend_stub")
    return server, package_dir.parent / "nvidia_pytriton.libs"


@pytest.fixture()
def tritonserver(registry, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """tritonserver on the Python-backend export of iris:2; (HTTP url, gRPC url)."""
    python = _triton_python()
    package("iris:2", "triton", tmp_path / "repo", registry=registry)
    server, libs = _server_dir(python, tmp_path)
    http, grpc, metrics = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}",
           "LD_LIBRARY_PATH": os.pathsep.join(p for p in (str(libs), os.environ.get("LD_LIBRARY_PATH")) if p)}
    log = (tmp_path / "tritonserver.log").open("w")
    proc = subprocess.Popen([str(server / "bin" / "tritonserver"), "--model-repository", str(tmp_path / "repo"),
                             "--backend-directory", str(server / "backends"),
                             "--cache-directory", str(server / "caches"), "--http-address", "127.0.0.1",
                             "--http-port", str(http), "--grpc-address", "127.0.0.1", "--grpc-port", str(grpc),
                             "--metrics-port", str(metrics), "--exit-on-error", "true"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
    try:
        deadline = time.monotonic() + READY_BOUND_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tritonserver exited ({proc.returncode}):\n{(tmp_path / 'tritonserver.log').read_text()}")
            try:
                if client.is_model_ready("iris", "2"):
                    break
            except Exception:  # not listening yet
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tritonserver not ready:\n{(tmp_path / 'tritonserver.log').read_text()}")
            time.sleep(0.2)
        yield f"127.0.0.1:{http}", f"127.0.0.1:{grpc}"
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_tritonserver_serves_the_python_backend_export_with_the_models_outputs(tritonserver) -> None:
    http_url, grpc_url = tritonserver
    _, sk, x = forest()
    for module, url in ((httpclient, http_url), (grpcclient, grpc_url)):
        client = module.InferenceServerClient(url)
        config = client.get_model_config("iris", "2")  # a dict over HTTP, a ModelConfigResponse over gRPC
        assert (config.config.backend if module is grpcclient else config["backend"]) == "python"
        for rows in (x[:1], x):  # one row, then every row in one request
            tensor = module.InferInput("X", list(rows.shape), "FP32")
            tensor.set_data_from_numpy(rows)
            result = client.infer("iris", [tensor], model_version="2")
            np.testing.assert_array_equal(result.as_numpy("label").reshape(-1), sk.predict(rows))
            np.testing.assert_allclose(result.as_numpy("probabilities"), sk.predict_proba(rows), atol=1e-5)
        client.close()
