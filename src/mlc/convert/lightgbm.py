"""LightGBM models (a Booster from a text file, or LGBMModel sklearn wrappers) → ONNX, via onnxmltools.

The converted graph declares its label output as shape [1]; `mlc.convert.graph.normalize`
frees that dim (ORT would warn on every call otherwise). onnxmltools stores LightGBM's
double split thresholds as the nearest float32; rows equal to a rounded-up threshold
(LightGBM puts thresholds within an ulp of training values) would take the other
branch, so those thresholds are moved one float32 step down (graph.lower_leq_thresholds). Inside an sklearn Pipeline the
conversion goes through skl2onnx, with onnxmltools' LightGBM converter registered into it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import onnx

from mlc.convert._registry import (
    LABEL,
    PROBABILITIES,
    Converter,
    NativeModel,
    regressor_outputs,
    sklearn_api_native,
)
from mlc.convert.graph import lower_leq_thresholds
from mlc.convert.sklearn import input_name
from mlc.convert.xgboost import onnxmltools_opset
from mlc.errors import UnsupportedModelError
from mlc.loading.model import LoadedModel


@functools.cache
def register_with_skl2onnx() -> None:
    """Let skl2onnx convert LightGBM estimators that sit inside sklearn pipelines (once per process)."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier",
                                calculate_linear_classifier_output_shapes, convert_lightgbm,
                                options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor",
                                calculate_linear_regressor_output_shapes, convert_lightgbm)


def _booster(model: Any) -> Any:
    return model.booster_ if hasattr(model, "booster_") else model


def booster_objective(model: Any) -> str:
    """'binary', 'multiclass', 'regression', ... as LightGBM records it (aliases such as 'softmax' resolved)."""
    # The first iteration only: num_iteration=0 would dump every tree just to read this one field.
    objective = str(_booster(model).dump_model(num_iteration=1).get("objective", "")).split()
    return objective[0] if objective else ""


def split_thresholds(model: Any) -> dict[int, np.ndarray]:
    """Every numeric split threshold of the model, as LightGBM holds it (double), by feature.

    Read from every split of the model, which is also where a split that treats zero as
    missing (zero_as_missing=True) shows: onnxmltools converts those as ordinary splits, so
    the model is refused rather than converted into one that scores zeros differently.
    """
    found: dict[int, list[float]] = {}
    stack = [tree["tree_structure"] for tree in _booster(model).dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        if node.get("missing_type") == "Zero":
            raise UnsupportedModelError(
                "this LightGBM model treats zero as a missing value (zero_as_missing=True), which the "
                "ONNX converter does not reproduce: zeros would be scored differently",
                "retrain without zero_as_missing (zeros as values, NaN as missing), or export the "
                "ONNX graph yourself and optimize the .onnx file")
        if node.get("decision_type") == "<=":
            found.setdefault(int(node["split_feature"]), []).append(float(node["threshold"]))
        stack += [node["left_child"], node["right_child"]]
    return {feature: np.asarray(values) for feature, values in found.items()}


class LightGBMConverter(Converter):
    framework = "lightgbm"

    def convert(self, loaded: LoadedModel) -> onnx.ModelProto:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        model = loaded.model
        n_features = loaded.signature.n_features or _booster(model).num_feature()
        thresholds = split_thresholds(model)  # first: it refuses splits the converter gets wrong
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
