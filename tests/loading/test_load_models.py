"""Real models load without --trust and predict exactly as the originals did."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlc.errors import MissingDependencyError
from mlc.loading import LoadedModel, detect_format, load_model

from ._helpers import assert_same_predictions, save_joblib, save_pickle

SKLEARN = ["logreg", "forest", "pipeline", "hgb", "mlp", "gbr", "logreg_str"]


def _load(path: Path, fmt: str, framework: str) -> LoadedModel:
    assert detect_format(path) == fmt
    loaded = load_model(path)
    assert (loaded.format, loaded.framework, loaded.path) == (fmt, framework, path)
    return loaded


@pytest.mark.parametrize("name", SKLEARN)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_sklearn_pickle(tmp_path: Path, sklearn_models: dict, data: dict, name: str, protocol: int) -> None:
    path = save_pickle(sklearn_models[name], tmp_path / "model.pkl", protocol=protocol)
    loaded = _load(path, "pickle", "sklearn")
    assert_same_predictions(sklearn_models[name], loaded.model, data["X"])


@pytest.mark.parametrize("name", SKLEARN)
@pytest.mark.parametrize("compress", [0, 3, "gzip", "bz2", "xz"])
def test_sklearn_joblib(tmp_path: Path, sklearn_models: dict, data: dict, name: str, compress: Any) -> None:
    path = save_joblib(sklearn_models[name], tmp_path / "model.joblib", compress=compress)
    loaded = _load(path, "joblib", "sklearn")
    assert_same_predictions(sklearn_models[name], loaded.model, data["X"])


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_joblib_protocols_and_array_kinds(tmp_path: Path, sklearn_models: dict, data: dict, protocol: int) -> None:
    # Fortran-ordered, 0-d, empty, structured and object arrays all ride along.
    model = pickle.loads(pickle.dumps(sklearn_models["forest"]))
    model.extras_ = {
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 3)),
        "structured": np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]),
        "objects": np.array(["a", None, 3], dtype=object),
        "strings": np.array(["xy", "z"]),
    }
    path = tmp_path / "model.jbl"
    path.write_bytes(b"")
    import joblib

    joblib.dump(model, path, protocol=protocol)
    loaded = _load(path, "joblib", "sklearn")
    assert_same_predictions(model, loaded.model, data["X"])
    for key, value in model.extras_.items():
        np.testing.assert_array_equal(loaded.model.extras_[key], value)
        assert loaded.model.extras_[key].dtype == value.dtype


@pytest.mark.parametrize("name", ["logreg", "forest", "pipeline", "hgb", "gbr"])
def test_skops(tmp_path: Path, sklearn_models: dict, data: dict, name: str) -> None:
    import skops.io as sio
    path = tmp_path / "model.skops"
    sio.dump(sklearn_models[name], path)
    loaded = _load(path, "skops", "sklearn")
    assert_same_predictions(sklearn_models[name], loaded.model, data["X"])


@pytest.mark.parametrize("name", ["xgb_clf", "xgb_bin", "xgb_reg"])
def test_xgboost_pickle_json_ubj(tmp_path: Path, xgb_models: dict, data: dict, name: str) -> None:
    model = xgb_models[name]
    loaded = _load(save_pickle(model, tmp_path / "model.pkl"), "pickle", "xgboost")
    assert_same_predictions(model, loaded.model, data["X"])
    for ext, fmt in (("json", "xgboost-json"), ("ubj", "xgboost-ubj")):
        path = tmp_path / f"model.{ext}"
        model.save_model(path)
        loaded = _load(path, fmt, "xgboost")
        assert type(loaded.model) is type(model)
        assert_same_predictions(model, loaded.model, data["X"])


def test_xgboost_raw_booster(tmp_path: Path, data: dict) -> None:
    xgboost = pytest.importorskip("xgboost")
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1}
    booster = xgboost.train(params, xgboost.DMatrix(data["X"], label=data["y_multi"]), 2)
    expected = booster.predict(xgboost.DMatrix(data["X"]))
    path = tmp_path / "booster.bin"  # an unhelpful extension: content decides
    booster.save_model(tmp_path / "booster.ubj")
    path.write_bytes((tmp_path / "booster.ubj").read_bytes())
    loaded = _load(path, "xgboost-ubj", "xgboost")
    np.testing.assert_allclose(loaded.model.predict_proba(data["X"]), expected, rtol=1e-6)
    # A pickled raw Booster gets the same scikit-learn wrapper.
    loaded = _load(save_pickle(booster, tmp_path / "booster.pkl"), "pickle", "xgboost")
    np.testing.assert_allclose(loaded.model.predict_proba(data["X"]), expected, rtol=1e-6)


def test_xgboost_in_a_sklearn_pipeline_is_sklearn(tmp_path: Path, data: dict) -> None:
    xgboost = pytest.importorskip("xgboost")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=2, max_depth=2, n_jobs=1))
    model.fit(data["X"], data["y_bin"])
    loaded = _load(save_joblib(model, tmp_path / "model.joblib", compress=3), "joblib", "sklearn")
    assert_same_predictions(model, loaded.model, data["X"])


@pytest.mark.parametrize("name", ["lgbm_clf", "lgbm_bin", "lgbm_reg"])
def test_lightgbm_pickle_and_text(tmp_path: Path, lgbm_models: dict, data: dict, name: str) -> None:
    model = lgbm_models[name]
    loaded = _load(save_pickle(model, tmp_path / "model.pkl"), "pickle", "lightgbm")
    assert_same_predictions(model, loaded.model, data["X"])

    path = tmp_path / "model.txt"
    model.booster_.save_model(path)
    loaded = _load(path, "lightgbm-text", "lightgbm")
    expected = model.predict_proba(data["X"]) if hasattr(model, "predict_proba") else model.predict(data["X"])
    got = loaded.model.predict(data["X"])
    if expected.ndim == 2 and got.ndim == 1:  # binary: the Booster gives P(class 1)
        expected = expected[:, 1]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_lightgbm_booster_pickle(tmp_path: Path, lgbm_models: dict, data: dict) -> None:
    booster = lgbm_models["lgbm_clf"].booster_
    loaded = _load(save_pickle(booster, tmp_path / "booster.pkl"), "pickle", "lightgbm")
    np.testing.assert_array_equal(loaded.model.predict(data["X"]), booster.predict(data["X"]))


def test_onnx(tmp_path: Path, onnx_bytes: bytes, sklearn_models: dict, data: dict) -> None:
    import onnxruntime as ort
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_bytes)
    loaded = _load(path, "onnx", "onnx")
    assert loaded.is_onnx
    session = ort.InferenceSession(loaded.model.SerializeToString(), providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {"input": data["X"].astype(np.float32)})
    original = sklearn_models["logreg"]
    np.testing.assert_array_equal(label, original.predict(data["X"]))
    np.testing.assert_allclose(proba, original.predict_proba(data["X"]), atol=1e-5)


def _matmul_onnx() -> Any:
    """A graph whose weights are an initializer, the kind external data applies to."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(10, dtype=np.float32).reshape(5, 2), name="weight")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "weight"], ["output"])],
        "matmul",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 5])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _save_external(model: Any, path: Path) -> None:
    import onnx

    onnx.save_model(model, path, save_as_external_data=True, location="weights.bin", size_threshold=0)


def test_onnx_external_data_inside_the_folder(tmp_path: Path) -> None:
    model = _matmul_onnx()
    path = tmp_path / "model.onnx"
    _save_external(model, path)
    assert (tmp_path / "weights.bin").exists()
    loaded = load_model(path)
    from onnx import numpy_helper

    np.testing.assert_array_equal(  # save_model moved the weights out of `model` itself
        numpy_helper.to_array(loaded.model.graph.initializer[0]),
        np.arange(10, dtype=np.float32).reshape(5, 2),
    )
    assert loaded.signature.inputs[0].shape == ("batch", 5)


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "sub/../../outside.bin"])
def test_onnx_external_data_outside_the_folder_is_refused(tmp_path: Path, location: str) -> None:
    import onnx

    from mlc.errors import ModelFormatError

    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "model.onnx"
    _save_external(_matmul_onnx(), path)
    (tmp_path / "outside.bin").write_bytes((folder / "weights.bin").read_bytes())
    model = onnx.load(path, load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save_model(model, path)
    with pytest.raises(ModelFormatError, match="outside the model's folder") as info:
        load_model(path)
    assert str(path) in str(info.value)


def _without(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    for name in list(sys.modules):
        if name == package or name.startswith(package + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


@pytest.mark.parametrize("package", ["xgboost", "lightgbm"])
def test_missing_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xgb_models: dict, lgbm_models: dict, package: str
) -> None:
    if package == "xgboost":
        native = tmp_path / "model.json"
        xgb_models["xgb_clf"].save_model(native)
        pickled = save_pickle(xgb_models["xgb_clf"], tmp_path / "model.pkl")
    else:
        native = tmp_path / "model.txt"
        lgbm_models["lgbm_clf"].booster_.save_model(native)
        pickled = save_pickle(lgbm_models["lgbm_clf"], tmp_path / "model.pkl")
    _without(monkeypatch, package)
    for path in (native, pickled):
        with pytest.raises(MissingDependencyError) as info:
            load_model(path)
        message = str(info.value)
        assert f"'{package}'" in message and f'pip install "mlc[{package}]"' in message
