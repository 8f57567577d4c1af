"""The "mlc-trees" engine: tree ensembles run by mlc's compiled (numba) kernel instead of ORT.

Lossless (same float32 comparisons, same sums) and CPU only. The graph is kept as
it is: the runtime compiles the kernel from it, so the registered artifact stays a
plain ONNX file that ORT can also run. Its win is per-call overhead and cache-friendly
traversal, which shows most at small batches; the runtime plan may use it for
small batches only and ORT above.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlc.convert.graph import has_trees
from mlc.passes.base import Artifact, Pass, PassConfig, register_pass
from mlc.targets import HardwareTarget


@dataclass(frozen=True)
class TreeKernelConfig(PassConfig):
    n_threads: int = 1


@register_pass
class TreeKernel(Pass[TreeKernelConfig]):
    name = "mlc-trees"
    lossy = False
    Config = TreeKernelConfig

    def applies(self, artifact: Artifact, target: HardwareTarget) -> str | None:
        if target.is_gpu:
            return "the tree kernel runs on the CPU"
        if artifact.engine != "ort" or artifact.passes:
            return "the tree kernel compiles the converted graph itself"
        if not has_trees(artifact.proto):
            return "no tree ensemble in the graph"
        if self.config.n_threads > target.cores:
            return f"{self.config.n_threads} threads exceed the target's {target.cores} cores"
        from mlc.trees import supports_tree_ensemble

        if not supports_tree_ensemble(artifact.proto):
            return "the tree kernel does not support this graph's operators or attributes"
        return None

    def run(self, artifact: Artifact, target: HardwareTarget) -> Artifact:
        return artifact.derive(self.step(), engine="mlc-trees", engine_options={"n_threads": self.config.n_threads})
