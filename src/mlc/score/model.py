"""The version a batch run scores, read from the registry once and handed to every worker.

Local worker processes and Spark executors both receive this one frozen value (pickled,
or broadcast by Spark) and build their Scorer from it, so neither opens the registry: the
artifact is read and its digest verified once, by the process that started the run. The
Scorer is built from the version's recorded runtime plan, as `mlc serve` builds it, with the
threads a worker may use (workers x threads = cores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlc.signature import Signature

if TYPE_CHECKING:
    from mlc.registry import Registry, RuntimeRecord
    from mlc.runtime.scorer import Scorer


@dataclass(frozen=True)
class ScoringModel:
    """An ONNX version with everything needed to score it away from the registry."""

    ref: str  # name:version actually scored (a framework version resolves to its optimized one)
    digest: str  # sha256 of the artifact, verified when it was read
    onnx: bytes
    runtime: RuntimeRecord | None  # the runtime plan `mlc optimize` recorded, if any
    signature: Signature
    target: str | None  # hardware target (name or .toml) for a version without a recorded plan; None: cpu
    note: str = ""  # how the ref was resolved, when it was not scored as named

    @classmethod
    def from_registry(cls, ref: str, registry: Registry | None = None, target: str | None = None) -> ScoringModel:
        """The version `ref` serves ("name", "name:3", "name@prod"), by the registry's one rule
        (Registry.served: itself when ONNX, else its newest optimized child)."""
        from mlc.registry import Registry

        registry = registry or Registry.open()
        served = registry.served(ref)
        version = served.version
        data = registry.artifact_path(version).read_bytes()  # the path is digest-verified
        return cls(ref=version.ref, digest=version.digest, onnx=data, runtime=version.source.runtime,
                   signature=version.signature, target=target, note=served.note)

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """The names of the model's input columns, where the registered model recorded them."""
        names = self.signature.extra.get("feature_names")
        return tuple(str(n) for n in names) if names else None

    @property
    def n_features(self) -> int | None:
        return self.signature.n_features

    def scorer(self, threads: int) -> Scorer:
        """A Scorer with the recorded runtime plan, run on `threads` threads without spinning (every
        engine may use them all: see RuntimePlan.batch)."""
        from mlc.runtime.scorer import RuntimePlan, Scorer
        from mlc.targets import get_target

        hw = get_target(self.target)
        plan = RuntimePlan.from_record(self.runtime, hw)
        return Scorer(self.onnx, hw, plan.batch(threads), signature=self.signature)
