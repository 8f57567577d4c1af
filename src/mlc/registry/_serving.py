"""Which version a reference serves: one rule for `mlc serve`, `mlc profile`, `mlc bench`,
`mlc score` and `Scorer.from_registry`.

- An ONNX version serves itself, as named: `mlc serve m:1` serves m:1 even when m:2 is its
  optimized child (the bare name `m` resolves to the newest version, which is that child).
- A framework version (pickle, joblib, XGBoost, LightGBM...) cannot be served; it serves its
  newest optimized child: the highest-numbered ONNX version whose lineage names it as parent.
  Highest number rather than latest `created_at`: numbers are handed out in order under the
  registry's write lock, while the clocks of two machines sharing a PostgreSQL registry may
  disagree.
- A framework version without such a child is refused, with the command that makes one.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlc.errors import UsageError
from mlc.registry._registry import ModelVersion, Registry
from mlc.registry.records import ONNX


@dataclass(frozen=True)
class Served:
    """The version a reference serves (`version`), and the one it named (`named`)."""

    version: ModelVersion
    named: ModelVersion

    @property
    def note(self) -> str:
        """Why the served version is not the named one, for the user; "" when it is."""
        if self.version.ref == self.named.ref:
            return ""
        return (f"{self.named.ref} is a {self.named.framework} {self.named.format} model: "
                f"serving its optimized version {self.version.ref}")


def is_servable(mv: ModelVersion) -> bool:
    return mv.format.lower() == ONNX


def served(registry: Registry, mv: ModelVersion) -> Served:
    """See the module doc."""
    if is_servable(mv):
        return Served(mv, mv)
    children = [v for v in registry.list(name=mv.name) if is_servable(v) and v.source.parent == mv.ref]
    if children:
        return Served(max(children, key=lambda v: v.version), mv)
    raise UsageError(
        f"{mv.ref} is a {mv.framework} {mv.format} model, and mlc serves ONNX versions only",
        f"compile it first with: mlc optimize {mv.ref}  (then serve the version it registers)")
