"""Format detection by content, and clear errors for files that are not models."""

from __future__ import annotations

import gzip
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mlc.errors import ModelFormatError, NotFoundError, UsageError
from mlc.loading import detect_format, load_model, scan_pickle

from ._helpers import assert_same_predictions, save_joblib, save_pickle


def _format_error(path: Path, *needles: str) -> str:
    with pytest.raises(ModelFormatError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    assert "Traceback" not in message and 'File "' not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"")
    _format_error(path, "empty", "supported formats")
    with pytest.raises(ModelFormatError):
        detect_format(path)


def test_truncated_pickle(tmp_path: Path, sklearn_models: dict) -> None:
    data = pickle.dumps(sklearn_models["forest"], protocol=4)
    path = tmp_path / "model.pkl"
    path.write_bytes(data[: len(data) // 2])
    assert detect_format(path) == "pickle"
    _format_error(path, "truncated or corrupt pickle")


def test_truncated_joblib(tmp_path: Path, sklearn_models: dict) -> None:
    path = save_joblib(sklearn_models["forest"], tmp_path / "model.joblib")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    _format_error(path, "truncated")


def test_truncated_compressed_joblib(tmp_path: Path, sklearn_models: dict) -> None:
    path = save_joblib(sklearn_models["forest"], tmp_path / "model.joblib", compress=3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _format_error(path)


def test_truncated_onnx(tmp_path: Path, onnx_bytes: bytes) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    _format_error(path, "ONNX")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(np.random.RandomState(1).bytes(2048))
    _format_error(path, "matches no supported format", "pickle, joblib, skops")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("These are my notes about the model.\nNot a model.\n")
    message = _format_error(path, "text 'These are my not'")
    assert "LightGBM" in message  # the supported formats are listed


def test_pickle_of_a_dict(tmp_path: Path) -> None:
    path = save_pickle({"weights": [1, 2, 3]}, tmp_path / "model.pkl")
    _format_error(path, "is a pickle of a dict, not a model")


def test_joblib_of_an_array(tmp_path: Path) -> None:
    path = save_joblib(np.arange(10.0), tmp_path / "model.joblib", compress=3)
    _format_error(path, "is a joblib file of a numpy.ndarray, not a model")


def test_wrong_extension_is_loaded_by_content(
    tmp_path: Path, sklearn_models: dict, data: dict, onnx_bytes: bytes
) -> None:
    pickled = save_pickle(sklearn_models["logreg"], tmp_path / "model.onnx")
    assert detect_format(pickled) == "pickle"
    assert_same_predictions(sklearn_models["logreg"], load_model(pickled).model, data["X"])

    onnx_as_pkl = tmp_path / "model.pkl"
    onnx_as_pkl.write_bytes(onnx_bytes)
    assert load_model(onnx_as_pkl).framework == "onnx"


def test_wrong_extension_and_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("hello, I am a text file\n")
    _format_error(path, "does not parse as an ONNX model")


def test_json_that_is_not_xgboost(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"weights": [1, 2]}))
    _format_error(path, "JSON but not an XGBoost model")


def test_zip_that_is_not_skops(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hi")
    _format_error(path, "without schema.json")


def test_gzip_that_is_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "model.gz"
    path.write_bytes(gzip.compress(b"just some text"))
    _format_error(path, "gzip-compressed but does not hold a pickle")


def test_corrupt_xgboost_json(tmp_path: Path, xgb_models: dict) -> None:
    path = tmp_path / "model.json"
    xgb_models["xgb_clf"].save_model(path)
    doc = json.loads(path.read_text())
    doc["learner"]["gradient_booster"] = {"name": "nonsense"}
    path.write_text(json.dumps(doc))
    _format_error(path, "XGBoost could not load")


def test_corrupt_lightgbm_text(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    path = tmp_path / "model.txt"
    path.write_text("tree\nversion=v4\nnum_class=oops\n")
    _format_error(path, "LightGBM could not load")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        load_model(tmp_path / "nope.pkl")
    with pytest.raises(ModelFormatError, match="directory"):
        load_model(tmp_path)


def test_format_override(tmp_path: Path, sklearn_models: dict) -> None:
    path = save_pickle(sklearn_models["logreg"], tmp_path / "model.bin")
    assert load_model(path, format="pickle").format == "pickle"
    with pytest.raises(UsageError, match="unknown model format"):
        load_model(path, format="tensorflow")


def test_detects_every_format(
    tmp_path: Path, sklearn_models: dict, xgb_models: dict, lgbm_models: dict, onnx_bytes: bytes
) -> None:
    model = sklearn_models["logreg"]
    files = {
        "pickle": save_pickle(model, tmp_path / "a", protocol=2),
        "joblib": save_joblib(model, tmp_path / "b"),
    }
    for compress in (3, "gzip", "bz2", "xz", "lzma"):
        files[f"joblib-{compress}"] = save_joblib(model, tmp_path / f"c{compress}", compress=compress)
    import skops.io as sio
    sio.dump(model, tmp_path / "d")
    files["skops"] = tmp_path / "d"
    (tmp_path / "e").write_bytes(onnx_bytes)
    files["onnx"] = tmp_path / "e"
    xgb_models["xgb_bin"].save_model(tmp_path / "f.json")
    xgb_models["xgb_bin"].save_model(tmp_path / "g.ubj")
    (tmp_path / "f").write_bytes((tmp_path / "f.json").read_bytes())
    (tmp_path / "g").write_bytes((tmp_path / "g.ubj").read_bytes())
    files["xgboost-json"], files["xgboost-ubj"] = tmp_path / "f", tmp_path / "g"
    lgbm_models["lgbm_bin"].booster_.save_model(tmp_path / "h")
    files["lightgbm-text"] = tmp_path / "h"
    for expected, path in files.items():
        want = "joblib" if expected.startswith("joblib") else expected
        assert detect_format(path) == want, expected


def test_protocol_0_and_1_pickles_are_detected(tmp_path: Path, sklearn_models: dict, data: dict) -> None:
    for protocol in (0, 1):
        path = save_pickle(sklearn_models["logreg"], tmp_path / f"p{protocol}", protocol=protocol)
        assert detect_format(path) == "pickle"
        assert_same_predictions(sklearn_models["logreg"], load_model(path).model, data["X"])


def test_scan_pickle_rejects_garbage() -> None:
    with pytest.raises(ModelFormatError, match="not a valid pickle stream"):
        scan_pickle(b"\x80\x04\x95\x00")
