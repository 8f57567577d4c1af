"""GPU code paths on a real CUDA execution provider; skipped, with the reason, everywhere else.

The parity of every GPU pass is also tested on the CPU (tests/trees, tests/passes); these tests
check what only a GPU shows: placement on CUDA, I/O binding, and parity on the device itself
(TF32 matrix math and fp16 change results there and nowhere else).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

if hasattr(ort, "preload_dlls"):
    ort.preload_dlls()

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                       reason="no CUDAExecutionProvider: install mlc[gpu] on a machine with an NVIDIA GPU"),
]


_TREE_MATH = {"MatMul", "Gemm", "Gather", "GatherElements", "GatherND", "Less", "LessOrEqual", "Greater",
              "GreaterOrEqual", "Equal", "Where", "Add", "Mul", "ReduceSum", "Softmax", "Sigmoid", "ArgMax"}


@pytest.fixture(scope="module")
def forest():
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=600, n_features=12, n_informative=6, n_classes=3, random_state=0)
    x = x.astype(np.float32)
    return RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(x, y), x


def _converted(model, x):
    from skl2onnx import to_onnx

    return to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})


@pytest.mark.parametrize("strategy", ["tree_traversal", "gemm"])
def test_tensorized_forest_runs_on_cuda_with_parity_on_the_device(forest, strategy):
    from mlc.runtime.scorer import Scorer
    from mlc.trees import tensorize_tree_ensemble

    model, x = forest
    onx = tensorize_tree_ensemble(_converted(model, x), strategy)
    scorer = Scorer(onx, target="gpu")
    assert scorer.on_gpu and scorer.cuda_graphs  # every node on CUDA: launches replayed as a graph
    for rows in (x[:1], x[:37], x):  # 37 rows pad to the 64-row bucket; padding must not leak out
        out = scorer.predict(rows)
        np.testing.assert_allclose(out["probabilities"], model.predict_proba(rows), atol=1e-4)
        assert out["label"].shape == (len(rows),)
        assert (out["label"] == model.predict(rows)).mean() > 0.995


def test_tensorized_graph_has_no_node_left_on_the_cpu(forest, tmp_path):
    from mlc.trees import tensorize_tree_ensemble

    model, x = forest
    onx = tensorize_tree_ensemble(_converted(model, x), "tree_traversal")
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp_path / "prof")
    sess = ort.InferenceSession(onx.SerializeToString(), opts, providers=["CUDAExecutionProvider"])
    sess.run(None, {sess.get_inputs()[0].name: x[:256]})
    events = json.loads(Path(sess.end_profiling()).read_text())
    placed = {(e["args"]["op_name"], e["args"]["provider"]) for e in events
              if e.get("cat") == "Node" and "provider" in e.get("args", {})}
    # ORT may keep tiny shape arithmetic on the CPU; the tree math itself must be on the GPU.
    on_cpu = {op for op, provider in placed if provider == "CPUExecutionProvider"}
    assert not on_cpu & _TREE_MATH, placed
    assert any(provider == "CUDAExecutionProvider" for _, provider in placed), placed


def test_optimize_for_the_gpu_target_validates_tensorized_candidates_on_the_device(forest, tmp_path, monkeypatch):
    import joblib

    from mlc.optimize import optimize
    from mlc.registry import Registry

    monkeypatch.setenv("MLC_HOME", str(tmp_path / "home"))
    model, x = forest
    path = tmp_path / "forest.joblib"
    joblib.dump(model, path)
    result = optimize(path, target="gpu", data=x[:512], batch_sizes=(1, 4096), registry=Registry.open())
    out = os.environ.get("OUT")
    if out:  # on the device machine: keep the report for the benchmark record
        Path(out, "optimize_gpu.md").write_text(result.to_markdown())
    tensorized = [c for c in result.candidates if "tensorize-trees" in c.chain]
    assert tensorized, [c.label for c in result.candidates]
    assert any(c.parity is not None and c.parity.passed and 4096 in c.latency for c in tensorized), \
        [(c.label, c.status, c.reason) for c in tensorized]
    assert Registry.open().get(result.winner).source.target == "gpu-h100"
