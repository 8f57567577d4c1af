"""Tree ensembles: an ORT-exact numba kernel for CPUs and a tensorizer for GPUs.

Both start from the same reading of the ONNX-ML operator (``parse``) and the same rewrite of
every node into one comparison (``layout``).
"""

from mlc.trees.kernel import TreeKernel, compile_tree_ensemble, supports_tree_ensemble
from mlc.trees.parse import EnsembleGraph, TreeEnsemble, find_tree_ensemble, parse_tree_ensemble
from mlc.trees.tensorize import tensorize_tree_ensemble

__all__ = [
    "EnsembleGraph",
    "TreeEnsemble",
    "TreeKernel",
    "compile_tree_ensemble",
    "find_tree_ensemble",
    "parse_tree_ensemble",
    "supports_tree_ensemble",
    "tensorize_tree_ensemble",
]
