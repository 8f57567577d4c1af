"""What more than one converter needs, so that no converter imports another.

The sklearn converter meets XGBoost and LightGBM models as pipeline steps, and the XGBoost and
LightGBM converters both go through onnxmltools: the knowledge they share lives here (the input
name, onnxmltools' opset, LightGBM's exact thresholds, registering the boosters' converters into
skl2onnx), and each converter module imports only this, `_registry` and `graph`. Framework
libraries are imported inside the functions, so importing mlc.convert needs none of them.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from mlc.errors import UnsupportedModelError
from mlc.loading.model import LoadedModel


def input_name(loaded: LoadedModel) -> str:
    """The graph input's name: the signature's, else "input"."""
    return loaded.signature.inputs[0].name if loaded.signature.inputs else "input"


def onnxmltools_opset() -> int:
    """The highest ai.onnx opset onnxmltools converts to here (it refuses anything above)."""
    from onnxconverter_common.onnx_ex import get_maximum_opset_supported

    return min(17, int(get_maximum_opset_supported()))


def lightgbm_booster(model: Any) -> Any:
    """The Booster of a LightGBM sklearn wrapper, or the model itself when it is one."""
    return model.booster_ if hasattr(model, "booster_") else model


def lightgbm_split_thresholds(model: Any) -> dict[int, np.ndarray]:
    """Every numeric split threshold of a LightGBM model, as LightGBM holds it (double), by feature.

    Read from every split of the model, which is also where a split that treats zero as
    missing (zero_as_missing=True) shows: onnxmltools converts those as ordinary splits, so
    the model is refused rather than converted into one that scores zeros differently.
    """
    found: dict[int, list[float]] = {}
    stack = [tree["tree_structure"] for tree in lightgbm_booster(model).dump_model()["tree_info"]]
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


@functools.cache
def register_xgboost_with_skl2onnx() -> None:
    """Let skl2onnx convert XGBoost estimators that sit inside sklearn pipelines (once per process),
    with onnxmltools' converter and skl2onnx's shape calculators (onnxmltools' own classifier shape
    calculator rejects skl2onnx's tensor types)."""
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from xgboost import XGBClassifier, XGBRegressor, XGBRFClassifier, XGBRFRegressor

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for cls in (XGBClassifier, XGBRFClassifier):
        update_registered_converter(cls, f"XGBoost{cls.__name__}", calculate_linear_classifier_output_shapes,
                                    convert_xgboost, options=classifier_options)
    for cls in (XGBRegressor, XGBRFRegressor):
        update_registered_converter(cls, f"XGBoost{cls.__name__}", calculate_linear_regressor_output_shapes,
                                    convert_xgboost)


@functools.cache
def register_lightgbm_with_skl2onnx() -> None:
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
