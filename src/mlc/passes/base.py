"""What a pass is, what it works on, and the one registry of passes.

A pass takes an `Artifact` (ONNX bytes plus how to run them) and a hardware
target and returns a new artifact, or says why it does not apply. Searching over
passes is the optimizer's job, not the pass's: a pass only knows its own typed
config. The registry refuses to overwrite a name unless asked, so a plugin cannot
silently replace a built-in pass.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar, cast

import onnx

from mlc.errors import ConflictError, NotFoundError
from mlc.registry.records import Step  # the lineage record: what a version's chain is read back as
from mlc.runtime.session import SessionConfig
from mlc.targets import HardwareTarget


@dataclass(frozen=True)
class Artifact:
    """An ONNX model plus how it is meant to run; immutable so candidates can share parents."""

    onnx_bytes: bytes
    session: SessionConfig
    engine: str = "ort"
    # Engine settings that are not ORT session options (the tree kernel's thread count).
    engine_options: dict[str, Any] = field(default_factory=dict)
    # Conversion first, then every pass in the order applied.
    steps: tuple[Step, ...] = ()

    @cached_property
    def proto(self) -> onnx.ModelProto:
        return onnx.load_from_string(self.onnx_bytes)

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.onnx_bytes).hexdigest()

    @cached_property
    def op_types(self) -> frozenset[str]:
        return frozenset(node.op_type for node in self.proto.graph.node)

    @property
    def lossy(self) -> bool:
        return any(step.lossy for step in self.steps)

    @property
    def passes(self) -> tuple[Step, ...]:
        """The steps after conversion."""
        return tuple(step for step in self.steps if step.name != "convert")

    def derive(self, step: Step, *, onnx_bytes: bytes | None = None, **changes: Any) -> Artifact:
        """A child artifact with `step` appended; unchanged fields are shared with the parent."""
        if onnx_bytes is not None:
            changes["onnx_bytes"] = onnx_bytes
        return replace(self, steps=(*self.steps, step), **changes)


@dataclass(frozen=True)
class PassConfig:
    """Base of every pass's typed config; subclasses add fields with defaults."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ConfigT = TypeVar("ConfigT", bound=PassConfig)


class Pass(ABC, Generic[ConfigT]):
    """One optimization. Subclasses set `name`, `lossy`, `Config` and implement applies/run.

    Generic in its config type (`class Fp16(Pass[Float16Config])`), so that `self.config` has the
    subclass's fields to a type checker.
    """

    name: ClassVar[str]
    lossy: ClassVar[bool]
    Config: ClassVar[type[PassConfig]] = PassConfig
    # Only one session-tuning step per chain; the optimizer crosses chains with session configs.
    tunes_session: ClassVar[bool] = False

    def __init__(self, config: ConfigT | None = None) -> None:
        # `Config` is the subclass's ConfigT (a ClassVar cannot name a type variable, hence the cast).
        self.config: ConfigT = config if config is not None else cast(ConfigT, self.Config())

    @abstractmethod
    def applies(self, artifact: Artifact, target: HardwareTarget) -> str | None:
        """None when the pass can run on this artifact for this target, else the reason it cannot."""

    @abstractmethod
    def run(self, artifact: Artifact, target: HardwareTarget) -> Artifact:
        """The transformed artifact; call only when `applies` returned None."""

    def describe(self) -> str:
        """The name, with the config fields that differ from the defaults: how chains are shown."""
        default = self.Config().to_dict()
        changed = {k: v for k, v in self.config.to_dict().items() if default.get(k) != v}
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in changed.items())})" if changed else self.name

    def step(self, **notes: Any) -> Step:
        return Step(name=self.name, config=self.config.to_dict(), lossy=self.lossy, notes=notes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


_PASSES: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass], *, overwrite: bool = False) -> type[Pass]:
    """Add a pass class to the registry (usable as a decorator); refuses to replace one unless asked."""
    existing = _PASSES.get(cls.name)
    if existing is not None and existing is not cls and not overwrite:
        raise ConflictError(
            f"a pass named {cls.name!r} is already registered ({existing.__module__}.{existing.__qualname__})",
            "pick another name, or pass overwrite=True to replace it on purpose",
        )
    _PASSES[cls.name] = cls
    return cls


def unregister_pass(name: str) -> None:
    """Remove a pass (plugins and tests that registered one temporarily)."""
    _PASSES.pop(name, None)


def get_pass(name: str) -> type[Pass]:
    try:
        return _PASSES[name]
    except KeyError:
        raise NotFoundError(f"no pass named {name!r}", f"known passes: {', '.join(sorted(_PASSES))}") from None


def all_passes() -> dict[str, type[Pass]]:
    """Every registered pass by name, in registration order."""
    return dict(_PASSES)
