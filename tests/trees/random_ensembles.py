"""Hypothesis strategies for random tree ensembles written directly as ONNX nodes.

Converters only ever emit a few shapes of ensemble (LEQ or LT splits, one weight per leaf, ...);
these strategies cover what the operators allow: every node mode, NaN thresholds, missing-value
flags, several or repeated weights per leaf, base values of every size, every post transform
and aggregate, double attributes, opset 5's membership nodes, and inputs that sit exactly on
thresholds or are NaN or infinite.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
POSTS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
AGGREGATES = ("SUM", "AVERAGE", "MIN", "MAX")
# Thresholds and inputs come from one small pool, so inputs hit thresholds exactly (EQ, LT...).
POOL = np.array([-1.5, -0.5, 0.0, 0.25, 1.0, 2.0], np.float32)
WEIGHTS = (-1.0, -0.25, 0.0, 0.125, 0.5, 0.75, 2.0)
MEMBERS = (-1.0, 0.0, 1.0, 2.0, 30.0, 31.0)  # integers only (ORT); sets beyond [0, 30] truncate


@dataclass
class Node:
    mode: str = "LEAF"
    feature: int = 0
    threshold: float = 0.0
    missing: int = 0
    members: list[float] = field(default_factory=list)
    true: Node | None = None
    false: Node | None = None
    weights: list[tuple[int, float]] = field(default_factory=list)  # (target, weight) at a leaf


@st.composite
def trees(draw: st.DrawFn, n_features: int, n_targets: int, depth: int, member: bool = False) -> Node:
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        count = draw(st.integers(1, max(1, min(3, n_targets + 1))))
        targets = st.integers(0, n_targets - 1)
        return Node(weights=[(draw(targets), draw(st.sampled_from(WEIGHTS))) for _ in range(count)])
    modes = MODES + (("BRANCH_MEMBER",) if member else ())
    mode = draw(st.sampled_from(modes))
    threshold = float("nan") if draw(st.integers(0, 15)) == 0 else float(draw(st.sampled_from(POOL)))
    members = draw(st.lists(st.sampled_from(MEMBERS), min_size=1, max_size=3, unique=True)) \
        if mode == "BRANCH_MEMBER" else []
    return Node(mode=mode, feature=draw(st.integers(0, n_features - 1)), threshold=threshold,
                missing=draw(st.integers(0, 1)), members=members,
                true=draw(trees(n_features, n_targets, depth - 1, member)),
                false=draw(trees(n_features, n_targets, depth - 1, member)))


def _flatten(root: Node) -> list[Node]:
    """Breadth-first, root first (ORT takes the first node of a tree as its root)."""
    order, queue = [], [root]
    while queue:
        node = queue.pop(0)
        order.append(node)
        if node.mode != "LEAF":
            queue += [node.true, node.false]
    return order


def _v3_attributes(forest: list[Node], prefix: str, rng: np.random.Generator) -> dict:
    """nodes_* and {prefix}_* attributes of a forest; node ids shuffled inside each tree."""
    attrs: dict[str, list] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
        f"{prefix}_treeids", f"{prefix}_nodeids", f"{prefix}_ids", f"{prefix}_weights")}
    tree_ids = rng.permutation(len(forest) * 3)[: len(forest)]
    for tree_id, root in zip(tree_ids.tolist(), forest, strict=True):
        nodes = _flatten(root)
        ids = {id(n): int(i) for n, i in zip(nodes, rng.permutation(len(nodes)), strict=True)}
        for node in nodes:
            leaf = node.mode == "LEAF"
            attrs["nodes_treeids"].append(tree_id)
            attrs["nodes_nodeids"].append(ids[id(node)])
            attrs["nodes_featureids"].append(node.feature)
            attrs["nodes_values"].append(node.threshold)
            attrs["nodes_modes"].append(node.mode)
            attrs["nodes_truenodeids"].append(0 if leaf else ids[id(node.true)])
            attrs["nodes_falsenodeids"].append(0 if leaf else ids[id(node.false)])
            attrs["nodes_missing_value_tracks_true"].append(node.missing)
            for target, weight in node.weights:
                attrs[f"{prefix}_treeids"].append(tree_id)
                attrs[f"{prefix}_nodeids"].append(ids[id(node)])
                attrs[f"{prefix}_ids"].append(target)
                attrs[f"{prefix}_weights"].append(weight)
    return attrs


def _model(nodes: list[onnx.NodeProto], n_features: int, outputs: list[onnx.ValueInfoProto],
           ml_opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "random_trees",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21 if ml_opset == 5 else 17),
                                                    helper.make_opsetid("ai.onnx.ml", ml_opset)])
    model.ir_version = 10 if ml_opset == 5 else 8
    return model


def _as_double(attrs: dict, names: tuple[str, ...], rng: np.random.Generator) -> None:
    """Move float attributes to *_as_tensor doubles, nudged so that float32 rounding matters."""
    for name in names:
        values = np.asarray(attrs.pop(name, []), np.float64)
        if name == "nodes_values":
            values = values + rng.choice([0.0, 1e-9, -1e-9, 1e-12], size=len(values))
        if len(values) or name != "base_values":
            attrs[f"{name}_as_tensor"] = numpy_helper.from_array(values)


@st.composite
def classifiers(draw: st.DrawFn) -> onnx.ModelProto:
    """A TreeEnsembleClassifier (ai.onnx.ml 3), float or double, avoiding the outputs ORT leaves
    unwritten (binary PROBIT; one base value with two classes outside ORT's binary case)."""
    n_features, k = draw(st.integers(1, 4)), draw(st.integers(2, 4))
    single = k == 2 and draw(st.booleans())  # weights for one class only: ORT's binary case
    forest = draw(st.lists(trees(n_features, 1 if single else k, draw(st.integers(0, 4))), min_size=1, max_size=4))
    if single:
        cls = draw(st.integers(0, 1))
        for node in (n for root in forest for n in _flatten(root)):
            node.weights = [(cls, w) for _, w in node.weights]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    attrs = _v3_attributes(forest, "class", rng)
    n_bases = draw(st.sampled_from((0, 1, 2) if k == 2 else (0, k)))  # the sizes ORT accepts
    if n_bases:
        attrs["base_values"] = [draw(st.sampled_from(WEIGHTS)) for _ in range(n_bases)]
    binary_case = k == 2 and len(set(attrs["class_ids"])) == 1
    post = draw(st.sampled_from([p for p in POSTS if not (k == 2 and p == "PROBIT")]))
    if k == 2 and n_bases == 1 and not binary_case:
        attrs.pop("base_values")
    attrs["post_transform"] = post
    if draw(st.booleans()):
        attrs["classlabels_int64s"] = draw(st.lists(st.integers(-5, 50), min_size=k, max_size=k, unique=True))
    else:
        attrs["classlabels_strings"] = [f"c{i}" for i in range(k)]
    label_type = TensorProto.INT64 if "classlabels_int64s" in attrs else TensorProto.STRING
    nodes, feed = [], "X"
    if draw(st.booleans()):
        _as_double(attrs, ("nodes_values", "class_weights", "base_values"), rng)
        nodes.append(helper.make_node("Cast", ["X"], ["Xd"], to=TensorProto.DOUBLE))
        feed = "Xd"
    nodes.append(helper.make_node("TreeEnsembleClassifier", [feed], ["label", "probabilities"],
                                  domain="ai.onnx.ml", **attrs))
    outputs = [helper.make_tensor_value_info("label", label_type, [None]),
               helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, k])]
    return _model(nodes, n_features, outputs, 3)


@st.composite
def regressors(draw: st.DrawFn) -> onnx.ModelProto:
    """A TreeEnsembleRegressor (ai.onnx.ml 3) with any aggregate and post transform."""
    n_features, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    forest = draw(st.lists(trees(n_features, k, draw(st.integers(0, 4))), min_size=1, max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    attrs = _v3_attributes(forest, "target", rng)
    n_bases = draw(st.sampled_from((0, k)))  # the sizes ORT accepts
    if n_bases:
        attrs["base_values"] = [draw(st.sampled_from(WEIGHTS)) for _ in range(n_bases)]
    attrs.update(n_targets=k, post_transform=draw(st.sampled_from(POSTS)),
                 aggregate_function=draw(st.sampled_from(AGGREGATES)))
    nodes, feed = [], "X"
    if draw(st.booleans()):
        _as_double(attrs, ("nodes_values", "target_weights", "base_values"), rng)
        nodes.append(helper.make_node("Cast", ["X"], ["Xd"], to=TensorProto.DOUBLE))
        feed = "Xd"
    nodes.append(helper.make_node("TreeEnsembleRegressor", [feed], ["variable"], domain="ai.onnx.ml", **attrs))
    return _model(nodes, n_features, [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, k])], 3)


@st.composite
def ensembles_v5(draw: st.DrawFn) -> onnx.ModelProto:
    """An opset-5 TreeEnsemble, membership nodes included; each leaf has one weight."""
    n_features, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    forest = draw(st.lists(trees(n_features, k, draw(st.integers(0, 4)), member=True), min_size=1, max_size=4))
    interior: list[Node] = []
    leaves: list[Node] = []
    roots = []
    for root in forest:
        if root.mode == "LEAF":  # a lone leaf becomes a node with a copy of it on each branch:
            # ONNX Runtime (1.32) miscounts one leaf that both branches of a node share, where
            # onnx.reference and mlc agree (tests/trees/test_kernel.py keeps that case)
            root = Node(mode="BRANCH_LEQ", true=root, false=Node(weights=list(root.weights)))
        roots.append(len(interior))
        for node in _flatten(root):
            (leaves if node.mode == "LEAF" else interior).append(node)
    index = {id(n): i for i, n in enumerate(interior)} | {id(n): i for i, n in enumerate(leaves)}
    modes = {m: i for i, m in enumerate((*MODES, "BRANCH_MEMBER"))}
    members = [v for n in interior if n.mode == "BRANCH_MEMBER" for v in [*n.members, float("nan")]]
    attrs = dict(
        n_targets=k, tree_roots=roots,
        aggregate_function=draw(st.integers(0, 3)), post_transform=draw(st.integers(0, 4)),
        nodes_modes=numpy_helper.from_array(np.array([modes[n.mode] for n in interior], np.uint8)),
        nodes_featureids=[n.feature for n in interior],
        nodes_splits=numpy_helper.from_array(np.array([n.threshold for n in interior], np.float32)),
        nodes_missing_value_tracks_true=[n.missing for n in interior],
        nodes_truenodeids=[index[id(n.true)] for n in interior],
        nodes_trueleafs=[int(n.true.mode == "LEAF") for n in interior],
        nodes_falsenodeids=[index[id(n.false)] for n in interior],
        nodes_falseleafs=[int(n.false.mode == "LEAF") for n in interior],
        leaf_targetids=[n.weights[0][0] for n in leaves],
        leaf_weights=numpy_helper.from_array(np.array([n.weights[0][1] for n in leaves], np.float32)),
    )
    if members:
        attrs["membership_values"] = numpy_helper.from_array(np.array(members, np.float32))
    nodes, feed, out_type = [], "X", TensorProto.FLOAT
    if draw(st.booleans()):  # double splits and weights, input cast to double, double output
        for name in ("nodes_splits", "leaf_weights", "membership_values"):
            if name in attrs:
                attrs[name] = numpy_helper.from_array(numpy_helper.to_array(attrs[name]).astype(np.float64))
        nodes.append(helper.make_node("Cast", ["X"], ["Xd"], to=TensorProto.DOUBLE))
        feed, out_type = "Xd", TensorProto.DOUBLE
    nodes.append(helper.make_node("TreeEnsemble", [feed], ["Y"], domain="ai.onnx.ml", **attrs))
    return _model(nodes, n_features, [helper.make_tensor_value_info("Y", out_type, [None, k])], 5)


@st.composite
def inputs(draw: st.DrawFn, model: onnx.ModelProto) -> np.ndarray:
    """Rows from the threshold pool, random floats, NaN and infinities; 1 to 70 rows, so both
    the one-row path and the block path (with a partial block) run."""
    n_features = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    rows = draw(st.sampled_from([1, 2, 5, 17, 70]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    specials = np.array([np.nan, np.inf, -np.inf], np.float32)
    pool = np.concatenate([POOL, POOL, specials, rng.normal(size=6).astype(np.float32)])
    return rng.choice(pool, size=(rows, n_features)).astype(np.float32)
