"""Loaders for the non-pickle formats, and which framework a live object is from."""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from mlc.errors import MissingDependencyError, MlcError, ModelFormatError, UnsafeModelError
from mlc.loading import _allowlist

# XGBoost objectives by prefix -> the scikit-learn wrapper that predicts with them.
_XGB_WRAPPERS = (
    ("binary:", "XGBClassifier"),
    ("multi:", "XGBClassifier"),
    ("rank:", "XGBRanker"),
)


def require(package: str, why: str) -> ModuleType:
    """Import an optional dependency, or say how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingDependencyError(package, package, why) from None


def framework_of(obj: Any) -> str | None:
    """ "xgboost" / "lightgbm" for those libraries' own models, "sklearn" for anything
    else with the scikit-learn API (estimators, pipelines, even holding an XGBoost
    step), None when the object is not a model."""
    module = type(obj).__module__ or ""
    if module.split(".")[0] == "xgboost" and hasattr(obj, "predict"):
        return "xgboost"
    if module.split(".")[0] == "lightgbm" and hasattr(obj, "predict"):
        return "lightgbm"
    if callable(getattr(obj, "predict", None)) and not isinstance(obj, type):
        return "sklearn"
    return None


def describe_type(obj: Any) -> str:
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__.split('.')[0]}.{cls.__qualname__}"


# -- skops ----------------------------------------------------------------------
def load_skops(path: Path, *, trust: bool) -> Any:
    import skops.io as sio

    try:
        untrusted = list(sio.get_untrusted_types(file=path))
    except Exception as exc:
        raise ModelFormatError(f"{path} is not a readable skops file: {exc}") from None
    refused, missing = _allowlist.offenders_of(untrusted)
    if refused and not trust:
        raise UnsafeModelError(refused, str(path))
    if missing and not trust:
        name, error = missing[0]
        raise ModelFormatError(f"{path} needs {name}, which this environment cannot import ({error})")
    try:
        return sio.load(path, trusted=untrusted)
    except MlcError:
        raise
    except Exception as exc:
        raise ModelFormatError(f"could not load the skops file {path}: {type(exc).__name__}: {exc}") from None


# -- ONNX -----------------------------------------------------------------------
def _tensors(graph: Any) -> Any:
    """Every TensorProto of a graph and its subgraphs (where external data can hide)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def load_onnx(path: Path) -> Any:
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelFormatError(f"{path} does not parse as an ONNX model (truncated or corrupt?): {exc}") from None
    folder = path.resolve().parent
    external = False
    for tensor in _tensors(model.graph):
        if not uses_external_data(tensor):
            continue
        external = True
        location = ExternalDataInfo(tensor).location
        target = (folder / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(folder):
            raise ModelFormatError(
                f"refused to load {path}: tensor {tensor.name!r} keeps its data at {location!r}, "
                "outside the model's folder",
                "keep external data files next to the .onnx file, with relative paths",
            )
        if not target.is_file():
            raise ModelFormatError(f"{path}: external data file {location!r} is missing")
    try:
        if external:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(model, str(folder))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelFormatError(f"{path} is not a valid ONNX model: {exc}") from None
    return model


# -- XGBoost --------------------------------------------------------------------
def xgboost_wrapper_for(booster: Any, xgboost: ModuleType) -> Any:
    """A scikit-learn wrapper around a raw Booster, chosen by its objective."""
    config = json.loads(booster.save_config())
    objective = config.get("learner", {}).get("objective", {}).get("name", "")
    cls_name = next((c for p, c in _XGB_WRAPPERS if objective.startswith(p)), "XGBRegressor")
    wrapper = getattr(xgboost, cls_name)()
    wrapper.load_model(booster.save_raw(raw_format="ubj"))
    return wrapper


def load_xgboost(path: Path) -> Any:
    xgboost = require("xgboost", "loading this XGBoost model")
    data = bytearray(path.read_bytes())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            booster = xgboost.Booster()
            booster.load_model(data)
            return xgboost_wrapper_for(booster, xgboost)
    except Exception as exc:  # XGBoostError, or a config that is not what XGBoost writes
        raise ModelFormatError(f"XGBoost could not load {path}: {_first_line(exc)}") from None


# -- LightGBM -------------------------------------------------------------------
def load_lightgbm(path: Path) -> Any:
    lightgbm = require("lightgbm", "loading this LightGBM model")
    try:
        return lightgbm.Booster(model_file=str(path))
    except Exception as exc:  # LightGBMError, mostly
        raise ModelFormatError(f"LightGBM could not load {path}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    """The message of a native library's error, without its C++ stack dump."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
