"""Tiny trained models of every supported kind, built once per test session.

A few dozen rows and a handful of shallow trees: enough structure for parity to
mean something (several classes, real splits), cheap enough for every test run.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np

from mlc.loading.model import LoadedModel
from mlc.signature import tabular

N_FEATURES = 6


@functools.cache
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """X (float32), a binary target, a 3-class target and a regression target."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, N_FEATURES)).astype(np.float32)
    x[:, 5] = rng.integers(0, 3, len(x))  # a small-integer column for the one-hot encoder
    binary = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    three = (x[:, 0] > 0).astype(np.int64) + (x[:, 2] > 0.3)
    reg = (3 * x[:, 0] - 2 * x[:, 1] + x[:, 3] ** 2 + 10).astype(np.float64)
    return x, binary, three, reg


def _fit(model, kind: str):
    x, binary, three, reg = data()
    y = {"binary": binary, "three": three, "reg": reg}[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny data: convergence warnings are expected
        return model.fit(x, y)


def _loaded(model, framework: str, kind: str, fmt: str = "pickle") -> LoadedModel:
    if kind == "reg":
        sig = tabular(N_FEATURES, task="regression")
    else:
        classes = [0, 1] if kind == "binary" else [0, 1, 2]
        sig = tabular(N_FEATURES, task="classification", classes=classes)
    return LoadedModel(model=model, format=fmt, framework=framework, signature=sig)


def _sklearn() -> dict[str, Callable[[], LoadedModel]]:
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    def onehot_pipeline():
        ct = ColumnTransformer([("num", StandardScaler(), [0, 1, 2, 3, 4]),
                                ("cat", OneHotEncoder(handle_unknown="ignore"), [5])])
        return make_pipeline(ct, LogisticRegression())

    specs = {
        "logreg": (lambda: LogisticRegression(), "three"),
        "linreg": (lambda: LinearRegression(), "reg"),
        "tree": (lambda: DecisionTreeClassifier(max_depth=3, random_state=0), "three"),
        "forest": (lambda: RandomForestClassifier(5, max_depth=3, random_state=0), "binary"),
        "gb": (lambda: GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0), "three"),
        "gbr": (lambda: GradientBoostingRegressor(n_estimators=5, max_depth=2, random_state=0), "reg"),
        "hgb": (lambda: HistGradientBoostingClassifier(max_iter=5, max_depth=3, random_state=0), "binary"),
        "hgbr": (lambda: HistGradientBoostingRegressor(max_iter=5, max_depth=3, random_state=0), "reg"),
        "mlp": (lambda: MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0), "three"),
        # Wide enough (>= 1024 MatMul weights) for int8 quantization to apply.
        "mlp-wide": (lambda: MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=300, random_state=0), "three"),
        "mlpr": (lambda: MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0), "reg"),
        "scaler-pca-logreg": (lambda: make_pipeline(StandardScaler(), PCA(3), LogisticRegression()), "three"),
        "onehot-logreg": (onehot_pipeline, "binary"),
    }
    return {f"sklearn-{k}": functools.partial(_build, make, kind, "sklearn") for k, (make, kind) in specs.items()}


def _boosters() -> dict[str, Callable[[], LoadedModel]]:
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xgb_args = {"n_estimators": 4, "max_depth": 2, "n_jobs": 1, "random_state": 0}
    lgb_args = {"n_estimators": 4, "num_leaves": 4, "min_child_samples": 5, "n_jobs": 1, "verbose": -1,
                "random_state": 0}
    return {
        "xgboost-binary": functools.partial(_build, lambda: xgb.XGBClassifier(**xgb_args), "binary", "xgboost"),
        "xgboost-multi": functools.partial(_build, lambda: xgb.XGBClassifier(**xgb_args), "three", "xgboost"),
        "xgboost-reg": functools.partial(_build, lambda: xgb.XGBRegressor(**xgb_args), "reg", "xgboost"),
        "lightgbm-multi": functools.partial(_build, lambda: lgb.LGBMClassifier(**lgb_args), "three", "lightgbm"),
        "lightgbm-booster": functools.partial(_booster, lgb_args, "binary"),
        "lightgbm-booster-reg": functools.partial(_booster, lgb_args, "reg"),
        "sklearn-scaler-xgboost": functools.partial(
            _build, lambda: make_pipeline(StandardScaler(), xgb.XGBClassifier(**xgb_args)), "binary", "sklearn"),
        "sklearn-scaler-lightgbm-reg": functools.partial(
            _build, lambda: make_pipeline(StandardScaler(), lgb.LGBMRegressor(**lgb_args)), "reg", "sklearn"),
    }


def _onnx() -> dict[str, Callable[[], LoadedModel]]:
    def build() -> LoadedModel:
        from mlc.convert import convert

        artifact = convert(model("sklearn-logreg"))
        loaded = _loaded(artifact.proto, "onnx", "three", fmt="onnx")
        return loaded

    return {"onnx-logreg": build}


def _build(make, kind: str, framework: str) -> LoadedModel:
    return _loaded(_fit(make(), kind), framework, kind)


def _booster(args: dict, kind: str) -> LoadedModel:
    import lightgbm as lgb

    est = lgb.LGBMClassifier(**args) if kind != "reg" else lgb.LGBMRegressor(**args)
    return _loaded(_fit(est, kind).booster_, "lightgbm", kind, fmt="lightgbm-text")


@functools.cache
def builders() -> dict[str, Callable[[], LoadedModel]]:
    return {**_sklearn(), **_boosters(), **_onnx()}


@functools.cache
def model(name: str) -> LoadedModel:
    return builders()[name]()


def names(framework: str | None = None, predicate: Callable[[str], bool] | None = None) -> list[str]:
    out = []
    for name in builders():
        if framework is not None and not name.startswith(f"{framework}-"):
            continue
        if predicate is None or predicate(name):
            out.append(name)
    return out
