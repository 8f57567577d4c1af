"""Tiny registered versions for the retrain loop: two classifiers and two regressors of one name each.

Each is fitted on a few hundred rows, converted by mlc.convert and registered as ONNX, so a
version serves itself and nothing here waits for `mlc optimize`. v2 of "clf" is the better
model (less regularized on separable data), so criteria can be written to pass and to fail.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from mlc.loading.model import LoadedModel
from mlc.registry import ModelVersion, Registry
from mlc.signature import tabular

N_FEATURES = 4


@dataclass(frozen=True)
class Labelled:
    x: np.ndarray
    y_class: np.ndarray
    y_value: np.ndarray


def make_data(n: int = 400, seed: int = 0) -> Labelled:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    score = x @ np.array([1.5, -1.0, 0.5, 0.0]) + rng.normal(scale=0.7, size=n)
    return Labelled(x, (score > 0).astype(np.int64), (score * 3 + 1).astype(np.float64))


def register(registry: Registry, name: str, estimator: object, task: str) -> ModelVersion:
    """Register a fitted estimator as mlc.convert's ONNX, the way an optimized version is stored."""
    from mlc.convert import convert

    classes = [int(c) for c in estimator.classes_] if task == "classification" else None  # type: ignore[attr-defined]
    signature = tabular(N_FEATURES, task=task, classes=classes)
    proto = convert(LoadedModel(model=estimator, format="pickle", framework="sklearn", signature=signature)).proto
    return registry.register(name, proto.SerializeToString(), format="onnx", framework="sklearn", signature=signature)


@pytest.fixture()
def data() -> Labelled:
    return make_data()


@pytest.fixture()
def registry(home: Path, data: Labelled) -> Registry:
    """clf:1 (weak) and clf:2 (better) classifiers; reg:1 (ridge, heavily shrunk) and reg:2 (least squares)."""
    reg = Registry.open()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        register(reg, "clf", LogisticRegression(C=0.001).fit(data.x[:200], data.y_class[:200]), "classification")
        register(reg, "clf", LogisticRegression(C=10.0).fit(data.x[:200], data.y_class[:200]), "classification")
        register(reg, "reg", Ridge(alpha=500.0).fit(data.x[:200], data.y_value[:200]), "regression")
        register(reg, "reg", LinearRegression().fit(data.x[:200], data.y_value[:200]), "regression")
    return reg


@pytest.fixture()
def rows_file(tmp_path: Path, data: Labelled) -> Path:
    """The held-out rows as CSV with a header, the label in column 'label'."""
    import pandas as pd

    frame = pd.DataFrame(data.x[200:], columns=[f"f{i}" for i in range(N_FEATURES)])
    frame["label"] = data.y_class[200:]
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    return path
