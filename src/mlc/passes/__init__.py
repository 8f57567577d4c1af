"""Optimization passes: one class per pass, one registry (see base.py).

Importing this package registers the built-in passes; `register_pass` adds others.
"""

from mlc.passes.base import (
    Artifact,
    Pass,
    PassConfig,
    Step,
    all_passes,
    get_pass,
    register_pass,
    unregister_pass,
)
from mlc.passes.fold_linear import FoldLinear
from mlc.passes.fp16 import Float16
from mlc.passes.graph_opt import GraphOptimization
from mlc.passes.quantize import QuantizeDynamic, QuantizeStatic
from mlc.passes.session_tuning import SessionTuning
from mlc.passes.tensorize import TensorizeTrees
from mlc.passes.tree_kernel import TreeKernel

__all__ = [
    "Artifact",
    "Float16",
    "FoldLinear",
    "GraphOptimization",
    "Pass",
    "PassConfig",
    "QuantizeDynamic",
    "QuantizeStatic",
    "SessionTuning",
    "Step",
    "TensorizeTrees",
    "TreeKernel",
    "all_passes",
    "get_pass",
    "register_pass",
    "unregister_pass",
]
