"""The plain reference: what a user gets from the converters alone, built without any of mlc's code.

Why it must not share mlc's code: the gate judges mlc against this reference, so anything the
two have in common cancels out of the ratio. When the reference was built with mlc's own
converter, a slower conversion slowed both sides and the gate passed. So this module calls the
field's converters directly, with their defaults (skl2onnx's `to_onnx`, ZipMap included where it
adds one; onnxmltools for XGBoost and LightGBM boosters), and runs the graph in an ONNX Runtime
session with default options except the thread count, which is held to mlc's own so that neither
side gets more cores than the other.

Nothing here imports mlc.convert, mlc.passes or mlc.runtime (tests/bench/test_plain.py pins that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlc.bench.variants import ORT_DEFAULT, Outputs, Variant

PLAIN_TOOLS = ("sklearn", "xgboost", "lightgbm")


def plain_onnx(model: Any, framework: str, n_features: int) -> tuple[bytes, str]:
    """(ONNX bytes, how it was made) for a framework model, by its converter's defaults.

    Raises whatever the converter raises: a model the converters cannot take has no plain reference.
    """
    from skl2onnx.common.data_types import FloatTensorType

    initial = [("input", FloatTensorType([None, n_features]))]
    if framework == "xgboost":
        import onnxmltools

        return onnxmltools.convert_xgboost(model, initial_types=initial).SerializeToString(), \
            f"onnxmltools {onnxmltools.__version__} convert_xgboost defaults"
    if framework == "lightgbm":
        import onnxmltools

        return onnxmltools.convert_lightgbm(model, initial_types=initial).SerializeToString(), \
            f"onnxmltools {onnxmltools.__version__} convert_lightgbm defaults"
    if framework != "sklearn":
        raise ValueError(f"no plain converter for {framework} models")
    import skl2onnx

    sample = np.zeros((1, n_features), dtype=np.float32)
    return skl2onnx.to_onnx(model, sample).SerializeToString(), f"skl2onnx {skl2onnx.__version__} to_onnx defaults"


def _as_array(value: Any) -> np.ndarray:
    """A ZipMap output (a list of {class: probability}) as the (rows, classes) array it stands for."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = list(value[0])
        return np.asarray([[row[k] for k in keys] for row in value], dtype=np.float32)
    return np.asarray(value)


def plain_variant(onnx_bytes: bytes, providers: Sequence[str], threads: int, output_names: Sequence[str],
                  description: str) -> Variant:
    """The plain graph in a session with default options but `threads` intra-op threads.

    `output_names` are the reference's (native) output names, in order: the plain graph's
    outputs (output_label, output_probability, variable) are matched to them by position, so
    parity is checked on every output.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(onnx_bytes, options, providers=list(providers))
    feed = session.get_inputs()[0].name
    mine = [o.name for o in session.get_outputs()]
    if len(mine) != len(output_names):
        raise ValueError(f"the plain graph has outputs {mine}; the reference has {list(output_names)}")
    names = list(output_names)

    def call(x: np.ndarray) -> list[Any]:
        return session.run(None, {feed: x})

    def outputs(x: np.ndarray) -> Outputs:
        return {name: _as_array(v) for name, v in zip(names, call(x), strict=True)}

    return Variant(ORT_DEFAULT, f"{description}, onnxruntime default session options with {threads} "
                   "intra-op thread(s) (mlc's count)", call, outputs)
