"""ONNX Runtime's graph optimizations, applied once and saved, so sessions start from the result.

Lossless (constant folding, fusions). The saved level is "extended", not "all":
an offline-saved "all" graph holds layout transforms for the CPU it was saved on
(NCHWc, specific kernels) and may not run, or run well, elsewhere. Sessions still
apply "all" at load time on the serving machine. The level and ORT version used
are recorded, since a saved graph may use ops of that ORT's contrib domain.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlc.convert.graph import TREE_OPS
from mlc.passes.base import Artifact, Pass, PassConfig, register_pass
from mlc.targets import HardwareTarget


@dataclass(frozen=True)
class GraphOptimizationConfig(PassConfig):
    level: str = "extended"


@register_pass
class GraphOptimization(Pass[GraphOptimizationConfig]):
    name = "ort-graph-opt"
    lossy = False
    Config = GraphOptimizationConfig

    def applies(self, artifact: Artifact, target: HardwareTarget) -> str | None:
        if artifact.engine != "ort":
            return f"engine {artifact.engine} does not run the ONNX graph"
        if self.config.level not in ("basic", "extended"):
            return f"level {self.config.level!r} is not portable across machines; use basic or extended"
        if artifact.op_types <= TREE_OPS | {"Identity", "Cast"}:
            return "the graph is a tree ensemble alone: nothing to fuse"
        return None

    def run(self, artifact: Artifact, target: HardwareTarget) -> Artifact:
        import onnxruntime as ort

        from mlc.runtime.session import available_providers

        config = artifact.session.with_(graph_optimization_level=self.config.level)
        opts = config.session_options()
        with tempfile.TemporaryDirectory(prefix="mlc-graph-opt-") as tmp:
            path = Path(tmp) / "optimized.onnx"
            opts.optimized_model_filepath = str(path)
            ort.InferenceSession(artifact.onnx_bytes, sess_options=opts,
                                 providers=list(available_providers(artifact.session.providers)))
            optimized = path.read_bytes()
        return artifact.derive(self.step(level=self.config.level, ort_version=ort.__version__),
                               onnx_bytes=optimized)
