"""Tiny converted tree models and an ONNX Runtime reference, shared by the tree tests.

A few dozen rows and a handful of shallow trees per model: enough for real splits, missing
values and several classes, cheap enough to train on every run. Models are converted the way
mlc converts them: skl2onnx with ZipMap off, onnxmltools for XGBoost and LightGBM.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort

N_FEATURES = 5

# name -> (builder of the unfitted estimator, target: "binary", "multi" or "reg")
MODELS: dict[str, tuple[Callable[[], object], str]] = {}


def _register(name: str, target: str) -> Callable:
    def wrap(build: Callable[[], object]) -> Callable[[], object]:
        MODELS[name] = (build, target)
        return build
    return wrap


def _sklearn(cls_name: str, **params: object) -> Callable[[], object]:
    def build() -> object:
        import sklearn.ensemble
        import sklearn.tree

        module = sklearn.tree if cls_name.startswith("Decision") else sklearn.ensemble
        return getattr(module, cls_name)(random_state=0, **params)
    return build


for _target in ("binary", "multi"):
    _register(f"rf-{_target}", _target)(_sklearn("RandomForestClassifier", n_estimators=4, max_depth=3))
    _register(f"et-{_target}", _target)(_sklearn("ExtraTreesClassifier", n_estimators=4, max_depth=3))
    _register(f"dt-{_target}", _target)(_sklearn("DecisionTreeClassifier", max_depth=4))
    _register(f"gb-{_target}", _target)(_sklearn("GradientBoostingClassifier", n_estimators=4, max_depth=2))
    _register(f"hgb-{_target}", _target)(_sklearn("HistGradientBoostingClassifier", max_iter=4, max_leaf_nodes=6))
    _register(f"xgb-{_target}", _target)(lambda: __import__("xgboost").XGBClassifier(
        n_estimators=4, max_depth=2, random_state=0, n_jobs=1))
    _register(f"lgbm-{_target}", _target)(lambda: __import__("lightgbm").LGBMClassifier(
        n_estimators=4, num_leaves=4, min_child_samples=3, random_state=0, n_jobs=1, verbose=-1))
_register("rf-reg", "reg")(_sklearn("RandomForestRegressor", n_estimators=4, max_depth=3))
_register("et-reg", "reg")(_sklearn("ExtraTreesRegressor", n_estimators=4, max_depth=3))
_register("dt-reg", "reg")(_sklearn("DecisionTreeRegressor", max_depth=4))
_register("gb-reg", "reg")(_sklearn("GradientBoostingRegressor", n_estimators=4, max_depth=2))
_register("hgb-reg", "reg")(_sklearn("HistGradientBoostingRegressor", max_iter=4, max_leaf_nodes=6))
_register("xgb-reg", "reg")(lambda: __import__("xgboost").XGBRegressor(
    n_estimators=4, max_depth=2, random_state=0, n_jobs=1))
_register("lgbm-reg", "reg")(lambda: __import__("lightgbm").LGBMRegressor(
    n_estimators=4, num_leaves=4, min_child_samples=3, random_state=0, n_jobs=1, verbose=-1))
_register("lgbm-poisson", "reg")(lambda: __import__("lightgbm").LGBMRegressor(
    objective="poisson", n_estimators=4, num_leaves=4, min_child_samples=3, random_state=0, n_jobs=1, verbose=-1))
_register("xgb-poisson", "reg")(lambda: __import__("xgboost").XGBRegressor(
    objective="count:poisson", n_estimators=4, max_depth=2, random_state=0, n_jobs=1))


@functools.cache
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """float32 features with a few NaNs (for the learners that take them) and each target."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, N_FEATURES)).astype(np.float32)
    binary = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    multi = (x[:, 0] > 0).astype(np.int64) + (x[:, 2] > 0.3)
    reg = (3 * x[:, 0] - 2 * x[:, 1] + x[:, 3] ** 2 + 10).astype(np.float64)
    return {"binary": (x, binary), "multi": (x, multi), "reg": (x, reg)}


def with_nans(x: np.ndarray) -> np.ndarray:
    """x with a NaN in every fifth row of two columns: missing values must route like ORT's."""
    x = x.copy()
    x[::5, 1] = np.nan
    x[2::5, 3] = np.nan
    return x


def convert(model: object, n_features: int = N_FEATURES) -> onnx.ModelProto:
    module = type(model).__module__.split(".")[0]
    if module in ("xgboost", "lightgbm"):
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        initial = [("input", FloatTensorType([None, n_features]))]
        if module == "xgboost":
            return onnxmltools.convert_xgboost(model, initial_types=initial, target_opset=15)
        return onnxmltools.convert_lightgbm(model, initial_types=initial, target_opset=15, zipmap=False)
    from skl2onnx import to_onnx

    options = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else None
    return to_onnx(model, np.zeros((1, n_features), np.float32), options=options)


@functools.cache
def converted(name: str) -> tuple[onnx.ModelProto, object]:
    """The converted graph of a registered model, and the fitted model."""
    build, target = MODELS[name]
    x, y = data()[target]
    if name.startswith(("rf", "et", "dt", "gb")):
        x = np.nan_to_num(x)  # these scikit-learn learners take no NaN in older versions
    elif name.startswith(("hgb", "xgb", "lgbm")):
        x = with_nans(x)  # learn a missing-value direction per split
    if name.endswith("poisson"):
        y = np.abs(y) + 1
    model = build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
        proto = convert(model)
    return proto, model


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """The graph's outputs from a one-thread ONNX Runtime CPU session: the parity reference."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # onnxmltools declares label as [1]; ORT warns on every run
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x}), strict=True))


def assert_same_outputs(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Same names in the same order, dtypes, shapes; labels equal; floats within float32 rounding."""
    assert list(got) == list(want)
    for name, ref in want.items():
        mine = got[name]
        assert mine.dtype == ref.dtype, (name, mine.dtype, ref.dtype)
        assert mine.shape == ref.shape, (name, mine.shape, ref.shape)
        if ref.dtype.kind == "f":
            np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(mine, ref, err_msg=name)
