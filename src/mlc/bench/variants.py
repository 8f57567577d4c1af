"""The ways of running one model that a benchmark sets side by side.

- native: the framework's own call (predict_proba, or predict for regressors), what a user
  runs without mlc; it is also the parity reference.
- ort-default: the plain reference, what a user gets from the converters alone: built by
  skl2onnx / onnxmltools with their defaults, never by mlc's code (see plain.py), run in an ONNX
  Runtime session with default options except the thread count, which is mlc's.
- mlc: the optimized version through the Scorer, with the runtime plan `mlc optimize` recorded,
  i.e. exactly what `mlc serve` runs.

A variant separates the timed call from the untimed one that yields named outputs, so parity
is checked on what was timed without adding its cost to the timing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

NATIVE, ORT_DEFAULT, MLC = "native", "ort-default", "mlc"

Outputs = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    call: Callable[[np.ndarray], Any]  # the timed call
    outputs: Callable[[np.ndarray], Outputs]  # the same computation, its outputs by name
    lossy: bool = False  # parity is judged with the lossy tolerance (quantized, fp16 chains)
    engine: Callable[[int], str] | None = None  # which engine serves a batch of n rows, when it varies


def native_variant(native: Any) -> Variant:
    """From mlc.convert.native(loaded): the speed baseline call and the reference outputs."""
    return Variant(NATIVE, native.description, native.baseline, native.outputs)


def scorer_variant(scorer: Any, description: str, *, lossy: bool) -> Variant:
    """A mlc.runtime.scorer.Scorer: predict() is both the timed call and the outputs."""
    return Variant(MLC, description, scorer.predict, scorer.predict, lossy=lossy, engine=scorer.engine_for)
