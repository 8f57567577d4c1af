"""ONNX files: nothing to convert; the graph is optimized as it is.

The reference is the file run by ONNX Runtime with its default session options,
which is what its users run today.
"""

from __future__ import annotations

import numpy as np
import onnx

from mlc.convert._registry import Converter, NativeModel
from mlc.convert.graph import input_names
from mlc.errors import UnsupportedModelError
from mlc.loading.model import LoadedModel

_NUMPY_OF = {1: np.float32, 11: np.float64, 7: np.int64, 6: np.int32, 10: np.float16}


class OnnxConverter(Converter):
    framework = "onnx"

    def convert(self, loaded: LoadedModel) -> onnx.ModelProto:
        model = loaded.model
        if len(input_names(model)) != 1:
            raise UnsupportedModelError(
                f"the ONNX graph takes {len(input_names(model))} inputs; mlc optimizes single-input tabular graphs",
                "concatenate the inputs into one (batch, features) tensor before exporting",
            )
        return model

    def native(self, loaded: LoadedModel) -> NativeModel:
        import onnxruntime as ort

        model = loaded.model
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        feed_name = session.get_inputs()[0].name
        dtype = _NUMPY_OF.get(model.graph.input[0].type.tensor_type.elem_type, np.float32)
        names = [o.name for o in session.get_outputs()]

        def run(x: np.ndarray) -> list[np.ndarray]:
            return session.run(None, {feed_name: np.ascontiguousarray(x, dtype=dtype)})

        def outputs(x: np.ndarray) -> dict[str, np.ndarray]:
            return dict(zip(names, run(x), strict=True))

        return NativeModel(outputs, run, "onnxruntime InferenceSession.run (default options)")

    def tool(self) -> str:
        return f"onnx {onnx.__version__} (no conversion)"
