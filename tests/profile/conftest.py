"""Tiny models, trained once per session and registered into a throw-away registry per test module."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier

from mlc.profile.server import free_port, is_ready

STUB = Path(__file__).with_name("v2_stub.py")


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-tree, depth-3 forest on 4 float32 features, 40 rows, as ONNX without ZipMap."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    model = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    path.write_bytes(to_onnx(model, x[:1], options={"zipmap": False}).SerializeToString())
    return path


@pytest.fixture()
def registry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mlc-home"
    monkeypatch.setenv("MLC_HOME", str(home))
    return home


@pytest.fixture()
def tiny_ref(registry_home: Path, tiny_onnx: Path) -> str:
    from mlc.registry import Registry

    return Registry.open().register_file(tiny_onnx, "tiny").ref


@pytest.fixture()
def stub_server():
    """A KServe v2 stub answering in ~1 ms, for http-mode tests that need no `mlc serve`."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(STUB), str(port), "1"])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not is_ready(url):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("the v2 stub server did not start")
        time.sleep(0.05)
    yield url
    proc.kill()
    proc.wait()
