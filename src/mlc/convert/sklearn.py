"""scikit-learn estimators and pipelines → ONNX, through skl2onnx.

Options chosen here and why:
- float32 input: skl2onnx builds invalid graphs for some models from float64 inputs,
  and ORT's tree operators run in float32 anyway.
- no ZipMap on the final classifier: a list of dicts per row is slow and useless to a server.
  ZipMap is refused as an option for regressors, so it is only set for classifiers.
- StandardScaler/RobustScaler feeding a tree model subtract and divide as scikit-learn
  does (StandardScaler in float32, RobustScaler in float64): ONNX's Scaler multiplies by
  1/scale, and the last-bit difference sends rows that sit on a split threshold
  (XGBoost's thresholds are training values) down the other branch.
- scikit-learn trees and forests send a missing value (NaN) to the side each split recorded
  (missing_go_to_left); skl2onnx sends it right everywhere, so the graph is repaired.
- XGBoost and LightGBM steps are converted by onnxmltools' converters, registered into
  skl2onnx on first use; a LightGBM step's thresholds get the same float32 repair as a
  LightGBM model on its own (see lightgbm.py). What this shares with those converters is in
  _common.py: no converter imports another.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx

from mlc.convert._common import (
    input_name,
    lightgbm_split_thresholds,
    register_lightgbm_with_skl2onnx,
    register_xgboost_with_skl2onnx,
)
from mlc.convert._registry import Converter, NativeModel, regressor_outputs, sklearn_api_native
from mlc.convert.graph import TREE_OPS, lower_leq_thresholds
from mlc.errors import UnsupportedModelError
from mlc.loading.model import LoadedModel

# The opsets we ask skl2onnx for: ai.onnx 17 is supported by every ORT we allow, and
# ai.onnx.ml 3 is the first with double-precision tree attributes.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
_SUPPORTED_HINT = (
    "mlc converts scikit-learn linear models, trees and forests, (Hist)GradientBoosting, MLP, "
    "scalers/PCA/one-hot encoders on numeric input, and XGBoost/LightGBM steps; replace the step, "
    "or export the model to ONNX yourself and run `mlc optimize` on the .onnx file"
)


def leaf_steps(estimator: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every estimator inside pipelines, unions and column transformers, with its dotted step path."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(estimator, Pipeline):
        for name, step in estimator.steps:
            if step not in (None, "passthrough"):
                yield from leaf_steps(step, f"{path}{name}.")
    elif isinstance(estimator, FeatureUnion):
        for name, step in estimator.transformer_list:
            if step not in (None, "drop", "passthrough"):
                yield from leaf_steps(step, f"{path}{name}.")
    elif isinstance(estimator, ColumnTransformer):
        for name, step, _cols in estimator.transformers_:
            if step not in ("drop", "passthrough"):
                yield from leaf_steps(step, f"{path}{name}.")
    else:
        yield path.rstrip(".") or type(estimator).__name__, estimator


def _is_tree_model(estimator: Any) -> bool:
    module = type(estimator).__module__
    return module.startswith(("sklearn.ensemble", "sklearn.tree", "xgboost", "lightgbm"))


def _register_boosters(steps: list[tuple[str, Any]]) -> None:
    for _path, step in steps:
        module = type(step).__module__
        if module.startswith("xgboost"):
            register_xgboost_with_skl2onnx()
        elif module.startswith("lightgbm"):
            register_lightgbm_with_skl2onnx()


def _check_supported(steps: list[tuple[str, Any]]) -> None:
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from sklearn.base import is_classifier, is_regressor
    from sklearn.preprocessing import FunctionTransformer

    path, last = steps[-1]
    if not (is_classifier(last) or is_regressor(last)):
        # Clusterers and outlier detectors convert, but to outputs (cluster ids, anomaly scores)
        # that mlc's parity check and server, built on predictions, do not compare.
        raise UnsupportedModelError(f"step '{path}' ({type(last).__name__}) is neither a classifier nor a "
                                    "regressor (a clusterer, outlier detector or transformer); mlc optimizes "
                                    "classifiers and regressors", _SUPPORTED_HINT)
    for path, step in steps:
        cls = type(step).__name__
        if type(step) not in sklearn_operator_name_map:
            raise UnsupportedModelError(f"step '{path}' ({cls}) has no ONNX converter", _SUPPORTED_HINT)
        if isinstance(step, FunctionTransformer) and step.func is not None:
            raise UnsupportedModelError(
                f"step '{path}' (FunctionTransformer) runs arbitrary Python ({step.func!r}), "
                "which has no ONNX equivalent", _SUPPORTED_HINT)


def _repair_lightgbm_thresholds(converted: onnx.ModelProto, steps: list[tuple[str, Any]]) -> None:
    """Double thresholds rounded up to float32 moved one step down (graph.lower_leq_thresholds), for
    LightGBM steps and HistGradientBoosting, whose thresholds are doubles compared with double(x):
    without it a row exactly on a rounded threshold went the other way (found by the parity rows
    at tree thresholds, mlc.optimize.edges)."""
    exact: dict[int, list[np.ndarray]] = {}
    for _path, step in steps:
        if type(step).__module__.startswith("lightgbm"):
            found = lightgbm_split_thresholds(step)
        elif type(step).__name__.startswith("HistGradientBoosting"):
            found = _hist_gradient_boosting_thresholds(step)
        else:
            continue
        for feature, values in found.items():
            exact.setdefault(feature, []).append(values)
    if exact:
        lower_leq_thresholds(converted, {f: np.concatenate(v) for f, v in exact.items()})


def _hist_gradient_boosting_thresholds(model: Any) -> dict[int, np.ndarray]:
    """Every numeric split threshold of a fitted HistGradientBoosting model (double), by feature."""
    found: dict[int, list[float]] = {}
    for iteration in getattr(model, "_predictors", []):
        for predictor in iteration:
            nodes = predictor.nodes
            split = ~nodes["is_leaf"].astype(bool) & ~nodes["is_categorical"].astype(bool)
            for feature, threshold in zip(nodes["feature_idx"][split], nodes["num_threshold"][split], strict=True):
                found.setdefault(int(feature), []).append(float(threshold))
    return {f: np.asarray(v, dtype=np.float64) for f, v in found.items()}


def _repair_missing_value_routes(converted: onnx.ModelProto, steps: list[tuple[str, Any]]) -> int:
    """Send NaN down the branch scikit-learn sends it, in its trees and forests (in place).

    scikit-learn routes a missing value at each split to the side recorded in the tree's
    missing_go_to_left (learnt when the training data had NaN there, else the side that saw
    more samples); skl2onnx marks no node as taking NaN to its true (left) branch, so every
    NaN went right and rows with missing values were scored differently. Done where one
    tree or forest step maps onto the graph's one tree-ensemble node; returns the nodes set.
    """
    forests = [step for _path, step in steps
               if type(step).__module__.startswith(("sklearn.tree", "sklearn.ensemble._forest"))]
    nodes = [node for node in converted.graph.node if node.op_type in TREE_OPS]
    if len(forests) != 1 or len(nodes) != 1:
        return 0
    trees = getattr(forests[0], "estimators_", None) or [forests[0]]
    found = [getattr(getattr(tree, "tree_", None), "missing_go_to_left", None) for tree in trees]
    routes = [route for route in found if route is not None]
    if len(routes) != len(found):
        return 0  # a scikit-learn without missing-value support: NaN is refused at predict
    attrs = {a.name: a for a in nodes[0].attribute}
    tree_ids, node_ids = attrs["nodes_treeids"].ints, attrs["nodes_nodeids"].ints
    tracks = [int(routes[t][n]) if mode != b"LEAF" else 0
              for t, n, mode in zip(tree_ids, node_ids, attrs["nodes_modes"].strings, strict=True)]
    if "nodes_missing_value_tracks_true" in attrs:
        nodes[0].attribute.remove(attrs["nodes_missing_value_tracks_true"])
    nodes[0].attribute.append(onnx.helper.make_attribute("nodes_missing_value_tracks_true", tracks))
    return sum(tracks)


def _options(model: Any, steps: list[tuple[str, Any]]) -> dict[int, dict[str, Any]]:
    from sklearn.base import is_classifier
    from sklearn.preprocessing import RobustScaler, StandardScaler

    options: dict[int, dict[str, Any]] = {}
    estimators = [step for _path, step in steps]
    if is_classifier(model):
        options[id(estimators[-1])] = {"zipmap": False}
    for i, step in enumerate(estimators):
        if not any(map(_is_tree_model, estimators[i + 1:])):
            continue
        if isinstance(step, StandardScaler):
            options[id(step)] = {"div": "div"}  # float32 (x - mean) / scale, as StandardScaler computes it
        elif isinstance(step, RobustScaler):
            options[id(step)] = {"div": "div_cast"}  # float64 arithmetic, as RobustScaler computes it
    return options


def _n_features(loaded: LoadedModel) -> int:
    n = loaded.signature.n_features or getattr(loaded.model, "n_features_in_", None)
    if n is None:
        raise UnsupportedModelError(
            "cannot tell how many input features the model takes",
            "fit the model on a 2-D numeric array so it records n_features_in_",
        )
    return int(n)


class SklearnConverter(Converter):
    framework = "sklearn"

    def convert(self, loaded: LoadedModel) -> onnx.ModelProto:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        model = loaded.model
        steps = list(leaf_steps(model))
        _register_boosters(steps)
        _check_supported(steps)
        try:
            converted = convert_sklearn(
                model,
                initial_types=[(input_name(loaded), FloatTensorType([None, _n_features(loaded)]))],
                options=_options(model, steps),
                target_opset=TARGET_OPSET,
            )
        except UnsupportedModelError:
            raise
        except Exception as exc:
            raise UnsupportedModelError(
                f"skl2onnx could not convert {type(model).__name__}: {type(exc).__name__}: {exc}",
                _SUPPORTED_HINT,
            ) from exc
        _repair_lightgbm_thresholds(converted, steps)
        _repair_missing_value_routes(converted, steps)
        return converted

    def native(self, loaded: LoadedModel) -> NativeModel:
        model = loaded.model
        name = type(model).__name__
        if (probabilistic := sklearn_api_native(model)) is not None:
            return probabilistic
        if _is_classifier(model):
            # No probabilities (LinearSVC, RidgeClassifier): parity on labels only.
            def labels(x: np.ndarray) -> dict[str, np.ndarray]:
                return {"label": np.asarray(model.predict(x))}
            return NativeModel(labels, model.predict, f"{name}.predict")
        return NativeModel(regressor_outputs(model.predict), model.predict, f"{name}.predict")

    def tool(self) -> str:
        import skl2onnx

        return f"skl2onnx {skl2onnx.__version__}"


def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(model))
