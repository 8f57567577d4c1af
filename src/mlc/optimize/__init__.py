"""The optimize stage: from a model to the fastest verified ONNX for a target, registered.

Modules, in the order the stage runs:
- `data`: the rows parity, calibration and timing use (read from a file, or drawn);
- `search`: the candidate space (pass chains x session settings) and the choice of a plan;
- `engines`: a candidate run through the scoring core, for validation and timing;
- `validate`: parity of a candidate against the original model's own outputs;
- `flow`: `optimize()`, the stage end to end, registering the winner;
- `result`: what `optimize()` returns and attaches to the version (JSON and Markdown).

`from mlc.optimize import optimize` is the Python entry point (`mlc optimize` is a thin
layer over it). It is resolved lazily, so importing `mlc.optimize.validate` (the bench
runner does) does not import the converters, the passes and ONNX Runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlc.optimize.flow import optimize
    from mlc.optimize.result import OptimizeResult

__all__ = ["OptimizeResult", "optimize"]


def __getattr__(name: str) -> Any:
    if name == "optimize":
        from mlc.optimize.flow import optimize

        return optimize
    if name == "OptimizeResult":
        from mlc.optimize.result import OptimizeResult

        return OptimizeResult
    raise AttributeError(f"module 'mlc.optimize' has no attribute {name!r}")
