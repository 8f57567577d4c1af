"""Triton exports: configs that Triton's own protobuf reads, matching the ONNX file as ONNX Runtime
loads it; the batching of the recorded profile; the Python backend where the plan needs mlc's engines."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from mlc.deploy import PackageOptions, package
from mlc.deploy.triton import TRITON_TYPES

from .conftest import forest


def _config(path: Path) -> mc.ModelConfig:
    config = text_format.Parse(path.read_text(), mc.ModelConfig())
    again = text_format.Parse(text_format.MessageToString(config), mc.ModelConfig())
    assert again == config  # round-trips
    return config


def _matches_onnx(config: mc.ModelConfig, onnx_path: Path) -> None:
    """Names, types and dims as Triton would check them against the file ONNX Runtime loads."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for declared, actual in ((config.input, session.get_inputs()), (config.output, session.get_outputs())):
        assert [t.name for t in declared] == [a.name for a in actual]
        for t, a in zip(declared, actual, strict=True):
            assert mc.DataType.Name(t.data_type) == TRITON_TYPES[a.type]
            model_dims = list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)
            expected = [d if isinstance(d, int) else -1 for d in a.shape[1:]] if config.max_batch_size \
                else [d if isinstance(d, int) else -1 for d in a.shape]
            assert model_dims == expected


def test_plain_version_is_an_onnxruntime_model_with_the_targets_defaults(registry, tmp_path):
    result = package("iris:1", "triton", tmp_path / "repo", registry=registry)
    repo = tmp_path / "repo"
    assert (repo / "iris" / "1" / "model.onnx").read_bytes() == registry.artifact_path("iris:1").read_bytes()
    config = _config(repo / "iris" / "config.pbtxt")
    assert config.platform == "onnxruntime_onnx" and config.name == "iris"
    assert config.max_batch_size == 64  # the cpu default, as mlc serve would use
    assert "the target's defaults" in (repo / "iris" / "config.pbtxt").read_text()
    _matches_onnx(config, repo / "iris" / "1" / "model.onnx")
    assert "Not measured" in (repo / "README.md").read_text() and not result.notes


def test_profiled_version_carries_the_measured_batching_and_instances(registry, tmp_path):
    package("iris:3", "triton", tmp_path / "repo", target="cpu-8", registry=registry)
    config = _config(tmp_path / "repo" / "iris" / "config.pbtxt")
    assert config.max_batch_size == 64
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert [(g.count, mc.ModelInstanceGroup.Kind.Name(g.kind)) for g in config.instance_group] == [(8, "KIND_CPU")]
    assert config.parameters["intra_op_thread_count"].string_value == "1"
    _matches_onnx(config, tmp_path / "repo" / "iris" / "3" / "model.onnx")
    readme = (tmp_path / "repo" / "README.md").read_text()
    assert "Measured by `mlc profile`" in readme and "in-process" in readme and "Extrapolated" in readme


def test_a_tree_kernel_plan_exports_the_python_backend_or_plain_onnx_on_request(registry, tmp_path):
    result = package("iris:2", "triton", tmp_path / "py", registry=registry)
    config = _config(tmp_path / "py" / "iris" / "config.pbtxt")
    assert config.backend == "python" and not config.platform
    assert (tmp_path / "py" / "iris" / "2" / "model.py").is_file() and "mlc-trees" in result.notes[0]
    _matches_onnx(config, tmp_path / "py" / "iris" / "2" / "model.onnx")

    plain = package("iris:2", "triton", tmp_path / "onnx", options=PackageOptions(engine="onnx"), registry=registry)
    assert _config(tmp_path / "onnx" / "iris" / "config.pbtxt").platform == "onnxruntime_onnx"
    assert not (tmp_path / "onnx" / "iris" / "2" / "model.py").exists()
    assert "--engine onnx" in plain.notes[0]  # the note of the speed given up (none recorded here, said so)


def _stand_in_pb_utils() -> types.ModuleType:
    """The few names of Triton's triton_python_backend_utils that model.py uses (that module exists
    only inside tritonserver's Python backend stub)."""
    pb = types.ModuleType("triton_python_backend_utils")

    class Tensor:
        def __init__(self, name: str, array: np.ndarray) -> None:
            self._name, self._array = name, array

        def name(self) -> str:
            return self._name

        def as_numpy(self) -> np.ndarray:
            return self._array

    class InferenceResponse:
        def __init__(self, output_tensors: list[Tensor]) -> None:
            self.output_tensors = output_tensors

    pb.Tensor = Tensor  # type: ignore[attr-defined]
    pb.InferenceResponse = InferenceResponse  # type: ignore[attr-defined]
    pb.TritonModelException = RuntimeError  # type: ignore[attr-defined]
    pb.get_input_tensor_by_name = lambda request, name: next(  # type: ignore[attr-defined]
        t for t in request if t.name() == name)
    return pb


def test_the_python_backend_model_scores_batched_requests_as_the_original(registry, tmp_path, monkeypatch):
    """model.py run with its recorded tree-kernel plan, three requests in one execute, against
    scikit-learn; Triton itself is not installed here (see the README's note on this test)."""
    package("iris:2", "triton", tmp_path / "py", registry=registry)
    pb = _stand_in_pb_utils()
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", pb)
    spec = importlib.util.spec_from_file_location("exported_model", tmp_path / "py" / "iris" / "2" / "model.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    model.initialize({"model_repository": str(tmp_path / "py" / "iris"), "model_version": "2"})
    assert "mlc-trees" in [engine for engine, _ in model.scorer.engines]
    _, sk, x = forest()
    requests = [[pb.Tensor("X", x[:1])], [pb.Tensor("X", x[1:20])], [pb.Tensor("X", x[20:])]]
    responses = model.execute(requests)
    labels = np.concatenate([next(t.as_numpy() for t in r.output_tensors if t.name() == "label") for r in responses])
    probs = np.concatenate([next(t.as_numpy() for t in r.output_tensors if t.name() == "probabilities")
                            for r in responses])
    assert [len(next(iter(r.output_tensors)).as_numpy()) for r in responses] == [1, 19, 40]
    np.testing.assert_array_equal(labels, sk.predict(x))
    np.testing.assert_allclose(probs, sk.predict_proba(x), atol=1e-5)

    plan = json.loads((tmp_path / "py" / "iris" / "2" / "mlc_plan.json").read_text())
    (tmp_path / "py" / "iris" / "2" / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(RuntimeError, match=plan["ref"]):
        module.TritonPythonModel().initialize({"model_repository": str(tmp_path / "py" / "iris"), "model_version": "2"})


def test_a_package_is_never_written_into_an_existing_folder(registry, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.txt").write_text("x")
    from mlc.errors import UsageError

    with pytest.raises(UsageError, match="not an empty folder"):
        package("iris:1", "triton", tmp_path / "used", registry=registry)
