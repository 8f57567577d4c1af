"""XGBoost models (sklearn wrappers, which is how mlc loads XGBoost files) → ONNX, via onnxmltools.

onnxmltools refuses a target opset above what its onnxconverter-common knows
(15 with onnx 1.2x): we ask for exactly that (_common.onnxmltools_opset). Inside an
sklearn Pipeline the conversion goes through skl2onnx instead, with onnxmltools'
XGBoost converter registered into it (_common.register_xgboost_with_skl2onnx).
"""

from __future__ import annotations

import onnx

from mlc.convert._common import input_name, onnxmltools_opset
from mlc.convert._registry import Converter, NativeModel, regressor_outputs, sklearn_api_native
from mlc.errors import UnsupportedModelError
from mlc.loading.model import LoadedModel


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
