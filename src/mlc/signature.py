"""Input/output signatures: what a model takes and returns, independent of framework.

Every stage passes these along (loading fills them, the registry stores them,
conversion and the server check requests against them), so they are plain frozen
dataclasses that round-trip through JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# A dimension is a fixed size, or None / a symbolic name for a free one (the batch).
Dim = int | str | None


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "float32", "int64", "str", ...
    shape: tuple[Dim, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=data["name"], dtype=data["dtype"], shape=tuple(data["shape"]))


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    # "classification", "regression", or None when unknown (e.g. an arbitrary ONNX graph).
    task: str | None = None
    classes: tuple[Any, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int | None:
        """Feature count of a tabular model: the last dim of its single 2-D input."""
        if len(self.inputs) != 1 or len(self.inputs[0].shape) != 2:
            return None
        last = self.inputs[0].shape[1]
        return last if isinstance(last, int) else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [s.to_dict() for s in self.inputs]
        data["outputs"] = [s.to_dict() for s in self.outputs]
        data["classes"] = list(self.classes) if self.classes is not None else None
        data["n_features"] = self.n_features
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        classes = data.get("classes")
        return cls(
            inputs=tuple(TensorSpec.from_dict(s) for s in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(s) for s in data.get("outputs", [])),
            task=data.get("task"),
            classes=tuple(classes) if classes is not None else None,
            extra=dict(data.get("extra", {})),
        )


def tabular(n_features: int, *, task: str | None, classes: list[Any] | None = None,
            dtype: str = "float32", n_targets: int = 1) -> Signature:
    """The signature of a scikit-learn-style model: one (batch, n_features) input."""
    outputs: tuple[TensorSpec, ...]
    if task == "classification":
        n_classes = len(classes) if classes is not None else None
        outputs = (
            TensorSpec("label", "int64", (None,)),
            TensorSpec("probabilities", "float32", (None, n_classes)),
        )
    elif task == "regression":
        outputs = (TensorSpec("variable", "float32", (None, n_targets)),)
    else:
        outputs = ()
    return Signature(
        inputs=(TensorSpec("input", dtype, (None, n_features)),),
        outputs=outputs,
        task=task,
        classes=tuple(classes) if classes is not None else None,
    )
