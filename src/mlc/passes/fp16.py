"""float16 weights and arithmetic for GPU targets, with float32 inputs and outputs kept.

Lossy (half precision) and only for GPUs: CPUs have few fast fp16 kernels, so ORT
would insert casts around slower kernels. ai.onnx.ml operators stay in float32
(the converter's default block list), so only the tensor math changes. The converter
is onnxruntime.transformers' (onnxconverter-common's leaves skl2onnx's Cast nodes
casting to float32 ahead of float16 MatMuls, an invalid graph).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlc.convert.graph import MATMUL_OPS
from mlc.passes.base import Artifact, Pass, PassConfig, register_pass
from mlc.targets import HardwareTarget


@dataclass(frozen=True)
class Float16Config(PassConfig):
    keep_io_types: bool = True


@register_pass
class Float16(Pass[Float16Config]):
    name = "fp16"
    lossy = True
    Config = Float16Config

    def applies(self, artifact: Artifact, target: HardwareTarget) -> str | None:
        if not target.is_gpu:
            return "fp16 pays only on GPU targets"
        if artifact.engine != "ort":
            return f"engine {artifact.engine} does not run the ONNX graph"
        if not artifact.op_types & MATMUL_OPS:
            return "no MatMul/Gemm: nothing computes in float16"
        return None

    def run(self, artifact: Artifact, target: HardwareTarget) -> Artifact:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(artifact.proto, keep_io_types=self.config.keep_io_types)
        return artifact.derive(self.step(), onnx_bytes=model.SerializeToString())
