"""ONNX Runtime session options as a typed, recordable value.

`mlc optimize` searches over these and records the winner's in the registry;
the Scorer rebuilds the exact same session from that record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import onnxruntime as ort

from mlc.errors import DeviceUnavailableError

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class SessionConfig:
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    execution_mode: str = "sequential"  # "sequential" or "parallel"
    allow_spinning: bool = True
    graph_optimization_level: str = "all"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["providers"] = list(self.providers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionConfig:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "providers" in fields:
            fields["providers"] = tuple(fields["providers"])
        return cls(**fields)

    def with_(self, **changes: Any) -> SessionConfig:
        return replace(self, **changes)

    def session_options(self) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = self.inter_op_threads
        opts.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if self.execution_mode == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        opts.graph_optimization_level = _LEVELS[self.graph_optimization_level]
        spin = "1" if self.allow_spinning else "0"
        opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
        opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
        opts.log_severity_level = 3  # errors only: LightGBM's label shape warning floods otherwise
        return opts


def available_providers(requested: tuple[str, ...]) -> tuple[str, ...]:
    """The requested providers this onnxruntime build has, in order; refuses a silent CPU fallback."""
    have = set(ort.get_available_providers())
    usable = tuple(p for p in requested if p in have)
    accelerators = [p for p in requested if p != "CPUExecutionProvider"]
    if accelerators and not any(p in have for p in accelerators):
        raise DeviceUnavailableError(
            f"none of the execution providers {', '.join(accelerators)} is available "
            f"(this onnxruntime has: {', '.join(sorted(have))})",
            'install the GPU build with: pip install "mlc[gpu]" (it replaces onnxruntime); '
            "see `mlc doctor`",
        )
    return usable or ("CPUExecutionProvider",)


def create_session(model: bytes | str, config: SessionConfig) -> ort.InferenceSession:
    providers = available_providers(config.providers)
    return ort.InferenceSession(model, sess_options=config.session_options(), providers=list(providers))


def default_session_config(cores: int, device: str = "cpu") -> SessionConfig:
    """Tuned defaults for a target when no optimize record exists: one thread per core."""
    providers = (
        ("CUDAExecutionProvider", "CPUExecutionProvider") if device == "gpu" else ("CPUExecutionProvider",)
    )
    return SessionConfig(intra_op_threads=max(1, cores), providers=providers)
