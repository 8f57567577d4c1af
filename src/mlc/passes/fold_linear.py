"""Fold a chain of affine steps at the start of the graph into one.

Pipelines like StandardScaler → PCA → LogisticRegression convert to Scaler → Sub →
MatMul → LinearClassifier: four passes over the data, each with its own allocation.
All of them are affine maps (x ↦ xA + b), and so is their composition: the chain
becomes one LinearClassifier (or LinearRegressor, or Gemm) with the composed
coefficients, computed in float64 and stored in float32. Lossless: the result
differs from the unfolded graph by float32 rounding only, which parity checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlc.convert.graph import input_names
from mlc.passes.base import Artifact, Pass, PassConfig, register_pass
from mlc.targets import HardwareTarget

_AFFINE = frozenset({"Scaler", "Sub", "Add", "Mul", "Div", "MatMul", "Gemm"})
_TERMINAL = frozenset({"LinearClassifier", "LinearRegressor"})
_NO_OP = frozenset({"Identity", "Cast"})


@dataclass
class _Affine:
    """y = x @ a + b, in float64."""

    a: np.ndarray
    b: np.ndarray


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes by name; values are ints, floats, strings or lists of them, by attribute."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _chain(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The affine nodes reading the graph input one after another (each output used only by the next)."""
    graph = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    chain: list[onnx.NodeProto] = []
    current = input_names(model)[0]
    while current not in outputs and len(consumers.get(current, [])) == 1:
        node = consumers[current][0]
        if node.input[0] != current or any(i not in constants for i in node.input[1:] if i):
            break
        if node.op_type in _NO_OP:
            if node.op_type == "Cast" and _attrs(node).get("to") != TensorProto.FLOAT:
                break
        elif node.op_type in _TERMINAL:
            chain.append(node)
            break
        elif node.op_type not in _AFFINE:
            break
        chain.append(node)
        current = node.output[0]
    return chain


def _weight_ops(chain: list[onnx.NodeProto]) -> int:
    return sum(node.op_type in {"MatMul", "Gemm", *_TERMINAL} for node in chain)


def _step(node: onnx.NodeProto, f: _Affine, constants: dict[str, np.ndarray]) -> _Affine:
    """The composition of f with one more affine node."""
    op = node.op_type
    if op in _NO_OP:
        return f
    if op == "Scaler":
        attrs = _attrs(node)
        offset = np.asarray(attrs.get("offset", [0.0]), dtype=np.float64)
        scale = np.asarray(attrs.get("scale", [1.0]), dtype=np.float64)
        return _Affine(f.a * scale, (f.b - offset) * scale)
    # Every affine op left (Sub, Add, Mul, Div, MatMul, Gemm) has a second input by the ONNX spec,
    # and _chain admitted the node only with that input among the initializers.
    c = np.asarray(constants[node.input[1]], dtype=np.float64)
    if op in ("Sub", "Add", "Mul", "Div"):
        c = np.broadcast_to(c.reshape(-1) if c.ndim else c, f.b.shape)
        if op == "Sub":
            return _Affine(f.a, f.b - c)
        if op == "Add":
            return _Affine(f.a, f.b + c)
        return _Affine(f.a * c, f.b * c) if op == "Mul" else _Affine(f.a / c, f.b / c)
    if op == "MatMul":
        return _Affine(f.a @ c, f.b @ c)
    # Gemm: alpha * y @ op(B) + beta * C
    attrs = _attrs(node)
    w = c.T if attrs.get("transB", 0) else c
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    bias = np.asarray(constants[node.input[2]], dtype=np.float64) if len(node.input) > 2 and node.input[2] else 0.0
    return _Affine(alpha * (f.a @ w), alpha * (f.b @ w) + beta * np.broadcast_to(bias, (w.shape[1],)))


def _foldable(chain: list[onnx.NodeProto]) -> str | None:
    if _weight_ops(chain) == 0:
        return "no MatMul, Gemm or linear model at the start of the graph"
    real = [n for n in chain if n.op_type not in _NO_OP]
    if len(real) < 2:
        return "a single affine step: nothing to fold"
    if [n.op_type for n in real] == ["MatMul", "Add"]:
        return "MatMul + Add only: ONNX Runtime fuses that itself"
    if any(n.op_type == "Gemm" and _attrs(n).get("transA", 0) for n in real):
        return "a transposed Gemm input"
    return None


@register_pass
class FoldLinear(Pass[PassConfig]):
    name = "fold-linear"
    lossy = False

    def applies(self, artifact: Artifact, target: HardwareTarget) -> str | None:
        if artifact.engine != "ort":
            return f"engine {artifact.engine} does not run the ONNX graph"
        model = artifact.proto
        dims = model.graph.input[0].type.tensor_type.shape.dim
        if len(dims) != 2 or not dims[1].HasField("dim_value"):
            return "the input is not a (rows, features) tensor of known width"
        return _foldable(_chain(model))

    def run(self, artifact: Artifact, target: HardwareTarget) -> Artifact:
        model = onnx.ModelProto.FromString(artifact.onnx_bytes)
        graph = model.graph
        chain = _chain(model)
        constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        n_features = graph.input[0].type.tensor_type.shape.dim[1].dim_value
        f = _Affine(np.eye(n_features), np.zeros(n_features))
        last = chain[-1]
        for node in chain[:-1] if last.op_type in _TERMINAL else chain:
            f = _step(node, f, constants)
        source = input_names(model)[0]
        if last.op_type in _TERMINAL:
            folded = self._linear_model(last, f, source)
            new_inits: list[onnx.TensorProto] = []
        else:
            folded, new_inits = self._gemm(last.output[0], f, source)
        first = list(graph.node).index(chain[0])
        kept = [n for n in graph.node if n not in chain]
        kept.insert(first, folded)
        del graph.node[:]
        graph.node.extend(kept)
        graph.initializer.extend(new_inits)
        used = {i for n in graph.node for i in n.input}
        keep_inits = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep_inits)
        onnx.checker.check_model(model)
        return artifact.derive(self.step(folded=[n.op_type for n in chain]), onnx_bytes=model.SerializeToString())

    @staticmethod
    def _linear_model(node: onnx.NodeProto, f: _Affine, source: str) -> onnx.NodeProto:
        """The linear model with the chain folded into its coefficients (row per output, like ONNX-ML)."""
        attrs = _attrs(node)
        coef = np.asarray(attrs["coefficients"], dtype=np.float64)
        intercepts = np.asarray(attrs.get("intercepts", [0.0]), dtype=np.float64)
        rows = coef.reshape(-1, f.a.shape[1])  # (targets, features of the linear model)
        new_coef = (f.a @ rows.T).T  # (targets, original features)
        new_intercepts = np.broadcast_to(intercepts, (rows.shape[0],)) + rows @ f.b
        folded = helper.make_node(node.op_type, [source], list(node.output), name=f"{node.name}_folded",
                                  domain=node.domain,
                                  coefficients=new_coef.astype(np.float32).ravel().tolist(),
                                  intercepts=new_intercepts.astype(np.float32).tolist())
        folded.attribute.extend(a for a in node.attribute if a.name not in ("coefficients", "intercepts"))
        return folded

    @staticmethod
    def _gemm(output: str, f: _Affine, source: str) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
        weights = numpy_helper.from_array(f.a.astype(np.float32), f"{output}_folded_weights")
        bias = numpy_helper.from_array(f.b.astype(np.float32), f"{output}_folded_bias")
        node = helper.make_node("Gemm", [source, weights.name, bias.name], [output], name=f"{output}_folded")
        return node, [weights, bias]
