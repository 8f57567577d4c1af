"""Reading ensembles as ORT does, finding them in graphs, and the exactness of the rewrite."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper

from mlc.trees import compile_tree_ensemble, find_tree_ensemble
from mlc.trees.layout import _member_intervals, _round_down
from mlc.trees.parse import NodeMode, parse_tree_ensemble
from tests import zoo
from tests.trees.reference import assert_same_outputs, ort_run


def _stumps(tree_ids: list[int], order: list[int] | None = None) -> onnx.NodeProto:
    """Regressor stumps x0 <= 0, their nodes listed in the given order (default: tree by tree)."""
    rows = [(t, node, mode) for t in tree_ids for node, mode in ((0, "BRANCH_LEQ"), (1, "LEAF"), (2, "LEAF"))]
    rows = [rows[i] for i in order] if order else rows
    node = helper.make_node(
        "TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=1, aggregate_function="AVERAGE",
        nodes_treeids=[t for t, _, _ in rows], nodes_nodeids=[n for _, n, _ in rows],
        nodes_featureids=[0] * len(rows), nodes_values=[0.0] * len(rows), nodes_modes=[m for _, _, m in rows],
        nodes_truenodeids=[1 if n == 0 else 0 for _, n, _ in rows],
        nodes_falsenodeids=[2 if n == 0 else 0 for _, n, _ in rows],
        target_treeids=[t for t in tree_ids for _ in (1, 2)], target_nodeids=[n for _ in tree_ids for n in (1, 2)],
        target_ids=[0] * 2 * len(tree_ids), target_weights=[w + t for t in tree_ids for w in (1.0, 2.0)])
    return node


def _model(node: onnx.NodeProto) -> onnx.ModelProto:
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 1])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])


def test_a_root_is_the_first_node_of_each_run_of_tree_ids() -> None:
    # Tree 0's root, then tree 1, then tree 0's leaves: ORT sees three runs, so three "trees",
    # the third rooted at a leaf, and averages over three.
    node = _stumps([0, 1], order=[0, 3, 4, 5, 1, 2])
    ens = parse_tree_ensemble(node)
    assert ens.n_trees == 3
    assert ens.mode[ens.roots].tolist() == [NodeMode.LEQ, NodeMode.LEQ, NodeMode.LEAF]
    x = np.array([[-1.0], [1.0], [np.nan]], np.float32)
    assert_same_outputs(compile_tree_ensemble(_model(node)).predict(x), ort_run(_model(node), x))


def test_single_target_keeps_a_leafs_first_weight() -> None:
    node = _stumps([0])
    for a in node.attribute:  # a second weight on each leaf, which ORT's one-target path ignores
        if a.name in ("target_treeids", "target_nodeids", "target_ids"):
            a.ints.extend(list(a.ints))
        if a.name == "target_weights":
            a.floats.extend([100.0, 100.0])
    ens = parse_tree_ensemble(node)
    assert ens.weight_value.tolist() == [1.0, 2.0]
    x = np.array([[-1.0], [1.0], [np.nan]], np.float32)
    assert_same_outputs(compile_tree_ensemble(_model(node)).predict(x), ort_run(_model(node), x))


@given(c=st.floats(allow_nan=True, allow_infinity=True, width=64), strict=st.booleans(),
       z=st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=20))
def test_thresholds_round_to_the_same_float32_answers(c: float, strict: bool, z: list[float]) -> None:
    t = _round_down(np.array([c]), np.array([strict]))[0]
    zs = np.array(z, np.float32)
    want = zs.astype(np.float64) < c if strict else zs.astype(np.float64) <= c
    np.testing.assert_array_equal(zs <= t, want)


def test_membership_intervals_follow_ort() -> None:
    assert _member_intervals(np.array([0.0, 30.0])) == [(0.0, False, 0.0, False), (30.0, False, 30.0, False)]
    assert _member_intervals(np.array([2.0, -1.0, 0.0, 40.0])) == [
        (2.0, False, 3.0, True), (-2.0, True, -1.0, False), (-1.0, True, 1.0, True), (40.0, False, 41.0, True)]


def _with_tail(tail: list[onnx.NodeProto], constants: list[onnx.TensorProto], out: onnx.ValueInfoProto,
               name: str = "sklearn-forest-multi") -> onnx.ModelProto:
    """A converted model whose probabilities feed the given nodes instead of the graph output."""
    proto = onnx.ModelProto()
    proto.CopyFrom(zoo.converted(name))  # the cached model is shared: edit a copy
    graph = proto.graph
    nodes = list(graph.node)
    for node in nodes:
        node.output[:] = [o.replace("probabilities", "raw") for o in node.output]
    new = helper.make_graph(nodes + tail, "g", list(graph.input), [graph.output[0], out],
                            initializer=list(graph.initializer) + constants)
    return helper.make_model(new, opset_imports=list(proto.opset_import))


def test_tail_ops_are_reproduced(eval_rows: np.ndarray) -> None:
    k = 3
    tails = {
        "scale, sigmoid, reshape": ([
            helper.make_node("Mul", ["raw", "two"], ["a"]), helper.make_node("Sub", ["a", "one"], ["b"]),
            helper.make_node("Sigmoid", ["b"], ["c"]), helper.make_node("Reshape", ["c", "shape"], ["probabilities"]),
        ], [onnx.numpy_helper.from_array(np.float32(2), "two"), onnx.numpy_helper.from_array(np.float32(1), "one"),
            onnx.numpy_helper.from_array(np.array([0, k], np.int64), "shape")], TensorProto.FLOAT),
        "normalizer, extractor, cast": ([
            helper.make_node("Normalizer", ["raw"], ["n"], domain="ai.onnx.ml", norm="L2"),
            helper.make_node("ArrayFeatureExtractor", ["n", "cols"], ["e"], domain="ai.onnx.ml"),
            helper.make_node("Cast", ["e"], ["probabilities"], to=TensorProto.DOUBLE),
        ], [onnx.numpy_helper.from_array(np.array([2, 0], np.int64), "cols")], TensorProto.DOUBLE),
    }
    for name, (nodes, consts, dtype) in tails.items():
        model = _with_tail(nodes, consts, helper.make_tensor_value_info("probabilities", dtype, None))
        kernel = compile_tree_ensemble(model)
        assert kernel is not None, name
        for n in (1, 150):
            assert_same_outputs(kernel.predict(eval_rows[:n]), ort_run(model, eval_rows[:n]))


def test_tails_it_cannot_reproduce() -> None:
    model = _with_tail([helper.make_node("Softmax", ["raw"], ["probabilities"])], [],
                       helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, None))
    assert find_tree_ensemble(model) is None
    model = _with_tail([helper.make_node("Add", ["raw", "raw"], ["probabilities"])], [],
                       helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, None))
    assert find_tree_ensemble(model) is None  # two computed operands


def test_finds_the_ensemble_behind_casts() -> None:
    proto = zoo.converted("lightgbm-binary")  # Identity, Cast and Mul by one around the ensemble
    graph = find_tree_ensemble(proto)
    assert graph is not None and graph.ensemble.kind == "classifier"
    assert [n.op_type for n in graph.tail] == ["Identity", "Identity", "Cast", "Mul"]
