"""The scoring core: ONNX Runtime sessions, the dynamic batcher, numeric post-processing.

Importing this package checks that the compiled extension (mlc.runtime._core)
is built and fails with the build command if it is not. The public names load
on first use, so `import mlc.runtime.session` (which the optimizer needs) does
not pay for numba and the batcher.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlc.runtime import _check_build  # noqa: F401  (raises ImportError, with the fix, when unbuilt)

if TYPE_CHECKING:
    from mlc.runtime.batcher import BatcherStats, DynamicBatcher
    from mlc.runtime.postprocess import argmax_labels, threshold_labels, top_k
    from mlc.runtime.scorer import EngineChoice, RuntimePlan, Scorer

_HOMES = {
    "BatcherStats": "mlc.runtime.batcher",
    "DynamicBatcher": "mlc.runtime.batcher",
    "EngineChoice": "mlc.runtime.scorer",
    "RuntimePlan": "mlc.runtime.scorer",
    "Scorer": "mlc.runtime.scorer",
    "argmax_labels": "mlc.runtime.postprocess",
    "threshold_labels": "mlc.runtime.postprocess",
    "top_k": "mlc.runtime.postprocess",
}

__all__ = [
    "BatcherStats",
    "DynamicBatcher",
    "EngineChoice",
    "RuntimePlan",
    "Scorer",
    "argmax_labels",
    "threshold_labels",
    "top_k",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mlc.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
