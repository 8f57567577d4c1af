"""int8 quantization of MatMul/Gemm weights: dynamic (no data needed) and static QDQ (calibrated on real rows).

Lossy. Only the MatMul/Gemm nodes are quantized: skl2onnx graphs mix in ai.onnx.ml
operators (Scaler, LinearClassifier, TreeEnsemble) that have no int8 kernels and
that the quantizer cannot type. Two repairs make ORT's quantizer accept skl2onnx
output: one opset import per domain (done at conversion, see convert.graph.normalize),
and a default tensor type for values produced by ai.onnx.ml ops, which ONNX shape
inference leaves untyped ("Unable to find data type for weight_name"). ORT's
pre-processing (basic graph optimization, e.g. MatMul+Add → Gemm, then shape inference)
runs first, without its symbolic shape inference (which needs sympy and knows no
ai.onnx.ml ops). The quantizer reports through the root logger (and would configure
it); those messages are held back while it runs.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from onnx import TensorProto

from mlc.convert.graph import input_names, matmul_weight_count
from mlc.errors import UsageError
from mlc.passes.base import Artifact, Pass, PassConfig, register_pass
from mlc.targets import HardwareTarget

# Below this many weights the quantize/dequantize overhead outweighs any gain.
MIN_WEIGHTS = 1024
_OPS = ["MatMul", "Gemm"]
_EXTRA = {"DefaultTensorType": TensorProto.FLOAT, "MatMulConstBOnly": True}


def _quantizable(artifact: Artifact, target: HardwareTarget, min_weights: int) -> str | None:
    if target.is_gpu:
        return "int8 kernels run on the CPU execution provider only"
    if artifact.engine != "ort":
        return f"engine {artifact.engine} does not run the ONNX graph"
    if any(step.name.startswith("quantize") for step in artifact.steps):
        return "already quantized"
    weights = matmul_weight_count(artifact.proto)
    if weights == 0 or weights < min_weights:
        return f"MatMul/Gemm weights hold {weights} values (< {max(min_weights, 1)}): nothing worth quantizing"
    return None


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Hold back the quantizer's root-logger warnings without letting it install a handler."""
    root = logging.getLogger()
    guard = logging.NullHandler()
    level = root.level
    root.addHandler(guard)  # with a handler present, logging.warning() does not call basicConfig()
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
        root.removeHandler(guard)


def _preprocessed(artifact: Artifact, folder: Path) -> Path:
    """The graph after ORT's quantization pre-processing, written under `folder`."""
    import onnxruntime as ort
    from onnxruntime.quantization import quant_pre_process

    from mlc.runtime.session import available_providers

    optimized, ready = folder / "optimized.onnx", folder / "pre.onnx"
    opts = artifact.session.with_(graph_optimization_level="basic").session_options()
    opts.optimized_model_filepath = str(optimized)
    ort.InferenceSession(artifact.onnx_bytes, sess_options=opts,
                         providers=list(available_providers(artifact.session.providers)))
    quant_pre_process(optimized, ready, skip_optimization=True, skip_symbolic_shape=True)
    return ready


@dataclass(frozen=True)
class QuantizeDynamicConfig(PassConfig):
    per_channel: bool = False
    reduce_range: bool = False
    min_weights: int = MIN_WEIGHTS


@register_pass
class QuantizeDynamic(Pass[QuantizeDynamicConfig]):
    name = "quantize-dynamic"
    lossy = True
    Config = QuantizeDynamicConfig

    def applies(self, artifact: Artifact, target: HardwareTarget) -> str | None:
        return _quantizable(artifact, target, self.config.min_weights)

    def run(self, artifact: Artifact, target: HardwareTarget) -> Artifact:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(prefix="mlc-quant-") as tmp, _quiet_root_logger():
            src, dst = _preprocessed(artifact, Path(tmp)), Path(tmp) / "out.onnx"
            quantize_dynamic(src, dst, op_types_to_quantize=_OPS, per_channel=self.config.per_channel,
                             reduce_range=self.config.reduce_range, weight_type=QuantType.QInt8,
                             extra_options=dict(_EXTRA))
            return artifact.derive(self.step(), onnx_bytes=dst.read_bytes())


@dataclass(frozen=True)
class QuantizeStaticConfig(PassConfig):
    per_channel: bool = False
    min_weights: int = MIN_WEIGHTS
    # Calibration rows (the user's --data); kept out of the recorded config.
    calibration: np.ndarray | None = field(default=None, compare=False, repr=False)
    max_calibration_rows: int = 1024

    def to_dict(self) -> dict[str, Any]:
        rows = 0 if self.calibration is None else min(len(self.calibration), self.max_calibration_rows)
        return {"per_channel": self.per_channel, "min_weights": self.min_weights, "calibration_rows": rows}


class _Rows:
    """ORT's CalibrationDataReader protocol over an array, in batches of 64 rows."""

    def __init__(self, name: str, rows: np.ndarray) -> None:
        self._batches: Iterator[np.ndarray] = iter(np.array_split(rows, max(1, len(rows) // 64)))
        self._name = name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._name: np.ascontiguousarray(batch, dtype=np.float32)}


@register_pass
class QuantizeStatic(Pass[QuantizeStaticConfig]):
    name = "quantize-static"
    lossy = True
    Config = QuantizeStaticConfig

    def applies(self, artifact: Artifact, target: HardwareTarget) -> str | None:
        if self.config.calibration is None:
            return "static quantization calibrates on real rows: pass --data"
        return _quantizable(artifact, target, self.config.min_weights)

    def run(self, artifact: Artifact, target: HardwareTarget) -> Artifact:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        if self.config.calibration is None:
            raise UsageError("static quantization needs calibration rows", "pass --data with real rows")
        rows = self.config.calibration[: self.config.max_calibration_rows]
        with tempfile.TemporaryDirectory(prefix="mlc-quant-") as tmp, _quiet_root_logger():
            src, dst = _preprocessed(artifact, Path(tmp)), Path(tmp) / "out.onnx"
            quantize_static(src, dst, _Rows(input_names(artifact.proto)[0], rows),
                            quant_format=QuantFormat.QDQ, op_types_to_quantize=_OPS,
                            per_channel=self.config.per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                            extra_options=dict(_EXTRA))
            return artifact.derive(self.step(), onnx_bytes=dst.read_bytes())
