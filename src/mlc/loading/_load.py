"""load_model: detect, load safely, name the framework, read the signature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlc.errors import ModelFormatError, NotFoundError, UsageError
from mlc.loading import _formats
from mlc.loading._detect import detect_format
from mlc.loading._pickle_load import load_pickled
from mlc.loading._signature import infer_signature
from mlc.loading.model import FORMATS, LoadedModel


def _check_pickled_model(obj: Any, path: Path, fmt: str) -> tuple[Any, str]:
    """The framework of an unpickled object, refusing objects that are not models."""
    module = (type(obj).__module__ or "").split(".")[0]
    if module == "xgboost" and type(obj).__name__ == "Booster":
        # A raw Booster: give it the scikit-learn API the rest of mlc expects.
        xgboost = _formats.require("xgboost", "loading this XGBoost model")
        obj = _formats.xgboost_wrapper_for(obj, xgboost)
    framework = _formats.framework_of(obj)
    if framework is None:
        kind = {"skops": "skops file", "joblib": "joblib file"}.get(fmt, "pickle")
        what = _formats.describe_type(obj)
        article = "an" if what[0].lower() in "aeiou" else "a"
        raise ModelFormatError(
            f"{path} is a {kind} of {article} {what}, not a model (no predict method)",
            "save the fitted estimator or pipeline itself",
        )
    return obj, framework


def load_model(path: Path | str, *, trust: bool = False, format: str | None = None) -> LoadedModel:
    """Load a model file safely, whatever its format.

    Pickles (and joblib files) are scanned and refused with UnsafeModelError if
    they import anything outside the allowlist, unless `trust`; skops files are
    held to the same allowlist; ONNX files are checked and may not reach outside
    their folder for external data. `format` overrides detection.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"model file {path} does not exist")
    if format is None:
        fmt = detect_format(path)
    elif format in FORMATS:
        fmt = format
    else:
        raise UsageError(f"unknown model format {format!r}", f"one of: {', '.join(FORMATS)}")

    model: Any
    if fmt in ("pickle", "joblib"):
        model, framework = _check_pickled_model(load_pickled(path, fmt, trust=trust), path, fmt)
    elif fmt == "skops":
        model, framework = _check_pickled_model(_formats.load_skops(path, trust=trust), path, fmt)
    elif fmt == "onnx":
        model, framework = _formats.load_onnx(path), "onnx"
    elif fmt in ("xgboost-json", "xgboost-ubj"):
        model, framework = _formats.load_xgboost(path), "xgboost"
    else:
        model, framework = _formats.load_lightgbm(path), "lightgbm"
    return LoadedModel(
        model=model,
        format=fmt,
        framework=framework,
        signature=infer_signature(model, framework),
        path=path,
    )
