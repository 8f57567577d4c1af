"""Tiny trained models of every supported kind, built once per test session, for every test.

A few dozen rows and a handful of shallow trees: enough structure for parity to mean
something (several classes, real splits, learnt missing-value directions), cheap enough for
every run. Each model is a `LoadedModel` as mlc's loader yields it, and its graph is what
`mlc.convert` makes of it: the converter tests check that graph against the model, the tree
tests check mlc's kernel and tensorizer against that graph, so both test the graphs mlc serves.

Names are FRAMEWORK-MODEL[-TARGET]; `names(trees=True)` lists the tree ensembles.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper

from mlc.loading.model import LoadedModel
from mlc.signature import tabular

N_FEATURES = 6
_ROWS = 80


class Data(NamedTuple):
    """The training rows (float32, no missing values) and one target per task."""

    x: np.ndarray
    binary: np.ndarray
    multi: np.ndarray  # three classes
    reg: np.ndarray

    def xy(self, target: str) -> tuple[np.ndarray, np.ndarray]:
        return self.x, getattr(self, target)


@functools.cache
def data() -> Data:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(_ROWS, N_FEATURES)).astype(np.float32)
    x[:, 5] = rng.integers(0, 3, len(x))  # a small-integer column for the one-hot encoder
    binary = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    multi = (x[:, 0] > 0).astype(np.int64) + (x[:, 2] > 0.3)
    reg = (3 * x[:, 0] - 2 * x[:, 1] + x[:, 3] ** 2 + 10).astype(np.float64)
    return Data(x, binary, multi, reg)


def with_nans(x: np.ndarray) -> np.ndarray:
    """x with a NaN in every fifth row of two columns: missing values must route as the model routes them."""
    x = x.copy()
    x[::5, 1] = np.nan
    x[2::5, 3] = np.nan
    return x


@dataclass(frozen=True)
class Spec:
    """How to build one zoo model."""

    make: Callable[[], Any]  # the unfitted estimator
    target: str  # "binary", "multi", "reg" or "poisson"
    framework: str
    trees: bool = False  # a tree ensemble (the tree kernel and tensorizer read it)
    missing: bool = False  # trained with missing values (for learners that take NaN)
    booster: bool = False  # a LightGBM Booster, as read from a text file


def _sklearn(cls_name: str, **params: Any) -> Callable[[], Any]:
    def make() -> Any:
        import sklearn.ensemble
        import sklearn.linear_model
        import sklearn.neural_network
        import sklearn.tree

        for module in (sklearn.ensemble, sklearn.tree, sklearn.linear_model, sklearn.neural_network):
            if hasattr(module, cls_name):
                return getattr(module, cls_name)(**params)
        raise AssertionError(f"no scikit-learn estimator {cls_name}")
    return make


def _pipeline(*steps: Callable[[], Any]) -> Callable[[], Any]:
    def make() -> Any:
        from sklearn.pipeline import make_pipeline

        return make_pipeline(*(step() for step in steps))
    return make


def _scaler() -> Any:
    from sklearn.preprocessing import StandardScaler

    return StandardScaler()


def _pca() -> Any:
    from sklearn.decomposition import PCA

    return PCA(3)


def _onehot_columns() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer([("num", StandardScaler(), [0, 1, 2, 3, 4]),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), [5])])


def _xgboost(cls_name: str, **params: Any) -> Callable[[], Any]:
    def make() -> Any:
        import xgboost

        return getattr(xgboost, cls_name)(n_estimators=4, max_depth=2, n_jobs=1, random_state=0, **params)
    return make


def _lightgbm(cls_name: str, **params: Any) -> Callable[[], Any]:
    def make() -> Any:
        import lightgbm

        return getattr(lightgbm, cls_name)(n_estimators=4, num_leaves=4, min_child_samples=5, n_jobs=1, verbose=-1,
                                           random_state=0, **params)
    return make


def _specs() -> dict[str, Spec]:
    mlp = {"max_iter": 300, "random_state": 0}
    specs = {
        "sklearn-logreg": Spec(_sklearn("LogisticRegression"), "multi", "sklearn"),
        "sklearn-linreg": Spec(_sklearn("LinearRegression"), "reg", "sklearn"),
        "sklearn-mlp": Spec(_sklearn("MLPClassifier", hidden_layer_sizes=(32,), **mlp), "multi", "sklearn"),
        # Wide enough (>= 1024 MatMul weights) for int8 quantization to apply.
        "sklearn-mlp-wide": Spec(_sklearn("MLPClassifier", hidden_layer_sizes=(64, 64), **mlp), "multi", "sklearn"),
        "sklearn-mlpr": Spec(_sklearn("MLPRegressor", hidden_layer_sizes=(32,), **mlp), "reg", "sklearn"),
        "sklearn-scaler-pca-logreg": Spec(_pipeline(_scaler, _pca, _sklearn("LogisticRegression")), "multi", "sklearn"),
        "sklearn-onehot-logreg": Spec(_pipeline(_onehot_columns, _sklearn("LogisticRegression")), "binary", "sklearn"),
        "sklearn-scaler-xgboost": Spec(_pipeline(_scaler, _xgboost("XGBClassifier")), "binary", "sklearn"),
        "sklearn-scaler-lightgbm-reg": Spec(_pipeline(_scaler, _lightgbm("LGBMRegressor")), "reg", "sklearn"),
    }
    # Tree ensembles: every family for every task. scikit-learn's forests take no NaN in older
    # versions; the learners that do (HistGradientBoosting, XGBoost, LightGBM) learn a direction
    # for missing values at each split.
    families: dict[str, tuple[str, str, dict[str, Any], bool]] = {
        "forest": ("RandomForestClassifier", "RandomForestRegressor", {"n_estimators": 5, "max_depth": 3}, False),
        "extra-trees": ("ExtraTreesClassifier", "ExtraTreesRegressor", {"n_estimators": 4, "max_depth": 3}, False),
        "tree": ("DecisionTreeClassifier", "DecisionTreeRegressor", {"max_depth": 3}, False),
        "gb": ("GradientBoostingClassifier", "GradientBoostingRegressor", {"n_estimators": 5, "max_depth": 2}, False),
        "hgb": ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
                {"max_iter": 5, "max_leaf_nodes": 6}, True),
    }
    for family, (classifier, regressor, params, missing) in families.items():
        for target in ("binary", "multi", "reg"):
            make = _sklearn(regressor if target == "reg" else classifier, random_state=0, **params)
            specs[f"sklearn-{family}-{target}"] = Spec(make, target, "sklearn", trees=True, missing=missing)
    for target in ("binary", "multi", "reg", "poisson"):
        cls = "XGBRegressor" if target in ("reg", "poisson") else "XGBClassifier"
        extra = {"objective": "count:poisson"} if target == "poisson" else {}
        specs[f"xgboost-{target}"] = Spec(_xgboost(cls, **extra), target, "xgboost", trees=True, missing=True)
        cls = "LGBMRegressor" if target in ("reg", "poisson") else "LGBMClassifier"
        extra = {"objective": "poisson"} if target == "poisson" else {}
        specs[f"lightgbm-{target}"] = Spec(_lightgbm(cls, **extra), target, "lightgbm", trees=True, missing=True)
    for target in ("binary", "reg"):
        cls = "LGBMRegressor" if target == "reg" else "LGBMClassifier"
        specs[f"lightgbm-booster-{target}"] = Spec(_lightgbm(cls), target, "lightgbm", trees=True, missing=True,
                                                   booster=True)
    return specs


SPECS = _specs()
ONNX_MODELS = {"onnx-logreg": "sklearn-logreg"}  # an ONNX file: the named model as mlc converted it


def signature_for(target: str, classes: list[Any] | None = None) -> Any:
    if target in ("reg", "poisson"):
        return tabular(N_FEATURES, task="regression")
    return tabular(N_FEATURES, task="classification", classes=classes or ([0, 1] if target == "binary" else [0, 1, 2]))


def _fit(spec: Spec) -> Any:
    x, y = data().xy("reg" if spec.target == "poisson" else spec.target)
    if spec.target == "poisson":
        y = np.abs(y) + 1
    estimator = spec.make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny data: convergence warnings are expected
        return estimator.fit(with_nans(x) if spec.missing else x, y)


@functools.cache
def model(name: str) -> LoadedModel:
    """The named model, fitted, as mlc's loader yields it."""
    if name in ONNX_MODELS:
        source = ONNX_MODELS[name]
        return LoadedModel(model=converted(source), format="onnx", framework="onnx",
                           signature=signature_for(SPECS[source].target))
    spec = SPECS[name]
    fitted = _fit(spec)
    if spec.booster:
        return LoadedModel(model=fitted.booster_, format="lightgbm-text", framework="lightgbm",
                           signature=signature_for(spec.target))
    return LoadedModel(model=fitted, format="pickle", framework=spec.framework, signature=signature_for(spec.target))


@functools.cache
def converted(name: str) -> onnx.ModelProto:
    """The named model's graph as `mlc.convert` makes it (shared: copy it before editing)."""
    from mlc.convert import convert

    return convert(model(name)).proto


def convert_fitted(estimator: Any, classes: list[Any] | None = None) -> onnx.ModelProto:
    """Any fitted scikit-learn, XGBoost or LightGBM estimator on the zoo's rows, converted by `mlc.convert`."""
    from mlc.convert import convert

    framework = type(estimator).__module__.split(".")[0]
    target = "reg" if not hasattr(estimator, "classes_") else "multi"
    if classes is None and hasattr(estimator, "classes_"):
        classes = list(estimator.classes_)
    loaded = LoadedModel(model=estimator, format="pickle", framework=framework,
                         signature=signature_for(target, classes))
    return convert(loaded).proto


def names(framework: str | None = None, *, trees: bool | None = None) -> list[str]:
    """Model names, optionally of one framework only, or only tree ensembles (trees=True) or no trees."""
    found = [name for name, spec in SPECS.items()
             if (framework is None or spec.framework == framework) and (trees is None or spec.trees == trees)]
    if trees is not True:
        found += [name for name in ONNX_MODELS if framework in (None, "onnx")]
    return found


def failing_model() -> bytes:
    """y = table[int(x[:, 0])] on 2 features: ONNX Runtime raises for a row whose first value is outside 0..9.

    A model that fails at inference on chosen rows, for the paths that must survive it (a served 500,
    a batch-scoring part sent to rejects).
    """
    nodes = [
        helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["first"]),
        helper.make_node("Squeeze", ["first", "axes"], ["col"]),
        helper.make_node("Cast", ["col"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "idx"], ["y"], axis=0),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("table", TensorProto.FLOAT, [10], [float(i) for i in range(10)]),
    ]
    graph = helper.make_graph(
        nodes, "fails_out_of_range",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()
