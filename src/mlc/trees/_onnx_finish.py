"""ONNX Runtime's finalization of tree-ensemble sums, written as standard ONNX ops.

The tensorized graph computes each row's raw sums ``S`` (n, k); this module turns them into
exactly the outputs the TreeEnsemble operator would give: base values, ORT's binary-classifier
special cases, the label, and the post transform with ORT's own formulas (its PROBIT is an
approximation of erfinv, its SOFTMAX_ZERO leaves zeros out). It mirrors _score.finish_classifier
and _score.finish_regressor; everything that depends on the model (which targets ever get a
score, how many base values) is decided here, at build time, so the graph only branches on data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlc.errors import UnsupportedModelError
from mlc.trees.parse import TreeEnsemble


class GraphBuilder:
    """Collects nodes and initializers under unique names."""

    def __init__(self, prefix: str, opset: int) -> None:
        self.prefix = prefix
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value: npt.ArrayLike, dtype: npt.DTypeLike | None = None) -> str:
        array = np.asarray(value, dtype=dtype)
        name = self.name("c")
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def static_has(ens: TreeEnsemble, leaf_targets: list[np.ndarray], tree_of_leaf: np.ndarray) -> np.ndarray:
    """Whether each target gets a score on every row (True) or on none (False).

    ORT outputs 0 for a target no reached leaf scored, so the graph needs this per target; a
    target that some rows score and others do not would need it per row: refused.
    """
    k = ens.n_targets
    leaves_per_tree = np.bincount(tree_of_leaf, minlength=ens.n_trees)
    hits = np.zeros((ens.n_trees, k), np.int64)  # leaves of each tree that score each target
    for tree, targets in zip(tree_of_leaf.tolist(), leaf_targets, strict=True):
        hits[tree, np.unique(targets)] += 1
    always = (hits == leaves_per_tree[:, None]).any(axis=0)
    never = (hits == 0).all(axis=0)
    if not (always | never).all():
        raise UnsupportedModelError("a target is scored on some rows only; the tensorizer needs it "
                                    "scored always or never", "serve this model with the tree kernel or ORT")
    return always


def finish(g: GraphBuilder, ens: TreeEnsemble, sums: str, has: np.ndarray, label_out: str | None,
           scores_out: str) -> None:
    """Nodes computing the ensemble's outputs (named label_out, scores_out) from sums (n, k)."""
    k = ens.n_targets
    bases = ens.base_values.astype(np.float32)
    if ens.aggregate == "AVERAGE":
        sums = g.op("Div", sums, g.const(np.float32(ens.n_trees)))
    if ens.kind == "regressor":
        if k == 1:
            origin = bases[0] if len(bases) == 1 else np.float32(0)
            value = g.op("Add", sums, g.const(origin.reshape(1, 1)))
            _transform(g, value, "PROBIT" if ens.post_transform == "PROBIT" else "NONE", scores_out)
            return
        if len(bases) == k:
            sums = g.op("Add", sums, g.const(bases.reshape(1, k)))
        _transform(g, _mask(g, sums, has), ens.post_transform, scores_out)
        return
    classlabels = ens.classlabels
    if classlabels is None:  # parse gives every classifier its labels
        raise UnsupportedModelError("a tree classifier without class labels")
    labels = g.const(classlabels if not ens.string_labels else np.array(classlabels.tolist(), object))
    if k > 2:
        _multiclass(g, ens, sums, has, bases, labels, label_out, scores_out)
    else:
        _binary(g, ens, sums, has.copy(), bases, labels, label_out, scores_out)


def _mask(g: GraphBuilder, sums: str, has: np.ndarray) -> str:
    """Targets never scored read 0 (ORT writes a ScoreValue without a score as 0)."""
    if has.all():
        return sums
    return g.op("Where", g.const(has.reshape(1, -1)), sums, g.const(np.float32(0)))


def _column(g: GraphBuilder, x: str, j: int) -> str:
    """Column j of x, shape (n, 1)."""
    return g.op("Slice", x, g.const([j], np.int64), g.const([j + 1], np.int64), g.const([1], np.int64))


def _multiclass(g: GraphBuilder, ens: TreeEnsemble, sums: str, has: np.ndarray, bases: np.ndarray, labels: str,
                label_out: str | None, scores_out: str) -> None:
    k = ens.n_targets
    if len(bases):  # ORT adds base values and counts those targets as scored
        sums = g.op("Add", sums, g.const(bases.reshape(1, k)))
        has = has | (np.arange(k) < len(bases))
    if label_out:
        masked = sums if has.all() else g.op(
            "Where", g.const(has.reshape(1, -1)), sums, g.const(np.float32(-np.inf)))
        best = g.op("ArgMax", masked, axis=1, keepdims=0)  # the first maximum, as ORT
        g.op("Gather", labels, best, out=label_out)
    _transform(g, _mask(g, sums, has), ens.post_transform, scores_out)


def _binary(g: GraphBuilder, ens: TreeEnsemble, sums: str, has: np.ndarray, bases: np.ndarray, labels: str,
            label_out: str | None, scores_out: str) -> None:
    s0, s1 = _column(g, sums, 0), _column(g, sums, 1)
    extra = -1  # ORT's "write_additional_scores", as far as it is known here
    single = False
    if len(bases) == 2:
        if has[1]:  # ORT: score1 = base1 + score0, score0 = -score1
            s1 = g.op("Add", s0, g.const(bases[1].reshape(1, 1)))
            s0 = g.op("Neg", s1)
        else:
            s0 = g.op("Add", s0, g.const(bases[0].reshape(1, 1)))
            s1 = g.op("Add", s1, g.const(bases[1].reshape(1, 1)))
    elif len(bases) == 1:
        s0 = g.op("Add", s0, g.const(bases[0].reshape(1, 1)))
        single = not has[1]
    else:
        extra, single = 3, not has[1]
    zero = g.const(np.zeros((1, 1), np.float32))
    first = s0 if has[0] else zero
    pos = s1 if (not single and has[1]) else first
    if ens.binary_case:
        extra = 0 if ens.weights_all_positive else 2  # 0 or 1, 2 or 3: same formulas below
    if label_out:
        if ens.binary_case:
            cut = g.const(np.float32(0.5 if ens.weights_all_positive else 0.0))
            pick = g.op("Cast", g.op("Greater", pos, cut), to=TensorProto.INT64)
            g.op("Gather", labels, g.op("Squeeze", pick, g.const([1], np.int64)), out=label_out)
        else:  # ORT's raw 1/0, not class labels
            raw = g.op("Cast", g.op("Greater", pos, g.const(np.float32(0))), to=TensorProto.INT64)
            if ens.string_labels:
                raw = g.op("Gather", labels, raw)
            g.op("Squeeze", raw, g.const([1], np.int64), out=label_out)
    if not single:
        pair = g.op("Concat", s0 if has[0] else _zero_like(g, s0), s1 if has[1] else _zero_like(g, s1), axis=1)
        _transform(g, pair, ens.post_transform, scores_out)
        return
    post = ens.post_transform
    nan = g.const(np.full((1, 1), np.nan, np.float32))
    if post == "PROBIT":
        columns = (_probit(g, first), g.op("Add", _zero_like(g, first), nan))  # ORT leaves the second unwritten
    elif extra >= 0 and post == "LOGISTIC":
        columns = (g.op("Sigmoid", g.op("Neg", first)), g.op("Sigmoid", first))
    elif extra in (0, 1):
        columns = (g.op("Sub", g.const(np.ones((1, 1), np.float32)), first), first)
    elif extra >= 2:
        columns = (g.op("Neg", first), first)
    else:
        columns = (first, g.op("Add", _zero_like(g, first), nan))  # ORT leaves the second unwritten
    g.op("Concat", *columns, axis=1, out=scores_out)


def _zero_like(g: GraphBuilder, x: str) -> str:
    """Zeros of x's shape (x * 0 would turn an infinite score into NaN)."""
    return g.op("Where", g.op("IsNaN", x), g.const(np.float32(0)), g.const(np.float32(0)))


def _transform(g: GraphBuilder, x: str, post: str, out: str) -> None:
    if post == "NONE":
        g.op("Identity", x, out=out)
    elif post == "LOGISTIC":
        g.op("Sigmoid", x, out=out)
    elif post == "SOFTMAX":
        g.op("Softmax", x, axis=-1, out=out)
    elif post == "SOFTMAX_ZERO":
        _softmax_zero(g, x, out)
    else:
        g.op("Identity", _probit(g, x), out=out)


def _softmax_zero(g: GraphBuilder, x: str, out: str) -> None:
    """ORT's ComputeSoftmaxZero: values within 1e-7 of zero stay (scaled by exp(-max)) and
    do not count in the sum."""
    vmax = (g.op("ReduceMax", x, g.const([-1], np.int64), keepdims=1) if g.opset >= 18
            else g.op("ReduceMax", x, axes=[-1], keepdims=1))  # axes became an input in opset 18
    live = g.op("Greater", g.op("Abs", x), g.const(np.float32(1e-7)))
    e = g.op("Where", live, g.op("Exp", g.op("Sub", x, vmax)), g.op("Mul", x, g.op("Exp", g.op("Neg", vmax))))
    total = g.op("ReduceSum", g.op("Where", live, e, g.const(np.float32(0))), g.const([-1], np.int64),
                 keepdims=1)
    g.op("Div", e, total, out=out)


def _probit(g: GraphBuilder, v: str) -> str:
    """ORT's ComputeProbit: sqrt(2) * ErfInv(2v - 1), ErfInv by the 0.147 approximation."""
    f = np.float32
    x = g.op("Sub", g.op("Mul", v, g.const(f(2))), g.const(f(1)))
    sign = g.op("Where", g.op("Less", x, g.const(f(0))), g.const(f(-1)), g.const(f(1)))
    lg = g.op("Log", g.op("Mul", g.op("Sub", g.const(f(1)), x), g.op("Add", g.const(f(1)), x)))
    a = g.op("Add", g.const(f(2) / (f(math.pi) * f(0.147))), g.op("Mul", g.const(f(0.5)), lg))
    b = g.op("Mul", g.const(f(1) / f(0.147)), lg)
    root = g.op("Sqrt", g.op("Sub", g.op("Sqrt", g.op("Sub", g.op("Mul", a, a), b)), a))
    return g.op("Mul", g.const(f(math.sqrt(2.0))), g.op("Mul", sign, root))
