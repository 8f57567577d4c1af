"""Rewrite a parsed ensemble into one comparison, packed for fast traversal.

Every node of every mode becomes ``z[f] <= t`` over ``z = [x, -x]`` (float32), where a
false comparison, and so any NaN, goes to the "no" child:

* ``x < t`` is ``x <= pred(t)``; ``x >= t`` is ``-x <= -t``; ``x > t`` is ``-x <= pred(-t)``.
* A node that sends NaN to its true child tests the negation instead and swaps children, so
  NaN still falls to "no". Negating ``x`` keeps this to one comparison per node (a second
  comparison or a per-node flag would sit on the traversal's critical path).
* EQ is two tests (``<=`` then ``>=``), NEQ is EQ with its children swapped, and opset 5's
  MEMBER is a chain of interval tests, one per value.
* Double thresholds (ORT compares a float input in double when the ensemble is double) are
  rounded down to the float32 that gives the same answer for every float32 input.

The packed form stores each node as a 16-byte record ``(feature in z, threshold, child, weight
start)`` in one contiguous block, breadth-first per tree. A branch's children sit side by side,
"no" first, so the next node is ``child + (z[f] <= t)``, with no branch. A leaf keeps feature 0,
a NaN threshold and itself as child, so it absorbs any further steps: a tree is walked for a
fixed number of steps (its depth), which lets several walks run interleaved without checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.errors import UnsupportedModelError
from mlc.trees.parse import NodeMode, TreeEnsemble

MAX_SLOTS = 1 << 27  # 2 GiB of nodes: a cycle or a diamond explosion, not a real forest
MAX_DEPTH = 4096
# A leaf's fourth field is its first weight's index, or the weight itself in ADD_SINGLE layouts.
NODE_DTYPE = np.dtype({"names": ["feature", "threshold", "child", "weights", "value"],
                       "formats": [np.uint32, np.float32, np.uint32, np.uint32, np.float32],
                       "offsets": [0, 4, 8, 12, 12], "itemsize": 16})
# How leaves add their weights: one float32 in the node record, always to the same column; a
# full vector of all targets in order; or anything else (ORT's general aggregation). Compiled
# into _score's cached functions, which numba does not recompile when this file changes: never
# renumber them.
ADD_SINGLE, ADD_DENSE, ADD_GENERAL = range(3)


@dataclass(frozen=True, eq=False)
class CanonicalForest:
    """The ensemble as ``z[f] <= t`` tests, before packing.

    Virtual node ``v`` with ``leaf[v] == -1`` tests ``z[zfeature[v]] <= threshold[v]`` and goes
    to ``yes[v]`` or ``no[v]`` (NaN goes to ``no``); otherwise it is the parsed leaf ``leaf[v]``.
    """

    zfeature: np.ndarray  # int32, index into z = [x[:n_features], -x[:n_features]]
    threshold: np.ndarray  # float32
    yes: np.ndarray  # int32
    no: np.ndarray  # int32
    leaf: np.ndarray  # int32, parsed node index of a leaf, -1 for a test
    roots: np.ndarray  # int32, virtual node of each tree's root
    n_features: int


@dataclass(frozen=True, eq=False)
class PackedForest:
    """The canonical forest in the kernel's memory layout (see the module docstring)."""

    nodes: np.ndarray  # NODE_DTYPE (n_slots,)
    leaf_node: np.ndarray  # int32 (n_slots,): the parsed leaf a slot holds, -1 for a branch
    roots: np.ndarray  # int32 (n_trees,) slot of each root
    depth: np.ndarray  # int32 (n_trees,) steps that reach a leaf from the root
    weight_target: np.ndarray  # int32 (n_leaf_slots * per_leaf,); n_targets marks padding
    weight_value: np.ndarray  # value dtype, same length
    per_leaf: int  # weights per leaf, padded to the largest count
    n_features: int
    add_mode: int  # ADD_SINGLE, ADD_DENSE or ADD_GENERAL
    column: int  # the target every weight goes to, under ADD_SINGLE


def _round_down(c: np.ndarray, strict: np.ndarray) -> np.ndarray:
    """The float32 ``t`` with ``z <= t`` iff ``z <= c`` (or ``z < c`` where ``strict``) for
    every non-NaN float32 ``z``; NaN where no float32 satisfies it."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = c.astype(np.float32)
        too_big = (t.astype(np.float64) >= c) & strict | (t.astype(np.float64) > c)
    t = np.where(too_big, np.nextafter(t, np.float32(-np.inf)), t)
    never = np.isnan(c) | (strict & (c == -np.inf))
    return np.where(never, np.float32(np.nan), t).astype(np.float32)


# For each mode: (negate x, strict) of the test as given, and of its negation.
_DIRECT = {NodeMode.LEQ: (False, False), NodeMode.LT: (False, True),
           NodeMode.GTE: (True, False), NodeMode.GT: (True, True)}
_NEGATED = {NodeMode.LEQ: (True, True), NodeMode.LT: (True, False),
            NodeMode.GTE: (False, True), NodeMode.GT: (False, False)}


def _tests(mode: np.ndarray, t: np.ndarray, feature: np.ndarray, yes: np.ndarray, no: np.ndarray,
           nan_yes: np.ndarray, n_features: int) -> tuple[np.ndarray, ...]:
    """Canonical (zfeature, threshold, yes, no) of ordered comparisons (LEQ/LT/GTE/GT)."""
    t = t.astype(np.float64)
    neg = np.zeros(len(mode), bool)
    strict = np.zeros(len(mode), bool)
    for m in _DIRECT:
        sel = mode == m
        neg[sel & ~nan_yes], strict[sel & ~nan_yes] = _DIRECT[m]
        neg[sel & nan_yes], strict[sel & nan_yes] = _NEGATED[m]
    thr = _round_down(np.where(neg, -t, t), strict)
    # A NaN threshold fails every comparison: "no" always, unless NaN itself goes to "yes".
    nan_t = np.isnan(t)
    neg = np.where(nan_t, False, neg)
    thr = np.where(nan_t & nan_yes, np.float32(np.inf), np.where(nan_t, np.float32(np.nan), thr))
    swap = nan_yes  # a negated test (or NaN threshold routed to "yes") swaps the children
    return (feature + n_features * neg).astype(np.int32), thr.astype(np.float32), \
        np.where(swap, no, yes).astype(np.int32), np.where(swap, yes, no).astype(np.int32)


def canonicalize(ens: TreeEnsemble) -> CanonicalForest:
    """Turn every node into ``z <= t`` tests; EQ, NEQ and MEMBER nodes add virtual nodes."""
    n, nf = ens.n_nodes, max(ens.n_features, 1)
    mode = ens.mode
    zf = np.zeros(n, np.int32)
    thr = np.full(n, np.nan, np.float32)
    yes = np.arange(n, dtype=np.int32)
    no = np.arange(n, dtype=np.int32)
    leaf = np.where(mode == NodeMode.LEAF, np.arange(n), -1).astype(np.int32)
    extra: list[tuple[np.ndarray, ...]] = []
    next_id = n

    def put(idx: np.ndarray, m: np.ndarray, t: np.ndarray, f: np.ndarray, y: np.ndarray, nn: np.ndarray,
            nan_yes: np.ndarray) -> None:
        tests = _tests(m, t, f, y, nn, nan_yes, nf)
        if len(idx) and idx[0] >= n:
            extra.append((idx, *tests))
        else:
            zf[idx], thr[idx], yes[idx], no[idx] = tests

    ordered = np.flatnonzero(np.isin(mode, list(_DIRECT)))
    put(ordered, mode[ordered], ens.threshold[ordered], ens.feature[ordered], ens.true_child[ordered],
        ens.false_child[ordered], ens.missing_true[ordered])

    # EQ: (x <= t) then (x >= t); NEQ: EQ with swapped children, NaN to the swapped "no".
    eq = np.flatnonzero((mode == NodeMode.EQ) | (mode == NodeMode.NEQ))
    if len(eq):
        is_neq = mode[eq] == NodeMode.NEQ
        t_child = np.where(is_neq, ens.false_child[eq], ens.true_child[eq])
        f_child = np.where(is_neq, ens.true_child[eq], ens.false_child[eq])
        nan_yes = ens.missing_true[eq] & ~is_neq
        second = np.arange(next_id, next_id + len(eq), dtype=np.int32)
        next_id += len(eq)
        t, f = ens.threshold[eq], ens.feature[eq]
        put(eq, np.full(len(eq), NodeMode.LEQ), t, f, second, f_child, nan_yes)
        put(second, np.full(len(eq), NodeMode.GTE), t, f, t_child, f_child, nan_yes)

    # MEMBER: an interval test per value (see _member_intervals), a miss moving on to the next;
    # only the first test can send NaN to "yes".
    for i in np.flatnonzero(mode == NodeMode.MEMBER).tolist():
        values = ens.member_values[ens.member_ptr[i]:ens.member_ptr[i + 1]]
        here, target, miss = np.array([i]), ens.true_child[i], ens.missing_true[i]
        f = ens.feature[i:i + 1]
        for k, (lo, lo_strict, hi, hi_strict) in enumerate(_member_intervals(values)):
            second = np.array([next_id], np.int32)
            last = k + 1 == len(values)
            after = np.array([ens.false_child[i] if last else next_id + 1], np.int32)
            next_id += 1 if last else 2
            put(here, np.array([NodeMode.LT if hi_strict else NodeMode.LEQ]), np.array([hi]), f, second, after,
                np.array([miss]))
            put(second, np.array([NodeMode.GT if lo_strict else NodeMode.GTE]), np.array([lo]), f,
                np.array([target]), after, np.array([miss]))
            here, miss = after, False

    if extra:
        order = np.argsort(np.concatenate([e[0] for e in extra]))
        cat = [np.concatenate([e[j] for e in extra])[order] for j in range(1, 5)]
        zf, thr, yes, no = (np.r_[a, b].astype(a.dtype) for a, b in zip((zf, thr, yes, no), cat, strict=True))
        leaf = np.r_[leaf, np.full(len(order), -1, np.int32)]
    return CanonicalForest(zfeature=zf, threshold=thr, yes=yes, no=no, leaf=leaf, roots=ens.roots.copy(),
                           n_features=nf)


def _member_intervals(values: np.ndarray) -> list[tuple[float, bool, float, bool]]:
    """(low, low strict, high, high strict) of each value of an opset-5 membership set, as ORT
    1.32 tests it: a set of integers within [0, 30] matches exactly; any other set matches
    x when int32(x), truncated toward zero, is in it, so 2 takes [2, 3), -1 takes (-2, -1]
    and 0 takes (-1, 1)."""
    values = values.astype(np.float64)
    if ((values >= 0) & (values <= 30)).all():
        return [(v, False, v, False) for v in values.tolist()]
    return [(v, False, v + 1, True) if v > 0 else (v - 1, True, v, False) if v < 0 else (-1.0, True, 1.0, True)
            for v in values.tolist()]


def pack(ens: TreeEnsemble) -> PackedForest:
    """Lay the canonical forest out breadth-first, one tree after another.

    Expanding level by level over all trees at once keeps this vectorized; a shared subtree
    (a DAG) is copied, as children must sit side by side.
    """
    forest = canonicalize(ens)
    is_leaf = forest.leaf >= 0
    level_v, level_tree = forest.roots.astype(np.int64), np.arange(len(forest.roots))
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    total = 0
    while len(level_v):
        levels.append((level_v, level_tree))
        total += len(level_v)
        if len(levels) > MAX_DEPTH or total > MAX_SLOTS:
            raise UnsupportedModelError("the tree ensemble is too deep or has a cycle")
        branch = ~is_leaf[level_v]
        kids = np.stack([forest.no[level_v[branch]], forest.yes[level_v[branch]]], axis=1)
        level_v = kids.ravel().astype(np.int64)
        level_tree = np.repeat(level_tree[branch], 2)

    v = np.concatenate([lv for lv, _ in levels])
    tree = np.concatenate([lt for _, lt in levels])
    depth_of = np.concatenate([np.full(len(lv), d, np.int32) for d, (lv, _) in enumerate(levels)])
    # Level-major slot s has its children at child_old[s], child_old[s] + 1.
    starts = np.cumsum([0] + [len(lv) for lv, _ in levels])
    child_old = np.full(total, -1, np.int64)
    for d, (lv, _) in enumerate(levels[:-1]):
        branch_slots = np.flatnonzero(~is_leaf[lv])
        child_old[starts[d] + branch_slots] = starts[d + 1] + 2 * np.arange(len(branch_slots))
    # Reorder tree by tree, keeping breadth-first order inside a tree (and siblings adjacent).
    order = np.lexsort((np.arange(total), tree))
    new_of_old = np.empty(total, np.int64)
    new_of_old[order] = np.arange(total)
    v, depth_of, child_old = v[order], depth_of[order], child_old[order]
    leaf_here = is_leaf[v]

    counts = np.diff(ens.weight_ptr)
    per_leaf = int(counts.max()) if len(counts) else 1
    leaf_nodes = forest.leaf[v[leaf_here]]
    w_idx = ens.weight_ptr[leaf_nodes][:, None] + np.arange(per_leaf)[None, :]
    valid = np.arange(per_leaf)[None, :] < counts[leaf_nodes][:, None]
    w_idx = np.where(valid, w_idx, 0)
    weight_target = np.where(valid, ens.weight_target[w_idx], ens.n_targets).astype(np.int32).ravel()
    weight_value = np.where(valid, ens.weight_value[w_idx], 0).astype(ens.value_dtype).ravel()

    add_mode, column = _add_mode(ens, per_leaf, weight_target)
    nodes = np.zeros(total, NODE_DTYPE)
    nodes["feature"] = np.where(leaf_here, 0, forest.zfeature[v])
    nodes["threshold"] = np.where(leaf_here, np.float32(np.nan), forest.threshold[v])
    nodes["child"] = np.where(leaf_here, np.arange(total), new_of_old[np.maximum(child_old, 0)])
    if add_mode == ADD_SINGLE:
        nodes["value"][leaf_here] = weight_value
    else:
        nodes["weights"][leaf_here] = np.arange(leaf_here.sum()) * per_leaf
    tree_sorted = tree[order]
    tree_depth = np.zeros(len(forest.roots), np.int32)
    np.maximum.at(tree_depth, tree_sorted, depth_of)
    return PackedForest(
        nodes=nodes, leaf_node=np.where(leaf_here, forest.leaf[v], -1).astype(np.int32),
        roots=new_of_old[starts[0]:starts[1]].astype(np.int32), depth=tree_depth,
        weight_target=weight_target, weight_value=weight_value, per_leaf=per_leaf,
        n_features=forest.n_features, add_mode=add_mode, column=column,
    )


def _add_mode(ens: TreeEnsemble, per_leaf: int, weight_target: np.ndarray) -> tuple[int, int]:
    """The cheapest way leaves can add their weights and still sum exactly as ORT does."""
    if ens.aggregate not in ("SUM", "AVERAGE"):
        return ADD_GENERAL, 0
    targets = weight_target.reshape(-1, per_leaf)
    if per_leaf == 1 and ens.value_dtype == np.float32 and (targets == targets[0, 0]).all():
        return ADD_SINGLE, int(targets[0, 0])
    if per_leaf == ens.n_targets and (targets == np.arange(per_leaf)).all():
        return ADD_DENSE, 0
    return ADD_GENERAL, 0
