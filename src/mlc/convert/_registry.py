"""The converter interface and the registry of converters, keyed by framework.

A converter knows two things about its framework: how to turn a loaded model into
ONNX, and how to call the original model the way its users do (the reference for
parity and the baseline for speed-ups). Keeping both in one class keeps the output
names of the two sides in agreement. Like skl2onnx's own registry, this one
refuses to overwrite an entry unless asked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import onnx

from mlc.errors import ConflictError, UnsupportedModelError
from mlc.loading.model import LoadedModel

# The graph outputs every converter emits, by task; the native reference uses the same names.
LABEL, PROBABILITIES, VARIABLE = "label", "probabilities", "variable"


@dataclass(frozen=True)
class NativeModel:
    """The original model as its framework runs it."""

    # Every output the converted graph has, under the same names (for parity).
    outputs: Callable[[np.ndarray], dict[str, np.ndarray]]
    # The one call a user makes (predict_proba, or predict for regressors): the speed baseline.
    baseline: Callable[[np.ndarray], Any]
    description: str


class Converter(ABC):
    """Converts one framework's models; subclasses set `framework` and `tool`."""

    framework: ClassVar[str]

    @abstractmethod
    def convert(self, loaded: LoadedModel) -> onnx.ModelProto:
        """The model as ONNX: float32 input named after the signature, no ZipMap, only needed outputs."""

    @abstractmethod
    def native(self, loaded: LoadedModel) -> NativeModel:
        """The original model's own prediction calls."""

    @abstractmethod
    def tool(self) -> str:
        """The converting library and its version, for the lineage record."""


_CONVERTERS: dict[str, Converter] = {}


def register_converter(converter: Converter, *, overwrite: bool = False) -> Converter:
    """Make `converter` the one used for its framework; refuses to replace another unless asked."""
    existing = _CONVERTERS.get(converter.framework)
    if existing is not None and type(existing) is not type(converter) and not overwrite:
        raise ConflictError(
            f"a converter for {converter.framework!r} is already registered ({type(existing).__qualname__})",
            "pass overwrite=True to replace it on purpose",
        )
    _CONVERTERS[converter.framework] = converter
    return converter


def get_converter(framework: str) -> Converter:
    try:
        return _CONVERTERS[framework]
    except KeyError:
        raise UnsupportedModelError(
            f"no converter for {framework!r} models",
            f"mlc converts: {', '.join(sorted(_CONVERTERS))}; export the model to ONNX and optimize the .onnx file",
        ) from None


def all_converters() -> dict[str, Converter]:
    return dict(_CONVERTERS)


def classifier_outputs(predict: Callable[[np.ndarray], Any],
                       predict_proba: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The reference outputs of a classifier with sklearn's API."""
    def outputs(x: np.ndarray) -> dict[str, np.ndarray]:
        return {LABEL: np.asarray(predict(x)), PROBABILITIES: np.asarray(predict_proba(x), dtype=np.float64)}
    return outputs


def sklearn_api_native(model: Any) -> NativeModel | None:
    """The native model of an estimator with predict_proba (sklearn, XGBoost, LightGBM wrappers), else None."""
    if not hasattr(model, "predict_proba"):
        return None
    return NativeModel(classifier_outputs(model.predict, model.predict_proba), model.predict_proba,
                       f"{type(model).__name__}.predict_proba")


def regressor_outputs(predict: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The reference outputs of a regressor: one (n, k) float output named like skl2onnx's."""
    def outputs(x: np.ndarray) -> dict[str, np.ndarray]:
        y = np.asarray(predict(x), dtype=np.float64)
        return {VARIABLE: y.reshape(len(x), -1)}
    return outputs
