"""ONNX Runtime as the reference the tree kernel and the tensorizer are held to."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """The graph's outputs from a one-thread ONNX Runtime CPU session: the parity reference."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # onnxmltools declares label as [1]; ORT warns on every run
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x}), strict=True))


def assert_same_outputs(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Same names in the same order, dtypes, shapes; labels equal; floats within float32 rounding."""
    assert list(got) == list(want)
    for name, ref in want.items():
        mine = got[name]
        assert mine.dtype == ref.dtype, (name, mine.dtype, ref.dtype)
        assert mine.shape == ref.shape, (name, mine.shape, ref.shape)
        if ref.dtype.kind == "f":
            np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(mine, ref, err_msg=name)
