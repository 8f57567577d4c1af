"""Tiny models, trained once per session (a few dozen rows, a few shallow trees)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

N_FEATURES = 5


@pytest.fixture(scope="session")
def data() -> dict[str, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.rand(48, N_FEATURES)
    return {
        "X": X,
        "y_bin": (X[:, 0] + X[:, 1] > 1).astype(int),
        "y_multi": np.arange(48) % 3,
        "y_str": np.array(["cat", "dog", "emu"])[np.arange(48) % 3],
        "y_reg": X @ np.arange(1, N_FEATURES + 1),
    }


@pytest.fixture(scope="session")
def sklearn_models(data: dict[str, np.ndarray]) -> dict[str, Any]:
    X, y, ym = data["X"], data["y_bin"], data["y_multi"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {
            "logreg": LogisticRegression().fit(X, y),
            "forest": RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, ym),
            "pipeline": make_pipeline(StandardScaler(), PCA(3), LogisticRegression()).fit(X, ym),
            "hgb": HistGradientBoostingClassifier(max_iter=3, max_depth=2).fit(X, ym),
            "mlp": MLPClassifier((4,), max_iter=30, random_state=0).fit(X, y),
            "gbr": GradientBoostingRegressor(n_estimators=3, max_depth=2).fit(X, data["y_reg"]),
            "logreg_str": LogisticRegression().fit(X, data["y_str"]),
        }


@pytest.fixture(scope="session")
def xgb_models(data: dict[str, np.ndarray]) -> dict[str, Any]:
    xgboost = pytest.importorskip("xgboost")
    X = data["X"]
    params = {"n_estimators": 3, "max_depth": 2, "n_jobs": 1}
    return {
        "xgb_clf": xgboost.XGBClassifier(**params).fit(X, data["y_multi"]),
        "xgb_bin": xgboost.XGBClassifier(**params).fit(X, data["y_bin"]),
        "xgb_reg": xgboost.XGBRegressor(**params).fit(X, data["y_reg"]),
    }


@pytest.fixture(scope="session")
def lgbm_models(data: dict[str, np.ndarray]) -> dict[str, Any]:
    lightgbm = pytest.importorskip("lightgbm")
    X = data["X"]
    params = {"n_estimators": 3, "num_leaves": 4, "min_child_samples": 5, "verbose": -1, "n_jobs": 1}
    return {
        "lgbm_clf": lightgbm.LGBMClassifier(**params).fit(X, data["y_multi"]),
        "lgbm_bin": lightgbm.LGBMClassifier(**params).fit(X, data["y_bin"]),
        "lgbm_reg": lightgbm.LGBMRegressor(**params).fit(X, data["y_reg"]),
    }


@pytest.fixture(scope="session")
def all_models(sklearn_models: dict, xgb_models: dict, lgbm_models: dict) -> dict[str, Any]:
    return {**sklearn_models, **xgb_models, **lgbm_models}


@pytest.fixture(scope="session")
def onnx_bytes(sklearn_models: dict[str, Any]) -> bytes:
    """The binary LogisticRegression converted by skl2onnx (no ZipMap)."""
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = sklearn_models["logreg"]
    onx = skl2onnx.convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
        options={id(model): {"zipmap": False}},
    )
    return onx.SerializeToString()
