"""Run a candidate artifact through the scoring core, for validation and timing.

Candidates are run by the same `Scorer` that serves the winner, with a one-engine
runtime plan, so the latency a report shows is the latency `mlc serve` pays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlc.errors import UnsupportedModelError
from mlc.passes.base import Artifact


class Predictor:
    """An artifact ready to run: `predict` for parity, `bind` for a zero-argument timed call."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.scorer.predict(x)

    def bind(self, x: np.ndarray) -> Callable[[], Any]:
        """A call on prepared input, so timing measures the engine and not the conversion of x."""
        prepared = self.scorer.prepare(x)
        predict = self.scorer.predict
        return lambda: predict(prepared)


def predictor(artifact: Artifact) -> Predictor:
    from mlc.runtime.scorer import NATIVE, TREES, EngineChoice, NativeSource, RuntimePlan, Scorer

    threads = int(artifact.engine_options.get("n_threads", 1)) if artifact.engine == TREES else None
    native = None
    if artifact.engine == NATIVE:  # the original model, from the source version's artifact (see flow)
        o = artifact.engine_options
        native = NativeSource(ref=o["ref"], path=o["path"], format=o["format"], trusted=bool(o["trusted"]))
    plan = RuntimePlan(artifact.session, (EngineChoice(artifact.engine, n_threads=threads),), native=native)
    scorer = Scorer(artifact.onnx_bytes, runtime_plan=plan)
    if artifact.engine == TREES and scorer.engine_for(1) != TREES:
        raise UnsupportedModelError("the tree kernel does not support this graph",
                                    "run it with ONNX Runtime (engine 'ort')")
    return Predictor(scorer)
