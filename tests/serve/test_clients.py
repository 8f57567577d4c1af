"""Clients nobody here wrote: Triton's Python HTTP client (sync and asyncio) and perf_analyzer."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .conftest import N_FEATURES

httpclient = pytest.importorskip("tritonclient.http")
aioclient = pytest.importorskip("tritonclient.http.aio")

ROWS = np.random.default_rng(3).normal(size=(7, N_FEATURES)).astype(np.float32)


def _inputs(module, binary: bool):
    tensor = module.InferInput("X", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS, binary_data=binary)
    return [tensor]


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_sync_gets_the_models_own_outputs(server, models, binary):
    client = httpclient.InferenceServerClient(server.url)
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
        assert client.get_model_metadata("iris")["platform"] == "onnxruntime_onnx"
        assert client.get_model_config("iris")["max_batch_size"] == 64
        outputs = [httpclient.InferRequestedOutput("label", binary_data=binary),
                   httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
        result = client.infer("iris", _inputs(httpclient, binary), model_version="2", outputs=outputs)
        np.testing.assert_array_equal(result.as_numpy("label"), models["iris2"].predict(ROWS))
        np.testing.assert_allclose(result.as_numpy("probabilities"), models["iris2"].predict_proba(ROWS), atol=1e-5)
        assert result.get_response()["model_version"] == "2"
        # No outputs named: the client asks for every output in binary.
        every = client.infer("iris", _inputs(httpclient, binary), model_version="1")
        np.testing.assert_array_equal(every.as_numpy("label"), models["iris1"].predict(ROWS))
        stats = client.get_inference_statistics("iris", "2")["model_stats"][0]
        assert stats["inference_count"] >= len(ROWS)
    finally:
        client.close()


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_class_count_gets_the_top_classes(server, models, binary):
    """Triton's classification extension through its own client: "value:index:label", best first."""
    client = httpclient.InferenceServerClient(server.url)
    try:
        assert "classification" in client.get_server_metadata()["extensions"]
        outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary, class_count=2)]
        result = client.infer("iris", _inputs(httpclient, binary), model_version="2", outputs=outputs)
        top = result.as_numpy("probabilities")
    finally:
        client.close()
    proba = models["iris2"].predict_proba(ROWS)
    assert top.shape == (len(ROWS), 2)
    texts = [[t.decode() if isinstance(t, bytes) else t for t in row] for row in top]  # JSON gives str
    for row, (first, second) in enumerate(texts):
        value, index, label = first.split(":")
        assert int(index) == int(label) == int(np.argmax(proba[row]))  # iris's classes are 0, 1, 2
        assert abs(float(value) - proba[row].max()) < 1e-5
        assert float(second.split(":")[0]) <= float(value)


def test_tritonclient_reports_the_servers_error_message(server):
    client = httpclient.InferenceServerClient(server.url)
    try:
        bad = httpclient.InferInput("nope", list(ROWS.shape), "FP32")
        bad.set_data_from_numpy(ROWS)
        with pytest.raises(Exception, match="one input named 'X'"):
            client.infer("iris", [bad])
    finally:
        client.close()


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_aio_gets_the_models_own_outputs(server, models, binary):
    """The asyncio client sends no Content-Type header; the server must not need one."""

    async def run() -> None:
        client = aioclient.InferenceServerClient(server.url)
        try:
            assert await client.is_model_ready("iris", "1")
            outputs = [aioclient.InferRequestedOutput("label", binary_data=binary),
                       aioclient.InferRequestedOutput("probabilities", binary_data=binary)]
            results = await asyncio.gather(*(
                client.infer("iris", _inputs(aioclient, binary), model_version="1", outputs=outputs)
                for _ in range(8)))
            for result in results:
                np.testing.assert_array_equal(result.as_numpy("label"), models["iris1"].predict(ROWS))
                np.testing.assert_allclose(result.as_numpy("probabilities"), models["iris1"].predict_proba(ROWS),
                                           atol=1e-5)
        finally:
            await client.close()

    asyncio.run(run())


def _perf_analyzer() -> list[str]:
    """The perf_analyzer command, or a skip saying exactly why it cannot run here.

    MLC_PERF_ANALYZER may name a wrapper (e.g. one that runs the binary with a newer glibc).
    """
    command = os.environ.get("MLC_PERF_ANALYZER") or shutil.which("perf_analyzer")
    if not command:
        pytest.skip("perf_analyzer is not installed: the perf-analyzer wheels on PyPI are manylinux_2_38 "
                    "(glibc 2.38, GLIBCXX_3.4.32); set MLC_PERF_ANALYZER to a runnable one")
    probe = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=60)
    if "GLIBC" in probe.stderr or "not found" in probe.stderr:
        pytest.skip(f"perf_analyzer cannot run on this machine: {probe.stderr.strip()[:300]}")
    return [command]


def perf_analyzer_measures(command: list[str], url: str, protocol: str, out: Path) -> None:
    """Run perf_analyzer at concurrency 1 and 2 against `url` and check that it measured both.

    These tests check that Triton's own load tool works against mlc, not that this machine is quiet:
    `--stability-percentage 999` takes any 3 windows within 10x of each other as stable (at 100, a busy
    CI machine failed to stabilize within 4 windows), and up to 10 windows are allowed.
    """
    result = subprocess.run(
        [*command, "-m", "iris", "-u", url, "-i", protocol, "--concurrency-range", "1:2",
         "--measurement-interval", "500", "--max-trials", "10", "--stability-percentage", "999", "-f", str(out)],
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Throughput" in result.stdout and "infer/sec" in result.stdout
    rows = out.read_text().splitlines()
    assert rows[0].startswith("Concurrency") and len(rows) == 3


@pytest.mark.slow
def test_perf_analyzer_measures_mlc_serve(start_server, tmp_path):
    command = _perf_analyzer()
    srv = start_server("iris:1")
    perf_analyzer_measures(command, srv.url, "http", tmp_path / "perf.csv")
