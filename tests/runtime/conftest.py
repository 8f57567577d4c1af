"""Tiny models, trained once per session: a few dozen rows, a handful of shallow trees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression


@dataclass(frozen=True)
class TinyModel:
    onnx: onnx.ModelProto
    X: np.ndarray  # float32 rows it was trained on
    estimator: object


def _convert(estimator: object, X: np.ndarray) -> onnx.ModelProto:
    return to_onnx(estimator, X[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})


@pytest.fixture(scope="session")
def forest() -> TinyModel:
    """A 3-class random forest on 4 features."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    est = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    return TinyModel(_convert(est, X), X, est)


@pytest.fixture(scope="session")
def logreg() -> TinyModel:
    """A binary logistic regression on 6 features."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 6)).astype(np.float32)
    y = (X @ np.arange(6) > 0).astype(int)
    est = LogisticRegression().fit(X, y)
    return TinyModel(_convert(est, X), X, est)
