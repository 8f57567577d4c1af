"""mlc: turn a trained model into the fastest verified ONNX for a target, serve it, and size it.

Each stage is a subpackage with its entry point at its top: `mlc.optimize.optimize(...)`,
`mlc.profile.profile(...)` (or `from mlc.optimize import optimize`). The stage packages are
imported on first use, so `import mlc` stays cheap.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

_LAZY_STAGES = ("optimize", "profile")


def __getattr__(name: str) -> ModuleType:
    if name in _LAZY_STAGES:
        return importlib.import_module(f"mlc.{name}")
    raise AttributeError(f"module 'mlc' has no attribute {name!r}")
