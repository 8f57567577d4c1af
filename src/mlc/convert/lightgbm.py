"""LightGBM models (a Booster from a text file, or LGBMModel sklearn wrappers) → ONNX, via onnxmltools.

The converted graph declares its label output as shape [1]; `mlc.convert.graph.normalize`
frees that dim (ORT would warn on every call otherwise). onnxmltools stores LightGBM's
double split thresholds as the nearest float32; rows equal to a rounded-up threshold
(LightGBM puts thresholds within an ulp of training values) would take the other
branch, so those thresholds are moved one float32 step down (graph.lower_leq_thresholds). Inside an sklearn Pipeline the
conversion goes through skl2onnx, with onnxmltools' LightGBM converter registered into it
(_common.register_lightgbm_with_skl2onnx).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from mlc.convert._common import input_name, lightgbm_booster, lightgbm_split_thresholds, onnxmltools_opset
from mlc.convert._registry import (
    LABEL,
    PROBABILITIES,
    Converter,
    NativeModel,
    regressor_outputs,
    sklearn_api_native,
)
from mlc.convert.graph import lower_leq_thresholds
from mlc.errors import UnsupportedModelError
from mlc.loading.model import LoadedModel


def booster_objective(model: Any) -> str:
    """'binary', 'multiclass', 'regression', ... as LightGBM records it (aliases such as 'softmax' resolved)."""
    # The first iteration only: num_iteration=0 would dump every tree just to read this one field.
    objective = str(lightgbm_booster(model).dump_model(num_iteration=1).get("objective", "")).split()
    return objective[0] if objective else ""


class LightGBMConverter(Converter):
    framework = "lightgbm"

    def convert(self, loaded: LoadedModel) -> onnx.ModelProto:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        model = loaded.model
        n_features = loaded.signature.n_features or lightgbm_booster(model).num_feature()
        thresholds = lightgbm_split_thresholds(model)  # first: it refuses splits the converter gets wrong
        try:
            converted = convert_lightgbm(
                model,
                initial_types=[(input_name(loaded), FloatTensorType([None, int(n_features)]))],
                target_opset=onnxmltools_opset(),
                zipmap=False,
            )
        except Exception as exc:
            raise UnsupportedModelError(
                f"onnxmltools could not convert this LightGBM model (objective {booster_objective(model)!r}): "
                f"{type(exc).__name__}: {exc}",
                "mlc converts LightGBM gbdt models with numeric features; "
                "export the model to ONNX yourself and optimize the .onnx file",
            ) from exc
        lower_leq_thresholds(converted, thresholds)
        return converted

    def native(self, loaded: LoadedModel) -> NativeModel:
        model = loaded.model
        name = type(model).__name__
        if (probabilistic := sklearn_api_native(model)) is not None:
            return probabilistic
        # A raw Booster (or a wrapper without predict_proba): loading set the task from LightGBM's objective.
        if loaded.signature.task == "classification":
            return NativeModel(_booster_classifier_outputs(model), model.predict, "Booster.predict")
        return NativeModel(regressor_outputs(model.predict), model.predict, f"{name}.predict")

    def tool(self) -> str:
        import onnxmltools

        return f"onnxmltools {onnxmltools.__version__}"


def _booster_classifier_outputs(booster: Any) -> Any:
    """A raw Booster predicts probabilities only (a vector for binary): labels are their argmax."""
    def outputs(x: np.ndarray) -> dict[str, np.ndarray]:
        p = np.asarray(booster.predict(x), dtype=np.float64)
        if p.ndim == 1:
            p = np.column_stack([1.0 - p, p])
        return {LABEL: p.argmax(axis=1).astype(np.int64), PROBABILITIES: p}
    return outputs
