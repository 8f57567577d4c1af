"""Framework model → ONNX artifact, through the field's converters (skl2onnx, onnxmltools).

One converter per framework (sklearn.py, xgboost.py, lightgbm.py, onnx.py), registered
by framework name; `register_converter` adds or (with overwrite=True) replaces one. Converters
share helpers through _common.py and _registry.py, never by importing one another.

Importing this package needs neither the compiled runtime (mlc.runtime) nor the framework
libraries: `convert` reaches the optimization artifact (mlc.passes.base, whose session settings
live in mlc.runtime) when it is called, so reading converters or converting to an ONNX graph
works where the extension was never built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlc.convert._registry import (
    LABEL,
    PROBABILITIES,
    VARIABLE,
    Converter,
    NativeModel,
    all_converters,
    get_converter,
    register_converter,
)
from mlc.convert.graph import normalize
from mlc.convert.lightgbm import LightGBMConverter
from mlc.convert.onnx import OnnxConverter
from mlc.convert.sklearn import SklearnConverter
from mlc.convert.xgboost import XGBoostConverter
from mlc.loading.model import LoadedModel

if TYPE_CHECKING:
    from mlc.passes.base import Artifact
    from mlc.runtime.session import SessionConfig

for _converter in (SklearnConverter(), XGBoostConverter(), LightGBMConverter(), OnnxConverter()):
    register_converter(_converter)


def convert(loaded: LoadedModel, session: SessionConfig | None = None) -> Artifact:
    """The model as a normalized ONNX artifact (see graph.normalize), its conversion recorded as step 1."""
    from mlc.passes.base import Artifact, Step
    from mlc.runtime.session import SessionConfig

    converter = get_converter(loaded.framework)
    model = normalize(converter.convert(loaded))
    opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
    step = Step("convert", {"framework": loaded.framework}, lossy=False,
                notes={"tool": converter.tool(), "opsets": opsets})
    return Artifact(onnx_bytes=model.SerializeToString(), session=session or SessionConfig(), steps=(step,))


def native(loaded: LoadedModel) -> NativeModel:
    """The original model's own prediction calls (reference for parity, baseline for speed)."""
    return get_converter(loaded.framework).native(loaded)


__all__ = [
    "LABEL",
    "PROBABILITIES",
    "VARIABLE",
    "Converter",
    "NativeModel",
    "all_converters",
    "convert",
    "get_converter",
    "native",
    "register_converter",
]
