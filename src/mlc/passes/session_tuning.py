"""ONNX Runtime session options for the target: threads, execution mode, spinning.

Lossless: the graph is untouched. One thread avoids synchronization at small
batches; more threads pay off on big ones; spinning trades idle CPU for wake-up
latency; the parallel execution mode only helps graphs with independent branches.
`grid` proposes the settings worth timing on a target; the optimizer times them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlc.convert.graph import MATMUL_OPS, TREE_OPS
from mlc.passes.base import Artifact, Pass, PassConfig, register_pass
from mlc.targets import HardwareTarget

# Ops heavy enough that running two of them at once can pay for ORT's parallel executor.
_HEAVY_OPS = MATMUL_OPS | TREE_OPS | {"Conv", "LinearClassifier", "LinearRegressor"}


@dataclass(frozen=True)
class SessionTuningConfig(PassConfig):
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    execution_mode: str = "sequential"
    allow_spinning: bool = True

    def label(self) -> str:
        mode = "par" if self.execution_mode == "parallel" else "seq"
        spin = "spin" if self.allow_spinning else "nospin"
        return f"{self.intra_op_threads}x{self.inter_op_threads} {mode} {spin}"


@register_pass
class SessionTuning(Pass[SessionTuningConfig]):
    name = "session-tuning"
    lossy = False
    Config = SessionTuningConfig
    tunes_session = True

    def applies(self, artifact: Artifact, target: HardwareTarget) -> str | None:
        if artifact.engine != "ort":
            return f"engine {artifact.engine} has no ONNX Runtime session"
        if self.config.intra_op_threads * self.config.inter_op_threads > max(target.cores, 1) * 2:
            return f"asks for more threads than the target's {target.cores} cores"
        return None

    def run(self, artifact: Artifact, target: HardwareTarget) -> Artifact:
        c = self.config
        session = artifact.session.with_(intra_op_threads=c.intra_op_threads, inter_op_threads=c.inter_op_threads,
                                         execution_mode=c.execution_mode, allow_spinning=c.allow_spinning)
        return artifact.derive(self.step(), session=session)


def grid(artifact: Artifact, target: HardwareTarget) -> list[SessionTuningConfig]:
    """The session settings worth timing for this graph on this target, simplest first."""
    if target.is_gpu:
        # The GPU does the work; host threads only feed it.
        return [SessionTuningConfig()]
    cores = max(1, target.cores)
    threads = sorted({1, cores} | ({cores // 2} if cores >= 4 else set()))
    configs = [SessionTuningConfig(intra_op_threads=t) for t in threads]
    configs += [SessionTuningConfig(intra_op_threads=t, allow_spinning=False) for t in threads if t > 1]
    branches = _parallel_branches(artifact)
    if cores > 1 and branches > 1:
        configs.append(SessionTuningConfig(inter_op_threads=min(cores, branches), execution_mode="parallel"))
    return configs


def _parallel_branches(artifact: Artifact) -> int:
    """How many heavy nodes sit at the same depth of the graph (could run concurrently)."""
    depth: dict[str, int] = {}
    per_level: dict[int, int] = {}
    for node in artifact.proto.graph.node:  # ONNX nodes are topologically sorted
        level = 1 + max((depth.get(i, 0) for i in node.input), default=0)
        for out in node.output:
            depth[out] = level
        if node.op_type in _HEAVY_OPS:
            per_level[level] = per_level.get(level, 0) + 1
    return max(per_level.values(), default=0)
