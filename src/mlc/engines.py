"""Run an artifact on the engine it names, for validation and timing.

The scoring core (mlc.runtime) serves the winner; this module only runs candidates
during the search, the same way: an ORT session with the artifact's session
options, or mlc's compiled tree kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlc.errors import UnsupportedModelError
from mlc.passes.base import Artifact

_NUMPY_OF = {1: np.float32, 11: np.float64, 10: np.float16, 7: np.int64, 6: np.int32}


class Predictor:
    """An artifact ready to run: `predict` for parity, `bind` for a zero-argument timed call."""

    def __init__(self, run: Callable[[np.ndarray], list[np.ndarray]], output_names: list[str],
                 dtype: Any) -> None:
        self._run = run
        self.output_names = output_names
        self.dtype = dtype

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self._run(self.prepare(x)), strict=True))

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=self.dtype)

    def bind(self, x: np.ndarray) -> Callable[[], Any]:
        """A call on prepared input, so timing measures the engine and not the conversion of x."""
        prepared = self.prepare(x)
        run = self._run
        return lambda: run(prepared)


def predictor(artifact: Artifact) -> Predictor:
    if artifact.engine == "mlc-trees":
        return _tree_kernel(artifact)
    return _ort(artifact)


def _ort(artifact: Artifact) -> Predictor:
    from mlc.runtime.session import create_session

    session = create_session(artifact.onnx_bytes, artifact.session)
    feed = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    elem = artifact.proto.graph.input[0].type.tensor_type.elem_type

    def run(x: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {feed: x})

    return Predictor(run, names, _NUMPY_OF.get(elem, np.float32))


def _tree_kernel(artifact: Artifact) -> Predictor:
    from mlc.trees import compile_tree_ensemble

    kernel = compile_tree_ensemble(artifact.proto, n_threads=int(artifact.engine_options.get("n_threads", 1)))
    if kernel is None:
        raise UnsupportedModelError("the tree kernel does not support this graph",
                                    "run it with ONNX Runtime (engine 'ort')")
    names = [o.name for o in artifact.proto.graph.output]

    def run(x: np.ndarray) -> list[np.ndarray]:
        out = kernel.predict(x)
        return [out[name] for name in names]

    return Predictor(run, names, np.float32)
