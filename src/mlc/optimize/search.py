"""The candidate space of a search and the choice of a winner among measured candidates.

Candidates are pass chains (built-in ones for the target, plus one chain per pass
registered by a plugin) crossed with the session settings worth timing. A winner
is a *plan*: one candidate, or two that share the same ONNX bytes with one engine
for small batches and the other above (the tree kernel's per-call overhead is low,
ORT's threads win on big batches). Among plans that pass parity and are nowhere
slower than the plain conversion, the fastest by geometric mean over batch sizes
wins; plans within TIE of it go to the simplest (lossless before lossy, one engine
before two, fewer passes, fewer threads).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlc.optimize.validate import ParityReport
from mlc.passes import all_passes
from mlc.passes.base import Artifact, Pass
from mlc.passes.fold_linear import FoldLinear
from mlc.passes.fp16 import Float16
from mlc.passes.graph_opt import GraphOptimization
from mlc.passes.quantize import QuantizeDynamic, QuantizeDynamicConfig, QuantizeStatic, QuantizeStaticConfig
from mlc.passes.session_tuning import SessionTuning, SessionTuningConfig, grid
from mlc.passes.tensorize import TensorizeConfig, TensorizeTrees
from mlc.passes.tree_kernel import TreeKernel, TreeKernelConfig
from mlc.registry.records import NATIVE, TREES, EngineChoice, RuntimeRecord
from mlc.targets import HardwareTarget
from mlc.timing import Latency

# Plans whose geometric-mean latency is within this share of the best count as tied.
TIE = 0.03

MEASURED, NOT_APPLICABLE, FAILED_PARITY, ERROR = "measured", "not applicable", "failed parity", "error"
_BUILT_IN = frozenset({"fold-linear", "fp16", "ort-graph-opt", "quantize-dynamic", "quantize-static", "session-tuning",
                       "tensorize-trees", "mlc-trees"})


@dataclass(eq=False)  # identity: two candidates with equal figures are still two candidates
class Candidate:
    id: str
    chain: tuple[str, ...]  # pass names after conversion, session tuning excluded
    artifact: Artifact | None = None
    status: str = MEASURED
    reason: str = ""
    parity: ParityReport | None = None
    latency: dict[int, Latency] = field(default_factory=dict)
    plain: bool = False  # the converter's output with the target's default session: the reference

    @property
    def engine(self) -> str:
        return self.artifact.engine if self.artifact else "ort"

    @property
    def label(self) -> str:
        chain = " → ".join(self.chain) or "plain conversion"
        if self.artifact is None:
            return chain
        if self.artifact.engine == "mlc-trees":
            n = int(self.artifact.engine_options.get("n_threads", 1))
            return f"mlc-trees kernel [{n} thread{'s' if n > 1 else ''}]"
        if self.artifact.engine == NATIVE:
            return f"native {self.artifact.engine_options.get('call', 'predict')} [the original model]"
        s = self.artifact.session
        mode = "parallel" if s.execution_mode == "parallel" else "sequential"
        spin = "spinning" if s.allow_spinning else "no spinning"
        return f"{chain} [ORT {s.intra_op_threads}x{s.inter_op_threads} threads, {mode}, {spin}]"

    @property
    def lossy(self) -> bool:
        return bool(self.artifact and self.artifact.lossy)

    @property
    def threads(self) -> int:
        if self.artifact is None:
            return 0
        if self.artifact.engine == "mlc-trees":
            return int(self.artifact.engine_options.get("n_threads", 1))
        if self.artifact.engine == NATIVE:
            return 0  # the framework's own threading, not ours to set
        return self.artifact.session.intra_op_threads * self.artifact.session.inter_op_threads

    @property
    def passed(self) -> bool:
        return self.status == MEASURED and self.parity is not None and self.parity.passed

    def to_dict(self, native: dict[int, Latency] | None = None) -> dict[str, Any]:
        a = self.artifact
        return {
            "id": self.id,
            "label": self.label,
            "chain": list(self.chain),
            "engine": self.engine,
            "lossy": self.lossy,
            "session": a.session.to_dict() if a and a.engine == "ort" else None,
            "engine_options": ({k: v for k, v in a.engine_options.items() if k != "path"} if a else {}),
            "status": self.status,
            "reason": self.reason,
            "parity": self.parity.to_dict() if self.parity else None,
            "latency": {str(b): lat.to_dict() for b, lat in self.latency.items()},
            "speedup_vs_native": {
                str(b): round(native[b].median_us / lat.median_us, 3)
                for b, lat in self.latency.items() if native and b in native and lat.median_us > 0
            },
        }


TREE_STRATEGIES = ("gemm", "tree_traversal", "auto")


def chain_templates(target: HardwareTarget, calibration: np.ndarray | None,
                    tree_strategy: str | None = None) -> list[tuple[Pass, ...]]:
    """The pass chains to try on a target, simplest first; session tuning is crossed in later.

    On GPUs both tensorization strategies are measured and the faster wins, unless the user
    forces one (`tree_strategy`; "auto" picks by tree depth and batch size without measuring).
    """
    if target.is_gpu:
        strategies = (tree_strategy,) if tree_strategy else ("tree_traversal", "gemm")
        chains: list[tuple[Pass, ...]] = [
            (), (GraphOptimization(),), (FoldLinear(),), (Float16(),),
            *((TensorizeTrees(TensorizeConfig(s)),) for s in strategies),
            (TensorizeTrees(TensorizeConfig(strategies[0])), Float16()),
        ]
    else:
        chains = [
            (), (GraphOptimization(),), (FoldLinear(),),
            (QuantizeDynamic(),), (QuantizeDynamic(QuantizeDynamicConfig(per_channel=True)),),
            (QuantizeStatic(QuantizeStaticConfig(calibration=calibration)),),
            (TreeKernel(),),
        ]
        # The parallel kernel only where cores are to spare: one stays for the server and the
        # batcher. On 2 cores its worker threads fight them and its latency turns bimodal
        # (median 0.3 ms, p99 8 ms for a forest at batch 1024, measured here).
        spare = min(target.cores, os.cpu_count() or 1) - 1
        if spare > 1:
            chains.append((TreeKernel(TreeKernelConfig(n_threads=spare)),))
    # Passes registered by plugins get a chain of their own, with their default config.
    chains += [(cls(),) for name, cls in all_passes().items() if name not in _BUILT_IN]
    return chains


def session_variants(artifact: Artifact, target: HardwareTarget) -> list[tuple[SessionTuningConfig, bool]]:
    """Session settings to cross with an ORT artifact, each with whether it is the target's default."""
    if artifact.engine != "ort":
        return []
    default = artifact.session
    variants = []
    for config in grid(artifact, target):
        # On a GPU no variant is the default session (its grid has one host thread), so no
        # candidate is "plain" and choose() applies no never-slower-than-plain filter: a GPU plan
        # is chosen on its score over the target's batch sizes. That is deliberate: a tensorized
        # forest is ~4x slower than the plain graph for one row and ~30x faster at 65,536 rows
        # (benchmarks/results/gpu.md); the filter would keep the plain graph on every GPU.
        is_default = (config.intra_op_threads == default.intra_op_threads
                      and config.inter_op_threads == default.inter_op_threads
                      and config.execution_mode == default.execution_mode
                      and config.allow_spinning == default.allow_spinning)
        variants.append((config, is_default))
    return variants


def with_session(artifact: Artifact, config: SessionTuningConfig, target: HardwareTarget) -> Artifact:
    return SessionTuning(config).run(artifact, target)


# ---- choosing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Which candidate serves which batch sizes: parts in ascending max_rows, the last unbounded."""

    parts: tuple[tuple[Candidate, int | None], ...]
    # Where the original model serves every size: the fastest ONNX candidate that passed parity,
    # whose graph the version holds (for exports and engines that need one).
    graph: Candidate | None = None

    def candidate_at(self, batch: int) -> Candidate:
        for candidate, max_rows in self.parts:
            if max_rows is None or batch <= max_rows:
                return candidate
        return self.parts[-1][0]

    def latency(self, batch: int) -> float:
        return self.candidate_at(batch).latency[batch].median_us

    def score(self, batch_sizes: Sequence[int]) -> float:
        return math.exp(sum(math.log(max(self.latency(b), 1e-3)) for b in batch_sizes) / len(batch_sizes))

    @property
    def candidates(self) -> list[Candidate]:
        return [c for c, _ in self.parts]

    @property
    def primary(self) -> Candidate:
        """The part whose artifact and session are recorded: the ORT one when there are two, else
        the one that is not native (native runs the parent's file; the version still holds an ONNX)."""
        return next((c for c in self.candidates if c.engine == "ort"),
                    next((c for c in self.candidates if c.engine != NATIVE), self.graph or self.parts[0][0]))

    def complexity(self) -> tuple[int, int, int, int]:
        cands = self.candidates
        return (int(any(c.lossy for c in cands)), len(cands), max(len(c.chain) for c in cands),
                sum(c.threads for c in cands))

    def describe(self) -> str:
        if len(self.parts) == 1:
            return self.parts[0][0].label
        (small, rows), (large, _) = self.parts
        return f"{small.label} up to {rows} rows, {large.label} above"

    def runtime(self) -> RuntimeRecord:
        """The runtime plan recorded in the winner's source, which the Scorer serves it with."""
        engines = tuple(EngineChoice(c.engine, max_rows, c.threads if c.engine == TREES else None)
                        for c, max_rows in self.parts)
        session = self.primary.artifact.session.to_dict() if self.primary.artifact else None
        native = next((str(c.artifact.engine_options["ref"]) for c in self.candidates
                       if c.engine == NATIVE and c.artifact is not None), None)
        return RuntimeRecord(session, engines, native=native)

    def native_sizes(self, batch_sizes: Sequence[int]) -> list[int]:
        """The batch sizes this plan leaves to the original model."""
        return [b for b in batch_sizes if self.candidate_at(b).engine == NATIVE]


def plans(candidates: Sequence[Candidate], batch_sizes: Sequence[int]) -> list[Plan]:
    """Every single-candidate plan, and every split between two engines over the same ONNX bytes."""
    ok = [c for c in candidates if c.passed and all(b in c.latency for b in batch_sizes)]
    out = [Plan(((c, None),)) for c in ok]
    sizes = sorted(batch_sizes)
    for small in ok:
        for large in ok:
            if (small.engine == large.engine or small.artifact is None or large.artifact is None
                    # two engines over one graph, or the original beside any graph (it needs none)
                    or (small.artifact.digest != large.artifact.digest and NATIVE not in (small.engine, large.engine))):
                continue
            for i in range(1, len(sizes)):
                out.append(Plan(((small, sizes[i - 1]), (large, None))))
    return out


def choose(candidates: Sequence[Candidate], batch_sizes: Sequence[int], *, allow_lossy: bool = True) -> Plan | None:
    """The winning plan, or None when no candidate passed parity (and, without `allow_lossy`,
    none of the lossless ones: a lossy candidate is then measured and reported, never chosen)."""
    options = plans([c for c in candidates if allow_lossy or not c.lossy], batch_sizes)
    if not options:
        return None
    # Nowhere slower than the original model itself nor than the plain conversion; failing both,
    # nowhere slower than the original; failing that, than the plain conversion.
    native = next((c for c in candidates if c.engine == NATIVE and c.passed), None)
    plain = next((c for c in candidates if c.plain and c.passed), None)
    references = [r for r in (native, plain) if r is not None and all(b in r.latency for b in batch_sizes)]

    def nowhere_slower(plan: Plan, refs: Sequence[Candidate]) -> bool:
        return all(plan.latency(b) <= r.latency[b].median_us * (1 + TIE) for r in refs for b in batch_sizes)

    for refs in (references, references[:1], references[1:]):
        kept = [p for p in options if nowhere_slower(p, refs)] if refs else []
        if kept:
            options = kept
            break
    best = min(p.score(batch_sizes) for p in options)
    tied = [p for p in options if p.score(batch_sizes) <= best * (1 + TIE)]
    return min(tied, key=lambda p: (p.complexity(), p.score(batch_sizes)))


def lossy_reason(candidate: Candidate, winner: Plan | None, batch_sizes: Sequence[int]) -> str:
    """Why a lossy candidate that passed its tolerance was not chosen, with what it would have gained."""
    head = "lossy: chosen only with --allow-lossy"
    if winner is None:
        return head
    gains = {b: winner.latency(b) / candidate.latency[b].median_us for b in batch_sizes}
    best = max(gains, key=lambda b: gains[b])
    if gains[best] <= 1 + TIE:
        return f"{head} (and no faster than the winner)"
    return f"{head}; would have been {gains[best]:.2f}x the winner's speed at batch {best}"


def loss_reason(candidate: Candidate, winner: Plan, batch_sizes: Sequence[int],
                reference: Candidate | None) -> str:
    """Why a measured, passing candidate lost to the winner, in numbers."""
    ratios = {b: candidate.latency[b].median_us / winner.latency(b) for b in batch_sizes}
    worst = max(ratios, key=lambda b: ratios[b])
    if reference is not None and reference is not candidate:
        behind = {b: candidate.latency[b].median_us / reference.latency[b].median_us for b in batch_sizes}
        b = max(behind, key=lambda k: behind[k])
        if behind[b] > 1 + TIE:
            return f"slower than the plain conversion with default session ({reference.id}) by {behind[b] - 1:.0%} " \
                f"at batch {b}"
    if ratios[worst] <= 1 + TIE:
        return "tied with the winner within 3%; the winner is simpler"
    winners = "+".join(c.id for c in winner.candidates)
    reason = f"slower than the winner ({winners}) by {ratios[worst] - 1:.0%} at batch {worst}"
    faster = [b for b in batch_sizes if ratios[b] < 1 - TIE]
    if faster:
        reason += f" (faster at batch {', '.join(map(str, faster))}, slower over all batch sizes)"
    return reason
