"""Repairs and questions on ONNX graphs that conversion and the passes share.

The converters of our field emit graphs that ONNX Runtime runs but its tools
choke on: skl2onnx writes the default-domain opset import twice (quantize_dynamic
then fails with "Failed to find proper ai.onnx domain"), LightGBM's converter
declares its label output as shape [1] (ORT warns on every call with more rows).
`normalize` fixes these once, right after conversion, so every pass sees a clean graph.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})
MATMUL_OPS = frozenset({"MatMul", "Gemm"})
# Numpy dtype names of ONNX element types, for signatures.
_DTYPES: dict[int, str] = {
    TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64", TensorProto.FLOAT16: "float16",
    TensorProto.INT64: "int64", TensorProto.INT32: "int32", TensorProto.STRING: "str",
    TensorProto.BOOL: "bool", TensorProto.UINT8: "uint8", TensorProto.INT8: "int8",
}


def dedupe_opset_imports(model: onnx.ModelProto) -> None:
    """Keep one import per domain, at the highest version listed (in place)."""
    versions: dict[str, int] = {}
    for imp in model.opset_import:
        domain = "" if imp.domain == "ai.onnx" else imp.domain
        versions[domain] = max(versions.get(domain, 0), imp.version)
    del model.opset_import[:]
    for domain, version in versions.items():
        model.opset_import.append(onnx.helper.make_opsetid(domain, version))


def free_batch_dims(model: onnx.ModelProto) -> None:
    """Declare every output's first dim free when the input's batch dim is (in place).

    A converter that writes a fixed [1] for a per-row output makes ORT log a shape
    mismatch on every multi-row call; a free dim is always correct for per-row outputs.
    """
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    batch_free = all(
        i.type.tensor_type.shape.dim and not i.type.tensor_type.shape.dim[0].HasField("dim_value")
        for i in inputs
    )
    if not inputs or not batch_free:
        return
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_param = "N"


def normalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """The repaired graph: one opset import per domain, free batch dims, inferred value types."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    dedupe_opset_imports(model)
    free_batch_dims(model)
    return onnx.shape_inference.infer_shapes(model)


def lower_leq_thresholds(model: onnx.ModelProto, exact: Mapping[int, np.ndarray]) -> int:
    """Make float32 `x <= t32` agree with the framework's `double(x) <= t` for every float32 x (in place).

    A converter that stores a double threshold t as the nearest float32 rounds it up half
    the time; a row equal to that float32 then goes left in ONNX and right in the original.
    For float32 x, `x <= t` holds exactly when `x <= (largest float32 <= t)`, so each
    rounded-up threshold is moved one float32 step down. `exact` maps a feature index to
    the original double thresholds on it. Returns how many node thresholds moved.
    """
    lower: dict[int, set[float]] = {}
    for feature, values in exact.items():
        t = np.unique(np.asarray(values, dtype=np.float64))
        t32 = t.astype(np.float32)
        up = set(t32[t32.astype(np.float64) > t].tolist())
        # A float32 that is also some other threshold's exact or rounded-down value is ambiguous: leave it.
        lower[feature] = up - set(t32[t32.astype(np.float64) <= t].tolist())
    moved = 0
    for node in model.graph.node:
        if node.op_type not in TREE_OPS:
            continue
        attrs = {a.name: a for a in node.attribute}
        if "nodes_values" not in attrs:
            continue
        node_values = attrs["nodes_values"].floats
        for i, (mode, feature) in enumerate(zip(attrs["nodes_modes"].strings, attrs["nodes_featureids"].ints,
                                                strict=True)):
            v = np.float32(node_values[i])
            if mode == b"BRANCH_LEQ" and float(v) in lower.get(feature, ()):
                node_values[i] = float(np.nextafter(v, np.float32(-np.inf)))
                moved += 1
    return moved


def op_types(model: onnx.ModelProto) -> frozenset[str]:
    return frozenset(node.op_type for node in model.graph.node)


def has_trees(model: onnx.ModelProto) -> bool:
    return bool(op_types(model) & TREE_OPS)


def matmul_weight_count(model: onnx.ModelProto) -> int:
    """Elements in the constant weights of MatMul/Gemm nodes: what int8 quantization can shrink."""
    inits = {t.name: t for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type in MATMUL_OPS:
            for name in node.input[1:2]:
                if name in inits:
                    total += int(numpy_helper.to_array(inits[name]).size)
    return total


def tensor_dtype(elem_type: int) -> str:
    return _DTYPES.get(elem_type, TensorProto.DataType.Name(elem_type).lower())


def input_names(model: onnx.ModelProto) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]
