"""Read an ONNX-ML tree-ensemble node into flat arrays, with ONNX Runtime's semantics.

The kernel and the tensorizer must both reproduce what ONNX Runtime computes, down to
float32 rounding, and ORT reads the attributes with quirks the spec leaves open: a tree's
root is the first node of each run of equal tree ids, a single-target ensemble uses only the
first weight of a leaf, weights on branch nodes are ignored, the accumulator is double only
when the ensemble's input is double. Those readings are applied here, once, so that
everything downstream sees one normalized :class:`TreeEnsemble` (per-node arrays, roots,
per-leaf weights) whatever the operator version (TreeEnsembleClassifier/Regressor of
ai.onnx.ml 1-3, with or without the ``*_as_tensor`` attributes, or TreeEnsemble of opset 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from mlc.errors import ModelFormatError, UnsupportedModelError

ML_DOMAIN = "ai.onnx.ml"
ENSEMBLE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")


class NodeMode(IntEnum):
    """A node's test; the values of the first six match opset 5's ``nodes_modes`` encoding."""

    LEQ = 0
    LT = 1
    GTE = 2
    GT = 3
    EQ = 4
    NEQ = 5
    MEMBER = 6
    LEAF = 7


_MODE_NAMES = {f"BRANCH_{m.name}": m for m in NodeMode if m is not NodeMode.LEAF} | {"LEAF": NodeMode.LEAF}
# ORT's enum order, which ORT also uses to read opset 5's integer post_transform: there 1 means
# LOGISTIC and 2 SOFTMAX, the reverse of the spec. We follow ORT, whose outputs we must match.
POST_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")  # opset 5's integer order, and ORT's


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """One tree-ensemble node as ONNX Runtime evaluates it.

    Node ``i`` tests ``x[feature[i]] <mode> threshold[i]`` and goes to ``true_child[i]`` or
    ``false_child[i]`` (indices into these arrays, -1 at leaves); a NaN feature goes to the
    true child when ``missing_true[i]``, else wherever the comparison sends it (false, except
    for NEQ). ``MEMBER`` nodes test membership of ``member_values[member_ptr[i]:member_ptr[i+1]]``.
    Leaf ``i`` adds ``weight_value[w]`` to target ``weight_target[w]`` for ``w`` in
    ``weight_ptr[i]:weight_ptr[i+1]``, in that order (the order fixes float rounding).
    """

    kind: str  # "classifier" or "regressor"
    feature: np.ndarray  # int32 (n_nodes,)
    threshold: np.ndarray  # value_dtype (n_nodes,)
    true_child: np.ndarray  # int32 (n_nodes,)
    false_child: np.ndarray  # int32 (n_nodes,)
    mode: np.ndarray  # uint8 (n_nodes,), NodeMode values
    missing_true: np.ndarray  # bool (n_nodes,)
    member_ptr: np.ndarray  # int32 (n_nodes + 1,)
    member_values: np.ndarray  # value_dtype
    roots: np.ndarray  # int32 (n_trees,)
    weight_ptr: np.ndarray  # int32 (n_nodes + 1,)
    weight_target: np.ndarray  # int32
    weight_value: np.ndarray  # value_dtype
    n_targets: int  # targets of a regressor, classes of a classifier
    aggregate: str  # one of AGGREGATES (classifiers always sum)
    post_transform: str  # one of POST_TRANSFORMS
    base_values: np.ndarray  # value_dtype, as given (ORT uses it only at some sizes)
    classlabels: np.ndarray | None  # int64 or object (str) array; None for regressors
    weights_all_positive: bool  # ORT's switch for the binary classifier's second column
    binary_case: bool  # ORT's binary case: two classes, weights for one class id only
    value_dtype: np.dtype  # ORT's "ThresholdType": float64 only for double input
    output_dtype: np.dtype  # dtype of the scores output

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def n_nodes(self) -> int:
        return len(self.feature)

    @property
    def n_features(self) -> int:
        """Columns the ensemble reads: one past the largest feature id of a branch node."""
        branch = self.mode != NodeMode.LEAF
        return int(self.feature[branch].max()) + 1 if branch.any() else 0

    @property
    def string_labels(self) -> bool:
        return self.classlabels is not None and self.classlabels.dtype == object


def parse_tree_ensemble(node: onnx.NodeProto, input_dtype: np.dtype | type = np.float32) -> TreeEnsemble:
    """Read a tree-ensemble node whose input has ``input_dtype`` (float32 or float64)."""
    if node.domain != ML_DOMAIN or node.op_type not in ENSEMBLE_OPS:
        raise UnsupportedModelError(f"{node.op_type!r} ({node.domain}) is not an ONNX-ML tree ensemble")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    vdtype = np.dtype(np.float64 if np.dtype(input_dtype) == np.float64 else np.float32)
    if node.op_type == "TreeEnsemble":
        return _parse_v5(attrs, vdtype)
    return _parse_v3(node.op_type, attrs, vdtype)


def _floats(attrs: dict[str, Any], name: str, vdtype: np.dtype) -> np.ndarray:
    """A float attribute or its ``*_as_tensor`` twin, as ``vdtype``."""
    tensor = attrs.get(f"{name}_as_tensor")
    if tensor is not None:
        values = numpy_helper.to_array(tensor).ravel()
        if values.dtype == np.float64 and vdtype == np.float32:
            raise UnsupportedModelError(f"{name}_as_tensor is double but the ensemble's input is float")
        return values.astype(vdtype)
    return np.asarray(attrs.get(name, []), dtype=np.float32).astype(vdtype)


def _ints(attrs: dict[str, Any], name: str) -> np.ndarray:
    return np.asarray(attrs.get(name, []), dtype=np.int64)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_v3(op_type: str, attrs: dict[str, Any], vdtype: np.dtype) -> TreeEnsemble:
    classifier = op_type == "TreeEnsembleClassifier"
    prefix = "class" if classifier else "target"
    tree_ids = _ints(attrs, "nodes_treeids")
    node_ids = _ints(attrs, "nodes_nodeids")
    n = len(tree_ids)
    try:
        modes = np.array([_MODE_NAMES[_text(m)] for m in attrs.get("nodes_modes", [])], dtype=np.uint8)
    except KeyError as exc:
        raise UnsupportedModelError(f"unknown tree node mode {exc.args[0]!r}") from None
    threshold = _floats(attrs, "nodes_values", vdtype)
    feature = _ints(attrs, "nodes_featureids")
    true_ids, false_ids = _ints(attrs, "nodes_truenodeids"), _ints(attrs, "nodes_falsenodeids")
    if not (len(node_ids) == len(modes) == len(threshold) == len(feature) == len(true_ids) == len(false_ids) == n):
        raise ModelFormatError(f"{op_type}: the nodes_* attributes have different lengths")
    missing = np.zeros(n, dtype=bool)
    given = _ints(attrs, "nodes_missing_value_tracks_true")[:n]
    missing[: len(given)] = given == 1

    index = {key: i for i, key in enumerate(zip(tree_ids.tolist(), node_ids.tolist(), strict=True))}
    if len(index) != n:
        raise ModelFormatError(f"{op_type}: a (tree id, node id) pair appears twice")
    branch = modes != NodeMode.LEAF
    true_child = np.full(n, -1, dtype=np.int32)
    false_child = np.full(n, -1, dtype=np.int32)
    trees = tree_ids.tolist()
    try:
        for i in np.flatnonzero(branch).tolist():
            true_child[i] = index[(trees[i], int(true_ids[i]))]
            false_child[i] = index[(trees[i], int(false_ids[i]))]
    except KeyError as exc:
        raise ModelFormatError(f"{op_type}: a branch points at a missing node {exc.args[0]}") from None
    starts = np.flatnonzero(np.r_[True, tree_ids[1:] != tree_ids[:-1]]) if n else np.zeros(0, np.int64)

    w_trees, w_nodes = _ints(attrs, f"{prefix}_treeids"), _ints(attrs, f"{prefix}_nodeids")
    w_ids = _ints(attrs, f"{prefix}_ids")
    w_values = _floats(attrs, f"{prefix}_weights", vdtype)
    if not (len(w_trees) == len(w_nodes) == len(w_ids) == len(w_values)):
        raise ModelFormatError(f"{op_type}: the {prefix}_* attributes have different lengths")
    try:
        w_node = np.array([index[k] for k in zip(w_trees.tolist(), w_nodes.tolist(), strict=True)], np.int64)
    except KeyError as exc:
        raise ModelFormatError(f"{op_type}: a weight points at a missing node {exc.args[0]}") from None

    if classifier:
        labels_int, labels_str = attrs.get("classlabels_int64s"), attrs.get("classlabels_strings")
        if labels_str:
            classlabels = np.array([_text(s) for s in labels_str], dtype=object)
        else:
            classlabels = np.asarray(labels_int or [], dtype=np.int64)
        n_targets = len(classlabels)
        if n_targets < 2:
            raise UnsupportedModelError(f"{op_type} with {n_targets} class label(s)")
        aggregate = "SUM"  # ORT's classifier always sums, whatever aggregate_function says
    else:
        classlabels = None
        n_targets = int(attrs.get("n_targets", 0))
        aggregate = _text(attrs.get("aggregate_function", "SUM"))
    # ORT judges both switches on every weight given, including those it later ignores.
    positive = not (w_values < 0).any()
    binary = classifier and n_targets == 2 and len(np.unique(w_ids)) == 1
    return _finish(
        kind="classifier" if classifier else "regressor",
        feature=feature, threshold=threshold, true_child=true_child, false_child=false_child,
        mode=modes, missing_true=missing, member_ptr=np.zeros(n + 1, np.int32),
        member_values=np.zeros(0, vdtype), roots=starts, w_node=w_node, w_target=w_ids, w_value=w_values,
        n_targets=n_targets, aggregate=aggregate, post_transform=_text(attrs.get("post_transform", "NONE")),
        base_values=_floats(attrs, "base_values", vdtype), classlabels=classlabels,
        weights_all_positive=positive, binary_case=binary, value_dtype=vdtype,
        output_dtype=np.dtype(np.float32),
    )


def _parse_v5(attrs: dict[str, Any], vdtype: np.dtype) -> TreeEnsemble:
    """Opset-5 TreeEnsemble: interior nodes first, then one node per leaf entry."""
    splits = numpy_helper.to_array(attrs["nodes_splits"]).ravel()
    if splits.dtype != vdtype:
        raise ModelFormatError("TreeEnsemble: nodes_splits must have the input's type")
    modes = numpy_helper.to_array(attrs["nodes_modes"]).ravel().astype(np.uint8)
    if (modes > NodeMode.MEMBER).any():
        raise UnsupportedModelError("TreeEnsemble: unknown node mode")
    n_int = len(modes)
    leaf_targets = _ints(attrs, "leaf_targetids")
    leaf_weights = numpy_helper.to_array(attrs["leaf_weights"]).ravel().astype(vdtype)
    n_leaf = len(leaf_targets)
    n = n_int + n_leaf

    def child(ids: str, leafs: str) -> np.ndarray:
        to = _ints(attrs, ids)
        return np.where(_ints(attrs, leafs) == 1, to + n_int, to).astype(np.int32)

    true_child = np.r_[child("nodes_truenodeids", "nodes_trueleafs"), np.full(n_leaf, -1, np.int32)]
    false_child = np.r_[child("nodes_falsenodeids", "nodes_falseleafs"), np.full(n_leaf, -1, np.int32)]
    if n and (true_child.max() >= n or false_child.max() >= n):
        raise ModelFormatError("TreeEnsemble: a branch points past the nodes or leaves")
    missing = np.zeros(n, dtype=bool)
    given = _ints(attrs, "nodes_missing_value_tracks_true")[:n_int]
    missing[: len(given)] = given == 1

    member_ptr = np.zeros(n + 1, np.int32)
    member_values = np.zeros(0, vdtype)
    member_nodes = np.flatnonzero(modes == NodeMode.MEMBER)
    if len(member_nodes):
        values = numpy_helper.to_array(attrs["membership_values"]).ravel().astype(vdtype)
        groups = np.split(values, np.flatnonzero(np.isnan(values)))
        sets = [groups[0]] + [g[1:] for g in groups[1:]]
        counts = np.zeros(n, np.int32)
        for k, i in enumerate(member_nodes.tolist()):
            counts[i] = len(sets[k]) if k < len(sets) else 0
        if (counts[member_nodes] == 0).any():  # ORT refuses these at load time
            raise ModelFormatError("TreeEnsemble: a membership node has no values")
        members = values[~np.isnan(values)]
        if (members != np.round(members)).any() or (members <= -(2**31)).any() or (members >= 2**31).any():
            # ORT refuses non-integers; int32's minimum would also catch every out-of-range input.
            raise UnsupportedModelError("TreeEnsemble: membership values outside the int32 integers")
        member_ptr[1:] = np.cumsum(counts)
        member_values = np.concatenate(sets[: len(member_nodes)]).astype(vdtype)
    roots = _ints(attrs, "tree_roots")
    if len(roots) and (roots.max() >= n_int or roots.min() < 0):
        raise ModelFormatError("TreeEnsemble: a tree root points past the nodes")
    post = int(attrs.get("post_transform", 0))
    aggregate = int(attrs.get("aggregate_function", 1))
    if not (0 <= post < len(POST_TRANSFORMS) and 0 <= aggregate < len(AGGREGATES)):
        raise UnsupportedModelError("TreeEnsemble: unknown post_transform or aggregate_function")
    return _finish(
        kind="regressor",
        feature=np.r_[_ints(attrs, "nodes_featureids"), np.zeros(n_leaf, np.int64)],
        threshold=np.r_[splits, np.zeros(n_leaf, vdtype)], true_child=true_child, false_child=false_child,
        mode=np.r_[modes, np.full(n_leaf, NodeMode.LEAF, np.uint8)], missing_true=missing,
        member_ptr=member_ptr, member_values=member_values, roots=roots,
        w_node=np.arange(n_int, n, dtype=np.int64), w_target=leaf_targets, w_value=leaf_weights,
        n_targets=int(attrs.get("n_targets", 0)), aggregate=AGGREGATES[aggregate],
        post_transform=POST_TRANSFORMS[post], base_values=np.zeros(0, vdtype), classlabels=None,
        weights_all_positive=not (leaf_weights < 0).any(), binary_case=False, value_dtype=vdtype,
        output_dtype=vdtype,
    )


def _finish(*, w_node: np.ndarray, w_target: np.ndarray, w_value: np.ndarray, **fields: Any) -> TreeEnsemble:
    """Attach weights to leaves in ORT's order and check what ORT would refuse at run time."""
    mode, n_targets = fields["mode"], fields["n_targets"]
    n = len(mode)
    if fields["post_transform"] not in POST_TRANSFORMS or fields["aggregate"] not in AGGREGATES:
        raise UnsupportedModelError(
            f"unknown post_transform {fields['post_transform']!r} or aggregate {fields['aggregate']!r}")
    if n_targets < 1:
        raise ModelFormatError("a tree ensemble needs at least one target")
    if n == 0 or len(fields["roots"]) == 0:
        raise ModelFormatError("a tree ensemble needs at least one tree")
    n_bases = len(fields["base_values"])
    allowed = (0, 1, 2) if fields["kind"] == "classifier" and n_targets <= 2 else (0, n_targets)
    if n_bases not in allowed:  # ORT refuses these at load time
        raise ModelFormatError(f"{n_bases} base values for {n_targets} targets; expected one of {allowed}")
    on_leaf = mode[w_node] == NodeMode.LEAF if len(w_node) else np.zeros(0, bool)
    w_node, w_target, w_value = w_node[on_leaf], w_target[on_leaf], w_value[on_leaf]
    order = np.argsort(w_node, kind="stable")
    w_node, w_target, w_value = w_node[order], w_target[order], w_value[order]
    counts = np.bincount(w_node, minlength=n)
    if (counts[mode == NodeMode.LEAF] == 0).any():
        raise ModelFormatError("a leaf of the tree ensemble has no weight")
    if n_targets == 1:
        # ORT's single-target path adds only a leaf's first weight, whatever its target id.
        first = np.r_[True, w_node[1:] != w_node[:-1]][: len(w_node)]
        w_node, w_value = w_node[first], w_value[first]
        w_target, counts = np.zeros(len(w_node), np.int64), np.minimum(counts, 1)
    elif ((w_target < 0) | (w_target >= n_targets)).any():
        raise ModelFormatError(f"a weight's target id is outside [0, {n_targets})")
    feature = np.asarray(fields.pop("feature"), dtype=np.int64)
    branch = mode != NodeMode.LEAF
    if (feature[branch] < 0).any():
        raise ModelFormatError("a node has a negative feature id")
    return TreeEnsemble(
        feature=feature.astype(np.int32),
        roots=np.asarray(fields.pop("roots"), dtype=np.int32),
        weight_ptr=np.r_[0, np.cumsum(counts)].astype(np.int32),
        weight_target=w_target.astype(np.int32),
        weight_value=w_value,
        **fields,
    )


# Ops allowed after the ensemble: what skl2onnx and onnxmltools put between it and the
# graph outputs. Anything else means the kernel cannot reproduce the graph.
TAIL_OPS = {
    ("", "Identity"), ("", "Cast"), ("", "Add"), ("", "Sub"), ("", "Mul"), ("", "Div"),
    ("", "Exp"), ("", "Sigmoid"), ("", "Reshape"),
    (ML_DOMAIN, "Normalizer"), (ML_DOMAIN, "ArrayFeatureExtractor"),
}
_CASTS_IN: dict[int, type[np.floating]] = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}


@dataclass(frozen=True, eq=False)
class EnsembleGraph:
    """Where the ensemble sits in a graph: one float input, cast on the way in, a tail of
    elementwise ops on the way out."""

    ensemble: TreeEnsemble
    node: onnx.NodeProto  # the ensemble node itself
    input_name: str  # the graph's only input, float32 (batch, n_columns)
    n_columns: int | None  # its declared second dimension, when fixed
    tail: tuple[onnx.NodeProto, ...]  # nodes after the ensemble, in graph order
    constants: dict[str, np.ndarray]  # initializers and Constant outputs the tail reads
    output_names: tuple[str, ...]  # the graph's outputs, in order


def find_tree_ensemble(model: onnx.ModelProto) -> EnsembleGraph | None:
    """Locate the one tree ensemble of ``model`` and check that the rest is reproducible.

    Returns None when the graph is anything else: several ensembles, several or non-float
    inputs, ZipMap (convert with zipmap off) or any op outside :data:`TAIL_OPS`.
    """
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.attribute:
            attr = node.attribute[0]
            if attr.name != "value":
                return None
            constants[node.output[0]] = numpy_helper.to_array(attr.t)
    inputs = [i for i in graph.input if i.name not in constants]
    ensembles = [n for n in graph.node if n.domain == ML_DOMAIN and n.op_type in ENSEMBLE_OPS]
    if len(inputs) != 1 or len(ensembles) != 1:
        return None
    graph_input, node = inputs[0], ensembles[0]
    tensor_type = graph_input.type.tensor_type
    dims = tensor_type.shape.dim
    if tensor_type.elem_type != onnx.TensorProto.FLOAT or len(dims) != 2:
        return None
    producers = {out: n for n in graph.node for out in n.output}

    # Walk back from the ensemble's input to the graph input through Identity and Cast.
    head, dtype, name = [], None, node.input[0]
    while name != graph_input.name:
        prev = producers.get(name)
        if prev is None or prev.domain not in ("", "ai.onnx") or prev.op_type not in ("Identity", "Cast"):
            return None
        if prev.op_type == "Cast":
            to = next((a.i for a in prev.attribute if a.name == "to"), None)
            if to not in _CASTS_IN:
                return None
            dtype = dtype or _CASTS_IN[to]  # the cast nearest the ensemble decides
        head.append(prev)
        name = prev.input[0]
    try:
        ensemble = parse_tree_ensemble(node, dtype or np.float32)
    except UnsupportedModelError:
        return None

    known = set(node.output) | set(constants)
    tail = []
    for n in graph.node:
        if n is node or any(n is h for h in head) or n.op_type == "Constant":
            continue
        if ("" if n.domain in ("", "ai.onnx") else n.domain, n.op_type) not in TAIL_OPS:
            return None
        if not _tail_node_ok(n, known, constants):
            return None
        known.update(n.output)
        tail.append(n)
    outputs = tuple(o.name for o in graph.output)
    if not outputs or any(o not in known or o in constants for o in outputs):
        return None
    second = dims[1]
    return EnsembleGraph(
        ensemble=ensemble, node=node, input_name=graph_input.name,
        n_columns=second.dim_value if second.HasField("dim_value") else None,
        tail=tuple(tail), constants=constants, output_names=outputs,
    )


def _tail_node_ok(node: onnx.NodeProto, known: set[str], constants: dict[str, np.ndarray]) -> bool:
    """True when every input is already computed and the node's constant operands are constant."""
    if any(i not in known for i in node.input) or len(node.output) != 1:
        return False
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    data = [i for i in node.input if i not in constants]
    if node.op_type in ("Add", "Sub", "Mul", "Div"):
        return len(data) == 1 and len(node.input) == 2
    if node.op_type == "Reshape":
        return node.input[1] in constants and not attrs.get("allowzero", 0) and len(data) == 1
    if node.op_type == "ArrayFeatureExtractor":
        return node.input[1] in constants and node.input[0] not in constants
    if node.op_type == "Cast":
        return attrs.get("to") in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64)
    if node.op_type == "Normalizer":
        return _text(attrs.get("norm", "MAX")) in ("MAX", "L1", "L2")
    return len(data) == 1 and len(node.input) == 1
