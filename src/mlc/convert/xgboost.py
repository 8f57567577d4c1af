"""XGBoost models (sklearn wrappers, which is how mlc loads XGBoost files) → ONNX, via onnxmltools.

onnxmltools refuses a target opset above what its onnxconverter-common knows
(15 with onnx 1.2x): we ask for exactly that. Inside an sklearn Pipeline the
conversion goes through skl2onnx instead, with onnxmltools' XGBoost converter
registered into it and skl2onnx's shape calculators (onnxmltools' own classifier
shape calculator rejects skl2onnx's tensor types).
"""

from __future__ import annotations

import functools

import onnx

from mlc.convert._registry import Converter, NativeModel, regressor_outputs, sklearn_api_native
from mlc.convert.sklearn import input_name
from mlc.errors import UnsupportedModelError
from mlc.loading.model import LoadedModel


def onnxmltools_opset() -> int:
    """The highest ai.onnx opset onnxmltools converts to here (it refuses anything above)."""
    from onnxconverter_common.onnx_ex import get_maximum_opset_supported

    return min(17, int(get_maximum_opset_supported()))


@functools.cache
def register_with_skl2onnx() -> None:
    """Let skl2onnx convert XGBoost estimators that sit inside sklearn pipelines (once per process)."""
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


class XGBoostConverter(Converter):
    framework = "xgboost"

    def convert(self, loaded: LoadedModel) -> onnx.ModelProto:
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        model = loaded.model
        n_features = loaded.signature.n_features or getattr(model, "n_features_in_", None)
        if n_features is None:
            raise UnsupportedModelError("cannot tell how many features this XGBoost model takes",
                                        "save the model from a fitted XGBClassifier/XGBRegressor")
        try:
            return convert_xgboost(
                model,
                initial_types=[(input_name(loaded), FloatTensorType([None, int(n_features)]))],
                target_opset=onnxmltools_opset(),
            )
        except Exception as exc:
            raise UnsupportedModelError(
                f"onnxmltools could not convert {type(model).__name__} "
                f"(objective {model.get_params().get('objective')!r}): {type(exc).__name__}: {exc}",
                "mlc converts XGBoost tree boosters (gbtree) with numeric features; "
                "export the model to ONNX yourself and optimize the .onnx file",
            ) from exc

    def native(self, loaded: LoadedModel) -> NativeModel:
        model = loaded.model
        name = type(model).__name__
        if (probabilistic := sklearn_api_native(model)) is not None:
            return probabilistic
        return NativeModel(regressor_outputs(model.predict), model.predict, f"{name}.predict")

    def tool(self) -> str:
        import onnxmltools

        return f"onnxmltools {onnxmltools.__version__}"
