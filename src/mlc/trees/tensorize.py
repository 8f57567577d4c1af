"""Tree ensembles rewritten as standard ONNX tensor ops, so that they run on any execution
provider (ONNX Runtime has no CUDA kernel for the ai.onnx.ml TreeEnsemble operators).

Two of Hummingbird's strategies, both over layout.py's canonical form, in which every test is
``z[f] <= t`` on ``z = [x, -x]``: a NaN input fails every comparison, and the canonical form
already routed it to the right child, so missing values work in both strategies.

* ``gemm``: per tree, the comparisons of all its branch nodes, then two batched matrix
  products: one finds the leaf whose path agrees with every comparison, one picks the leaf's
  weights. Few, large ops: fast for shallow trees, but its matrices grow as 4^depth (a depth-10
  forest makes a model of a hundred megabytes).
* ``tree_traversal``: all trees walked one level per step, as gathers into flat node arrays
  (layout.py's packed form: leaves absorb the extra steps, so every tree takes max-depth steps).
  Size linear in the nodes; the choice for deep trees.

The rest of the graph (ORT's finalization, written out by _onnx_finish, and the ops after the
ensemble) keeps the ensemble's output names, dtypes and shapes: a drop-in replacement. Sums run
in float32 in another order than ORT's; expect differences of float32 rounding. On GPUs whose
matrix units round to TF32, the gemm strategy splits leaf weights into a TF32-exact part and a
remainder, so its sums stay within float32 rounding too.

Not supported (UnsupportedModelError): MIN and MAX aggregates, targets scored on some rows only,
ai.onnx.ml ops after the ensemble, and graphs find_tree_ensemble refuses.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from mlc.errors import UnsupportedModelError, UsageError
from mlc.trees._onnx_finish import GraphBuilder, finish, static_has
from mlc.trees.layout import PackedForest, pack
from mlc.trees.parse import ML_DOMAIN, EnsembleGraph, TreeEnsemble, find_tree_ensemble

STRATEGIES = ("auto", "gemm", "tree_traversal")
GEMM_MAX_DEPTH = 3  # auto: Hummingbird's choice; beyond it gemm's 4^depth matrices dominate
GEMM_MAX_ELEMENTS = 1 << 24  # auto: at most 64 MB of gemm matrices
OPSET = 17


def tensorize_tree_ensemble(model: onnx.ModelProto, strategy: str = "auto",
                            batch_size_hint: int | None = None) -> onnx.ModelProto:
    """``model`` with its tree ensemble replaced by standard ONNX ops (no ai.onnx.ml op left).

    ``auto`` picks gemm for trees of depth <= 3 whose matrices stay small, or for depth <= 5
    when batches are known to be small (``batch_size_hint`` <= 64: fewer ops to launch, and
    little arithmetic at that size), else tree_traversal.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown tensorize strategy {strategy!r}", f"choose one of: {', '.join(STRATEGIES)}")
    graph = find_tree_ensemble(model)
    if graph is None:
        raise UnsupportedModelError("the graph is not one tree ensemble with a tail mlc reproduces",
                                    "convert the model with ZipMap off, or keep ONNX Runtime's tree operators")
    ens = graph.ensemble
    if ens.aggregate in ("MIN", "MAX"):
        raise UnsupportedModelError(f"aggregate {ens.aggregate} is not tensorized", "use the tree kernel or ORT")
    if any(n.domain not in ("", "ai.onnx") for n in graph.tail):
        raise UnsupportedModelError("ai.onnx.ml ops after the tree ensemble", "keep ONNX Runtime's operators")
    packed = pack(ens)
    tree_slots = _tree_slots(packed)
    weights = [ens.weight_target[ens.weight_ptr[i]:ens.weight_ptr[i + 1]] for i in range(ens.n_nodes)]
    leaf_nodes, tree_of_leaf = _leaves(packed, tree_slots)
    has = static_has(ens, [weights[i] for i in leaf_nodes], tree_of_leaf)
    if strategy == "auto":
        strategy = _choose(packed, tree_slots, batch_size_hint)
    opset = max([OPSET, *(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))])
    g = GraphBuilder("mlc_trees_", opset)
    z = _z(g, graph.input_name, packed.n_features, graph.n_columns)
    values = _leaf_values(ens, packed)
    if strategy == "gemm":
        sums = _gemm(g, packed, tree_slots, values, z, ens.n_targets)
    else:
        sums = _traverse(g, packed, values, z, ens.n_targets)
    outputs = list(graph.node.output)
    scores = outputs[-1] if ens.output_dtype == np.float32 else g.name("scores")
    finish(g, ens, sums, has, outputs[0] if ens.kind == "classifier" else None, scores)
    if scores != outputs[-1]:  # opset 5 on double input answers in double
        g.op("Cast", scores, to=TensorProto.DOUBLE, out=outputs[-1])
    return _assemble(model, graph, g, opset)


def _tree_slots(packed: PackedForest) -> list[np.ndarray]:
    """Slots of each tree: a contiguous block starting at its root (breadth-first)."""
    starts = np.r_[packed.roots, len(packed.nodes)]
    return [np.arange(starts[t], starts[t + 1]) for t in range(len(packed.roots))]


def _leaves(packed: PackedForest, tree_slots: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Parsed node index and tree of every leaf slot, in slot order."""
    is_leaf = packed.nodes["child"] == np.arange(len(packed.nodes))
    tree = np.concatenate([np.full(len(s), t) for t, s in enumerate(tree_slots)])
    return packed.leaf_node[is_leaf], tree[is_leaf]


def _leaf_values(ens: TreeEnsemble, packed: PackedForest) -> np.ndarray:
    """(n_slots, k) float32: what each leaf slot adds to each target (zeros elsewhere)."""
    values = np.zeros((len(packed.nodes), ens.n_targets), np.float64)
    is_leaf = packed.nodes["child"] == np.arange(len(packed.nodes))
    slots = np.flatnonzero(is_leaf)
    for slot, node in zip(slots.tolist(), packed.leaf_node[is_leaf].tolist(), strict=True):
        for w in range(ens.weight_ptr[node], ens.weight_ptr[node + 1]):
            values[slot, ens.weight_target[w]] += ens.weight_value[w]
    return values.astype(np.float32)


def _choose(packed: PackedForest, tree_slots: list[np.ndarray], batch_size_hint: int | None) -> str:
    depth = int(packed.depth.max())
    small_batches = batch_size_hint is not None and batch_size_hint <= 64
    if depth <= GEMM_MAX_DEPTH or (small_batches and depth <= GEMM_MAX_DEPTH + 2):
        branches, leaves = _gemm_sizes(packed, tree_slots)
        if len(tree_slots) * branches * leaves <= GEMM_MAX_ELEMENTS:
            return "gemm"
    return "tree_traversal"


def _z(g: GraphBuilder, x: str, n_features: int, n_columns: int | None) -> str:
    """z = [x, -x] over the first n_features columns."""
    if n_columns != n_features:
        x = g.op("Slice", x, g.const([0], np.int64), g.const([n_features], np.int64), g.const([1], np.int64))
    return g.op("Concat", x, g.op("Neg", x), axis=1)


def _gemm_sizes(packed: PackedForest, tree_slots: list[np.ndarray]) -> tuple[int, int]:
    """Largest count of branch nodes (at least 1) and of leaves over the trees."""
    is_leaf = packed.nodes["child"] == np.arange(len(packed.nodes))
    leaves = [int(is_leaf[s].sum()) for s in tree_slots]
    return max(max(len(s) - n for s, n in zip(tree_slots, leaves, strict=True)), 1), max(leaves)


def _gemm(g: GraphBuilder, packed: PackedForest, tree_slots: list[np.ndarray], values: np.ndarray, z: str,
          k: int) -> str:
    """Hummingbird's GEMM strategy, one batch of matrices per tree (padded to the largest tree)."""
    nodes = packed.nodes
    n_trees = len(tree_slots)
    n_branch, n_leaf = _gemm_sizes(packed, tree_slots)
    feature = np.zeros((n_trees, n_branch), np.int64)
    threshold = np.zeros((n_trees, n_branch), np.float32)
    paths = np.zeros((n_trees, n_branch, n_leaf), np.float32)  # +1: leaf under "yes", -1: under "no"
    yes_count = np.full((n_trees, 1, n_leaf), -1.0, np.float32)  # padding leaves never match
    leaf_values = np.zeros((n_trees, n_leaf, k), np.float32)
    for t, slots in enumerate(tree_slots):
        is_leaf = nodes["child"][slots] == slots
        branch, leaves = slots[~is_leaf], slots[is_leaf]
        column = {int(s): i for i, s in enumerate(branch)}
        feature[t, :len(branch)] = nodes["feature"][branch]
        threshold[t, :len(branch)] = nodes["threshold"][branch]
        parent: dict[int, tuple[int, int]] = {}
        for s in branch.tolist():
            child = int(nodes["child"][s])
            parent[child], parent[child + 1] = (s, 0), (s, 1)
        for j, leaf in enumerate(leaves.tolist()):
            yes, node = 0, leaf
            while node in parent:
                node, went_yes = parent[node]
                paths[t, column[node], j] = 1.0 if went_yes else -1.0
                yes += went_yes
            yes_count[t, 0, j] = yes
            leaf_values[t, j] = values[leaf]
    # Gather, not a one-hot product, picks each node's feature: NaN * 0 would poison the sums.
    picked = g.op("Gather", z, g.const(feature), axis=1)  # (n, trees, branches)
    tests = g.op("Cast", g.op("LessOrEqual", picked, g.const(threshold)), to=TensorProto.FLOAT)
    tests = g.op("Transpose", tests, perm=[1, 0, 2])  # (trees, n, branches)
    agree = g.op("MatMul", tests, g.const(paths))  # small integers: exact, also in TF32
    reached = g.op("Cast", g.op("Equal", agree, g.const(yes_count)), to=TensorProto.FLOAT)
    high = _tf32(leaf_values)  # exact in TF32; the remainder's TF32 error is ~2^-22 relative
    per_tree = g.op("Add", g.op("MatMul", reached, g.const(high)),
                    g.op("MatMul", reached, g.const(leaf_values - high)))  # (trees, n, k)
    return g.op("ReduceSum", per_tree, g.const([0], np.int64), keepdims=0)


def _tf32(x: np.ndarray) -> np.ndarray:
    """x with its float32 mantissa cut to TF32's 10 bits (so a TF32 product of it is exact)."""
    return (x.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)


def _traverse(g: GraphBuilder, packed: PackedForest, values: np.ndarray, z: str, k: int) -> str:
    """Hummingbird's tree-traversal strategy over the packed layout: next = child + (z[f] <= t).

    Tree-major (trees, rows) tensors: the final sum over trees then runs tree after tree, in
    ORT's order, so that on the CPU the sums round exactly as ORT's do.
    """
    nodes = packed.nodes
    feature = nodes["feature"].astype(np.int64)
    threshold = nodes["threshold"].astype(np.float32)
    child = nodes["child"].astype(np.int64)
    roots = packed.roots.astype(np.int64)
    zt = g.op("Transpose", z, perm=[1, 0])  # (2 * features, rows)
    # The first level reads constants: every row starts at the roots (a leaf root absorbs it).
    first = g.op("Gather", zt, g.const(feature[roots]), axis=0)  # (trees, rows)
    went = g.op("Cast", g.op("LessOrEqual", first, g.const(threshold[roots].reshape(-1, 1))), to=TensorProto.INT64)
    at = g.op("Add", g.const(child[roots].reshape(-1, 1)), went)
    features, thresholds, children = g.const(feature), g.const(threshold), g.const(child)
    for _ in range(int(packed.depth.max()) - 1):
        picked = g.op("GatherElements", zt, g.op("Gather", features, at), axis=0)
        went = g.op("Cast", g.op("LessOrEqual", picked, g.op("Gather", thresholds, at)), to=TensorProto.INT64)
        at = g.op("Add", g.op("Gather", children, at), went)
    used = np.flatnonzero(values.any(axis=0))
    if len(used) == 1:  # one target: gather scalars, not rows of k
        leaf = g.op("Gather", g.const(values[:, used[0]]), at)  # (trees, rows)
        total = g.op("Unsqueeze", g.op("ReduceSum", leaf, g.const([0], np.int64), keepdims=0),
                     g.const([1], np.int64))  # (rows, 1)
        if k == 1:
            return total
        onehot = np.zeros((1, k), np.float32)
        onehot[0, used[0]] = 1
        return g.op("Mul", total, g.const(onehot))
    leaf = g.op("Gather", g.const(values), at)  # (trees, rows, k)
    return g.op("ReduceSum", leaf, g.const([0], np.int64), keepdims=0)


def _assemble(model: onnx.ModelProto, graph: EnsembleGraph, g: GraphBuilder, opset: int) -> onnx.ModelProto:
    """The new graph: the tensorized ensemble, then the original tail, nothing else."""
    tail_inputs = {i for n in graph.tail for i in n.input}
    kept = [t for t in model.graph.initializer if t.name in tail_inputs]
    constants = [n for n in model.graph.node if n.op_type == "Constant" and n.output[0] in tail_inputs]
    new_graph = helper.make_graph(
        [*g.nodes, *constants, *graph.tail], model.graph.name or "tensorized",
        [i for i in model.graph.input if i.name == graph.input_name], list(model.graph.output),
        initializer=[*g.initializers, *kept],
    )
    out = helper.make_model(new_graph, opset_imports=[helper.make_opsetid("", opset)],
                            producer_name="mlc.trees.tensorize")
    out.ir_version = max(model.ir_version, 8)
    if any(n.domain == ML_DOMAIN for n in out.graph.node):  # pragma: no cover - guarded above
        raise UnsupportedModelError("an ai.onnx.ml op survived tensorization")
    return out
