"""Tree ensembles rewritten as standard tensor operations, for GPU targets.

ONNX Runtime has no CUDA kernel for the TreeEnsemble operators: on a GPU target a
converted forest silently runs on the CPU. mlc.trees.tensorize_tree_ensemble emits
Hummingbird's strategies (GEMM, tree traversal) as standard ONNX ops that do run on
the GPU. Declared lossless: the comparisons and sums are the same float32 math; on
GPUs with TF32 matrix math the GEMM strategy may not be, and parity (checked on the
GPU itself) then rejects it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlc.convert.graph import has_trees
from mlc.passes.base import Artifact, Pass, PassConfig, register_pass
from mlc.targets import HardwareTarget


@dataclass(frozen=True)
class TensorizeConfig(PassConfig):
    strategy: str = "tree_traversal"


@register_pass
class TensorizeTrees(Pass[TensorizeConfig]):
    name = "tensorize-trees"
    lossy = False
    Config = TensorizeConfig

    def applies(self, artifact: Artifact, target: HardwareTarget) -> str | None:
        if not target.is_gpu:
            return "tree operators run natively on the CPU; tensorizing pays on GPUs"
        if artifact.engine != "ort":
            return f"engine {artifact.engine} does not run the ONNX graph"
        if not has_trees(artifact.proto):
            return "no tree ensemble in the graph"
        return None

    def run(self, artifact: Artifact, target: HardwareTarget) -> Artifact:
        from mlc.trees import tensorize_tree_ensemble

        model = tensorize_tree_ensemble(artifact.proto, self.config.strategy)
        return artifact.derive(self.step(), onnx_bytes=model.SerializeToString())
