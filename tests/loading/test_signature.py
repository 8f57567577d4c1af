"""Signatures read from loaded models: feature count, task, classes, for every framework."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlc.errors import UsageError
from mlc.loading import infer_signature, load_model
from mlc.signature import Signature

from ._helpers import save_joblib, save_pickle
from .conftest import N_FEATURES


def _check(sig: Signature, task: str | None, classes: list[Any] | None, n_features: int | None = N_FEATURES) -> None:
    assert sig.n_features == n_features
    assert sig.task == task
    assert sig.classes == (tuple(classes) if classes is not None else None)
    # Plain Python values all the way down: the registry stores this as JSON.
    assert Signature.from_dict(json.loads(json.dumps(sig.to_dict()))) == sig


@pytest.mark.parametrize(
    ("name", "task", "classes"),
    [
        ("logreg", "classification", [0, 1]),
        ("forest", "classification", [0, 1, 2]),
        ("pipeline", "classification", [0, 1, 2]),
        ("hgb", "classification", [0, 1, 2]),
        ("mlp", "classification", [0, 1]),
        ("gbr", "regression", None),
        ("logreg_str", "classification", ["cat", "dog", "emu"]),
    ],
)
def test_sklearn(tmp_path: Path, sklearn_models: dict, name: str, task: str, classes: list | None) -> None:
    loaded = load_model(save_joblib(sklearn_models[name], tmp_path / "m.joblib", compress=3))
    _check(loaded.signature, task, classes)
    assert all(type(c) in (int, str) for c in loaded.signature.classes or ())
    if task == "classification":
        assert loaded.signature.outputs[1].shape == (None, len(classes))


def test_pipeline_without_its_own_feature_count(sklearn_models: dict) -> None:
    import copy

    pipeline = copy.deepcopy(sklearn_models["pipeline"])
    pipeline.steps[0][1].n_features_in_ = 7  # what the first step says
    _check(infer_signature(_NoCount(pipeline), "sklearn"), "classification", [0, 1, 2], 7)


class _NoCount:
    """A pipeline-like model that does not expose n_features_in_ itself."""

    _estimator_type = "classifier"

    def __init__(self, pipeline: Any) -> None:
        self.steps = pipeline.steps
        self.classes_ = pipeline.classes_

    def predict(self, X: Any) -> Any:  # pragma: no cover - never called
        raise NotImplementedError


def test_unknown_feature_count_is_a_free_dim() -> None:
    class Bare:
        def predict(self, X: Any) -> Any:  # pragma: no cover - never called
            raise NotImplementedError

    sig = infer_signature(Bare(), "sklearn")
    assert sig.inputs[0].shape == (None, None) and sig.n_features is None and sig.task is None


@pytest.mark.parametrize(
    ("name", "task", "classes"),
    [("xgb_clf", "classification", [0, 1, 2]), ("xgb_bin", "classification", [0, 1]), ("xgb_reg", "regression", None)],
)
def test_xgboost(tmp_path: Path, xgb_models: dict, name: str, task: str, classes: list | None) -> None:
    _check(load_model(save_pickle(xgb_models[name], tmp_path / "m.pkl")).signature, task, classes)
    path = tmp_path / "m.ubj"
    xgb_models[name].save_model(path)
    _check(load_model(path).signature, task, classes)


@pytest.mark.parametrize(
    ("name", "task", "classes"),
    [
        ("lgbm_clf", "classification", [0, 1, 2]),
        ("lgbm_bin", "classification", [0, 1]),
        ("lgbm_reg", "regression", None),
    ],
)
def test_lightgbm(tmp_path: Path, lgbm_models: dict, name: str, task: str, classes: list | None) -> None:
    _check(load_model(save_pickle(lgbm_models[name], tmp_path / "m.pkl")).signature, task, classes)
    path = tmp_path / "m.txt"
    lgbm_models[name].booster_.save_model(path)
    sig = load_model(path).signature
    _check(sig, task, classes)
    assert sig.extra["objective"] in ("multiclass", "binary", "regression")


def test_onnx(tmp_path: Path, onnx_bytes: bytes) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_bytes)
    sig = load_model(path).signature
    assert [(s.name, s.dtype, s.shape) for s in sig.inputs] == [("input", "float32", (None, N_FEATURES))]
    assert [s.name for s in sig.outputs] == ["label", "probabilities"]
    assert sig.outputs[0].dtype == "int64" and sig.outputs[1].dtype == "float32"
    _check(sig, "classification", [0, 1])


def test_onnx_zipmap_and_symbolic_dims(tmp_path: Path, sklearn_models: dict) -> None:
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = skl2onnx.convert_sklearn(
        sklearn_models["logreg_str"], initial_types=[("X", FloatTensorType([None, N_FEATURES]))]
    )
    batch = onx.graph.input[0].type.tensor_type.shape.dim[0]
    batch.Clear()
    batch.dim_param = "batch"
    path = tmp_path / "m.onnx"
    path.write_bytes(onx.SerializeToString())
    sig = load_model(path).signature
    assert sig.inputs[0].shape == ("batch", N_FEATURES)
    assert sig.outputs[0].dtype == "str"
    assert sig.outputs[1].dtype == "seq(map(str,float32))"
    _check(sig, "classification", ["cat", "dog", "emu"])


def test_unknown_framework() -> None:
    with pytest.raises(UsageError):
        infer_signature(object(), "tensorflow")
