"""The value every loader returns: a live model object plus what mlc knows of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlc.signature import Signature

# Formats a file can be in (the registry stores this string).
FORMATS = ("pickle", "joblib", "skops", "onnx", "xgboost-json", "xgboost-ubj", "lightgbm-text")
# Frameworks a model can come from.
FRAMEWORKS = ("sklearn", "xgboost", "lightgbm", "onnx")


@dataclass
class LoadedModel:
    # The live object: an sklearn estimator/pipeline, an xgboost XGBModel (sklearn API),
    # a lightgbm Booster or LGBMModel, or an onnx.ModelProto.
    model: Any
    format: str
    framework: str
    signature: Signature
    path: Path | None = None

    @property
    def is_onnx(self) -> bool:
        return self.framework == "onnx"
