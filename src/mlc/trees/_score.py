"""Numba scoring of a packed forest (see layout.py) in ONNX Runtime's arithmetic.

Why it is fast: a walk is ``n = child + (z[f] <= t)``, branch-free, and leaves absorb extra
steps, so sixteen walks run interleaved for a fixed number of steps. That hides the latency of
each dependent load behind the fifteen others instead of paying a mispredicted branch per level.
One row walks sixteen trees at a time; a block of rows walks one tree for sixteen rows at a time
(tree-major, so the tree stays in cache while the block's rows go through it). When every leaf
holds one float32 weight for the same column (regressors, binary boosting, binary forests), the
weight sits in the leaf's node record and a row's sum stays in a register.

Why it matches ORT: scores accumulate in ORT's "ThresholdType" (float32 unless the ensemble is
double) tree after tree, in tree order. Then finish_classifier / finish_regressor reproduce ORT
1.32's finalization: base values, the post transform in float32, the label, and the binary
classifier's special cases (a second column synthesised from the first, labels compared to 0.5
or 0), read from ORT's tree_ensemble_aggregator.h and ml_common.h and checked against ORT by the
tests; each quirk is noted where it happens.

All arrays come in through a few packed arguments, because numba's dispatcher pays per argument
on every call, and at batch 1 that is a visible share of the time.
"""

from __future__ import annotations

import math

import numpy as np
from numba import carray, njit, prange

from mlc.trees.layout import ADD_DENSE, ADD_SINGLE

LANES = 16  # interleaved walks
BLOCK = 64  # rows per tree-major block
CHUNK = 4 * BLOCK  # rows per task of the parallel kernel
ROW_PATH_MAX = 12  # up to this many rows, walk each row over trees (measured crossover)

# The arguments every entry point takes besides x and the outputs (see kernel._kernel_arrays):
# nodes: layout.NODE_DTYPE records. meta (int32): roots, depth, lane_roots, lane_tree (each padded
# to whole groups of LANES), group_depth (one per group), then the weights' targets. values (the
# accumulator's dtype): the weights, the base values, then 0 and the tree count. params (int64):
# the scalars below, then the class labels.
P_TREES, P_TARGETS, P_PER_LEAF, P_FEATURES, P_POST, P_AGG, P_CLASSIFIER, P_BINARY, P_POSITIVE, \
    P_BASES, P_ADD, P_COLUMN = range(12)
N_PARAMS = 12

# Codes of parse.POST_TRANSFORMS and parse.AGGREGATES, in their order.
NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT = range(5)
AVERAGE, SUM, MIN, MAX = range(4)

_F32_LOWEST = np.float32(-3.4028234663852886e38)
_SQRT2 = np.float32(math.sqrt(2.0))
_ERF_A = np.float32(2.0) / (np.float32(math.pi) * np.float32(0.147))
_ERF_B = np.float32(1.0) / np.float32(0.147)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)
_TWO = np.float32(2.0)
_ZERO_EPS = np.float32(0.0000001)

# One module for every jitted function: numba's cache is invalidated by a change to the file
# that defines a function, not to the functions it calls.
_jit = njit(nogil=True, cache=True, fastmath=False, error_model="numpy")  # IEEE division, as ORT


# ---- ORT's finalization ------------------------------------------------------------------


@_jit
def _logistic(v):
    """ORT's ComputeLogistic, in float32."""
    e = _ONE / (_ONE + np.float32(math.exp(-abs(v))))
    return _ONE - e if v < 0 else e


@_jit
def _probit(v):
    """ORT's ComputeProbit: sqrt(2) * ErfInv(2v - 1) with its 0.147 approximation, float32."""
    x = _TWO * v - _ONE
    sgn = np.float32(-1.0) if x < 0 else _ONE
    x = (_ONE - x) * (_ONE + x)
    lg = np.float32(math.log(x)) if x > 0 else (np.float32(-np.inf) if x == 0 else np.float32(np.nan))
    a = _ERF_A + _HALF * lg
    b = _ERF_B * lg
    return _SQRT2 * (sgn * np.float32(math.sqrt(-a + np.float32(math.sqrt(a * a - b)))))


@_jit
def _write_scores(vals, post, out):
    """ORT's write_scores for two or more scores (transformed in place in vals, then copied)."""
    k = vals.shape[0]
    if post == LOGISTIC:
        for j in range(k):
            vals[j] = _logistic(vals[j])
    elif post == PROBIT:
        for j in range(k):
            vals[j] = _probit(vals[j])
    elif post in (SOFTMAX, SOFTMAX_ZERO):
        vmax = _F32_LOWEST
        for j in range(k):
            if vals[j] > vmax:
                vmax = vals[j]
        total = np.float32(0.0)
        exp_neg_max = np.float32(math.exp(-vmax))
        for j in range(k):
            if post == SOFTMAX or vals[j] > _ZERO_EPS or vals[j] < -_ZERO_EPS:
                vals[j] = np.float32(math.exp(vals[j] - vmax))
                total += vals[j]
            else:
                vals[j] = vals[j] * exp_neg_max
        for j in range(k):
            vals[j] = vals[j] / total
    for j in range(k):
        out[j] = vals[j]


@_jit
def finish_classifier(acc, has, bases, zero, labels, binary, positive, post, vals, out):
    """ORT's TreeAggregatorClassifier::FinalizeScores for one row; returns the label."""
    k = out.shape[0]
    nb = bases.shape[0]
    if k > 2:
        for j in range(min(nb, k)):
            acc[j] = acc[j] + bases[j] if has[j] else bases[j]
            has[j] = 1
        best = -1
        for j in range(k):
            if has[j] and (best == -1 or acc[j] > acc[best]):
                best = j
        for j in range(k):
            vals[j] = np.float32(acc[j]) if has[j] else np.float32(0.0)
        _write_scores(vals, post, out)
        return labels[max(best, 0)]
    extra = -1  # ORT's "write_additional_scores"
    single = False  # the second score was dropped: only the first is kept
    if nb == 2:
        if has[1]:
            # ORT: score1 = base1 + score0 and score0 = -score1 (base0 and score1 unused).
            acc[1] = bases[1] + acc[0]
            acc[0] = -acc[1]
        else:
            acc[1] = acc[1] + bases[1]
            acc[0] = acc[0] + bases[0]
    elif nb == 1:
        acc[0] = acc[0] + bases[0]
        single = not has[1]
    elif nb == 0:
        extra = 3
        single = not has[1]
    first = acc[0] if has[0] else zero
    pos = acc[1] if not single and has[1] else first
    if binary:
        above = pos > 0.5 if positive else pos > 0
        extra = (0 if positive else 2) + (0 if above else 1)
        label = labels[1] if above else labels[0]
    else:
        label = np.int64(1) if pos > 0 else np.int64(0)  # ORT's raw 1/0, not class labels
    if not single:
        vals[0] = np.float32(acc[0]) if has[0] else np.float32(0.0)
        vals[1] = np.float32(acc[1]) if has[1] else np.float32(0.0)
        _write_scores(vals, post, out)
        return label
    s = first
    if post == PROBIT:
        out[0] = _probit(np.float32(s))
        out[1] = np.nan  # ORT leaves it unwritten
    elif extra >= 0 and post == LOGISTIC:
        out[0] = _logistic(np.float32(-s))
        out[1] = _logistic(np.float32(s))
    elif extra == 0 or extra == 1:
        out[0] = 1 - s
        out[1] = s
    elif extra >= 2:
        out[0] = -s
        out[1] = s
    else:
        out[0] = s
        out[1] = np.nan  # ORT leaves it unwritten
    return label


@_jit
def finish_regressor(acc, has, bases, zero, count, agg, post, vals, out):
    """ORT's FinalizeScores1 (one target) or FinalizeScores (several) for one row."""
    k = out.shape[0]
    nb = bases.shape[0]
    if k == 1:
        origin = bases[0] if nb == 1 else zero
        s = acc[0]
        if agg == SUM:
            s = s + origin
        elif agg == AVERAGE:
            s = s / count + origin
        else:
            s = s + origin if has[0] else origin
        out[0] = _probit(np.float32(s)) if post == PROBIT else s  # other transforms: ignored by ORT
        return
    use_base = nb == k
    for j in range(k):
        s = acc[j]
        if agg == AVERAGE:
            s = s / count
        if use_base:
            s = s + bases[j]
        vals[j] = s if has[j] else zero
    _write_scores(vals, post, out)


# ---- walking and summing the trees ---------------------------------------------------------


@_jit
def _step(nodes, z, off, n):
    """One level down; unsigned indices spare numba's negative-index fix-ups."""
    node = nodes[n]
    return np.uint64(node.child) + np.uint64(z[off + node.feature] <= node.threshold)


@_jit
def _walk_row(nodes, z, meta, roots, trees, t, steps, leaves):
    """Leaves of the trees in lanes t..t+15 (roots at meta[roots + lane]) for the row in z,
    walked side by side, stored at leaves[meta[trees + lane]]."""
    o = np.uint64(0)
    u = np.uint64
    r = roots + t
    n0, n1, n2, n3 = u(meta[r]), u(meta[r + 1]), u(meta[r + 2]), u(meta[r + 3])
    n4, n5, n6, n7 = u(meta[r + 4]), u(meta[r + 5]), u(meta[r + 6]), u(meta[r + 7])
    m0, m1, m2, m3 = u(meta[r + 8]), u(meta[r + 9]), u(meta[r + 10]), u(meta[r + 11])
    m4, m5, m6, m7 = u(meta[r + 12]), u(meta[r + 13]), u(meta[r + 14]), u(meta[r + 15])
    for _ in range(steps):
        n0 = _step(nodes, z, o, n0)
        n1 = _step(nodes, z, o, n1)
        n2 = _step(nodes, z, o, n2)
        n3 = _step(nodes, z, o, n3)
        n4 = _step(nodes, z, o, n4)
        n5 = _step(nodes, z, o, n5)
        n6 = _step(nodes, z, o, n6)
        n7 = _step(nodes, z, o, n7)
        m0 = _step(nodes, z, o, m0)
        m1 = _step(nodes, z, o, m1)
        m2 = _step(nodes, z, o, m2)
        m3 = _step(nodes, z, o, m3)
        m4 = _step(nodes, z, o, m4)
        m5 = _step(nodes, z, o, m5)
        m6 = _step(nodes, z, o, m6)
        m7 = _step(nodes, z, o, m7)
    w = trees + t
    leaves[meta[w]], leaves[meta[w + 1]], leaves[meta[w + 2]], leaves[meta[w + 3]] = n0, n1, n2, n3
    leaves[meta[w + 4]], leaves[meta[w + 5]], leaves[meta[w + 6]], leaves[meta[w + 7]] = n4, n5, n6, n7
    leaves[meta[w + 8]], leaves[meta[w + 9]], leaves[meta[w + 10]], leaves[meta[w + 11]] = m0, m1, m2, m3
    leaves[meta[w + 12]], leaves[meta[w + 13]], leaves[meta[w + 14]], leaves[meta[w + 15]] = m4, m5, m6, m7


@_jit
def _walk_block(nodes, z, width, root, steps, i, leaves):
    """Leaves of one tree for rows i..i+15 of the block in z: sixteen rows walked side by side."""
    n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = root
    w = np.uint64(width)
    o = np.uint64(i) * w
    for _ in range(steps):
        n0 = _step(nodes, z, o, n0)
        n1 = _step(nodes, z, o + w, n1)
        n2 = _step(nodes, z, o + np.uint64(2) * w, n2)
        n3 = _step(nodes, z, o + np.uint64(3) * w, n3)
        n4 = _step(nodes, z, o + np.uint64(4) * w, n4)
        n5 = _step(nodes, z, o + np.uint64(5) * w, n5)
        n6 = _step(nodes, z, o + np.uint64(6) * w, n6)
        n7 = _step(nodes, z, o + np.uint64(7) * w, n7)
        m0 = _step(nodes, z, o + np.uint64(8) * w, m0)
        m1 = _step(nodes, z, o + np.uint64(9) * w, m1)
        m2 = _step(nodes, z, o + np.uint64(10) * w, m2)
        m3 = _step(nodes, z, o + np.uint64(11) * w, m3)
        m4 = _step(nodes, z, o + np.uint64(12) * w, m4)
        m5 = _step(nodes, z, o + np.uint64(13) * w, m5)
        m6 = _step(nodes, z, o + np.uint64(14) * w, m6)
        m7 = _step(nodes, z, o + np.uint64(15) * w, m7)
    _put16(leaves, n0, n1, n2, n3, n4, n5, n6, n7, m0, m1, m2, m3, m4, m5, m6, m7)


@_jit
def _put16(leaves, n0, n1, n2, n3, n4, n5, n6, n7, m0, m1, m2, m3, m4, m5, m6, m7):
    leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5], leaves[6], leaves[7] = \
        n0, n1, n2, n3, n4, n5, n6, n7
    leaves[8], leaves[9], leaves[10], leaves[11], leaves[12], leaves[13], leaves[14], leaves[15] = \
        m0, m1, m2, m3, m4, m5, m6, m7


@_jit
def _add_leaf(nodes, w_target, w_value, mode, per_leaf, agg, leaf, acc, has, row):
    """Add a leaf's weights to one row's scores, as ORT's aggregators do (not ADD_SINGLE)."""
    w = np.int64(nodes[leaf].weights)
    if mode == ADD_DENSE:
        for j in range(per_leaf):
            acc[row, j] += w_value[w + j]
        return
    for j in range(per_leaf):
        c = w_target[w + j]
        v = w_value[w + j]
        if agg == MIN:
            if not has[row, c] or v < acc[row, c]:
                acc[row, c] = v
        elif agg == MAX:
            if not has[row, c] or v > acc[row, c]:
                acc[row, c] = v
        else:
            acc[row, c] += v
        has[row, c] = 1


@_jit
def _fill_z(x, r0, rows, n_features, z):
    """z = [x, -x] for rows r0..r0+rows, one row after another."""
    width = 2 * n_features
    for i in range(rows):
        for f in range(n_features):
            v = x[r0 + i, f]
            z[i * width + f] = v
            z[i * width + n_features + f] = -v


@_jit
def _score_rows(x, r0, r1, nodes, meta, values, params, out, out_label):
    """Score rows r0..r1 of x into out / out_label (one thread)."""
    if r1 - r0 <= ROW_PATH_MAX:
        _score_few(x, r0, r1, nodes, meta, values, params, out, out_label)
    else:
        _score_blocks(x, r0, r1, nodes, meta, values, params, out, out_label)


@_jit
def _score_few(x, r0, r1, nodes, meta, values, params, out, out_label):
    """One row at a time, sixteen trees at a time. Lanes hold trees sorted by depth, so that a
    group's steps fit all its trees; the leaves are then added in tree order, which fixes the
    float rounding. Lean on allocations and views: at batch 1 they are a visible cost."""
    n_trees, k, nf, mode = params[P_TREES], params[P_TARGETS], params[P_FEATURES], params[P_ADD]
    padded = (n_trees + LANES - 1) // LANES * LANES
    groups = padded // LANES
    z = np.empty(2 * nf, np.float32)
    leaves = np.empty(padded, np.uint64)
    acc = np.zeros((r1 - r0, k + 1), values.dtype)
    has = np.zeros((r1 - r0, k + 1), np.uint8)
    for i in range(r1 - r0):
        _fill_z(x, r0 + i, 1, nf, z)
        for g in range(groups):
            _walk_row(nodes, z, meta, 2 * padded, 3 * padded, g * LANES, meta[4 * padded + g], leaves)
        if mode == ADD_SINGLE:
            total = np.float32(0.0)  # in a register
            for t in range(n_trees):
                total += nodes[leaves[t]].value
            acc[i, 0] = total
        else:
            n_weights = meta.shape[0] - 4 * padded - groups
            w_target, w_value = meta[4 * padded + groups:], values[:n_weights]
            for t in range(n_trees):
                _add_leaf(nodes, w_target, w_value, mode, params[P_PER_LEAF], params[P_AGG], leaves[t], acc, has, i)
    _finish_rows(acc, has, r0, r1 - r0, values, params, meta.shape[0] - 4 * padded - groups, out, out_label)


@_jit
def _score_blocks(x, r0, r1, nodes, meta, values, params, out, out_label):
    """Blocks of BLOCK rows, tree after tree, sixteen rows of a tree at a time."""
    n_trees, k, per_leaf, nf = params[P_TREES], params[P_TARGETS], params[P_PER_LEAF], params[P_FEATURES]
    agg, mode = params[P_AGG], params[P_ADD]
    padded = (n_trees + LANES - 1) // LANES * LANES
    roots, depth = meta[:padded], meta[padded:2 * padded]
    w_target = meta[4 * padded + padded // LANES:]
    n_weights = w_target.shape[0]
    w_value = values[:n_weights]
    width = 2 * nf
    block = min(BLOCK, r1 - r0)
    z = np.zeros((block + LANES - 1) // LANES * LANES * width, np.float32)  # spare lanes read whole rows
    acc = np.zeros((block, k + 1), values.dtype)
    has = np.zeros((block, k + 1), np.uint8)
    sums = np.zeros(block, np.float32)
    leaves = np.empty(LANES, np.uint64)
    for b0 in range(r0, r1, BLOCK):
        rows = min(BLOCK, r1 - b0)
        _fill_z(x, b0, rows, nf, z)
        acc[:] = 0
        has[:] = 0
        sums[:] = 0
        for t in range(n_trees):
            root = np.uint64(roots[t])
            for i in range(0, rows, LANES):
                _walk_block(nodes, z, width, root, depth[t], i, leaves)
                if mode == ADD_SINGLE:
                    for j in range(min(LANES, rows - i)):
                        sums[i + j] += nodes[leaves[j]].value
                else:
                    for j in range(min(LANES, rows - i)):
                        _add_leaf(nodes, w_target, w_value, mode, per_leaf, agg, leaves[j], acc, has, i + j)
        if mode == ADD_SINGLE:
            acc[:rows, 0] = sums[:rows]
        _finish_rows(acc, has, b0, rows, values, params, n_weights, out, out_label)


@_jit
def _finish_rows(acc, has, r0, rows, values, params, n_weights, out, out_label):
    """Turn the sums of rows r0..r0+rows into outputs (single and dense adds fill has here)."""
    k, mode = params[P_TARGETS], params[P_ADD]
    nb = params[P_BASES]
    bases = values[n_weights:n_weights + nb]
    zero, count = values[n_weights + nb], values[n_weights + nb + 1]
    vals = np.empty(k, out.dtype)
    for i in range(rows):
        if mode == ADD_SINGLE:  # summed in column 0, belongs to P_COLUMN
            column = params[P_COLUMN]
            if column:
                acc[i, column] = acc[i, 0]
                acc[i, 0] = zero
            has[i, column] = 1
        elif mode == ADD_DENSE:
            has[i, :k] = 1
        if params[P_CLASSIFIER]:
            out_label[r0 + i] = finish_classifier(
                acc[i], has[i], bases, zero, params[N_PARAMS:], params[P_BINARY], params[P_POSITIVE],
                params[P_POST], vals, out[r0 + i])
        else:
            finish_regressor(acc[i], has[i], bases, zero, count, params[P_AGG], params[P_POST], vals, out[r0 + i])


@_jit
def score(x, nodes, meta, values, params, out, out_label):
    """Score every row of x on the calling thread."""
    _score_rows(x, 0, x.shape[0], nodes, meta, values, params, out, out_label)


@njit(nogil=True, cache=True, fastmath=False, error_model="numpy", parallel=True)
def score_parallel(x, nodes, meta, values, params, out, out_label):
    """Score x in chunks of rows on numba's threads (the caller sets how many, and a chunk size
    of 1 so that chunks go to threads as they free up: a thread slowed by a busy core then
    holds up no more than one chunk)."""
    n = x.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        _score_rows(x, c * CHUNK, min(n, (c + 1) * CHUNK), nodes, meta, values, params, out, out_label)


def score_pointers(x, n, width, nodes, n_nodes, meta, n_meta, values, n_values, params, n_params, out, k, label,
                   n_label):
    """score() over raw buffers: the body of the C entry point (kernel.c_entry) that the compiled
    core calls directly, skipping numba's unboxing of seven arrays (the larger share of a batch-1
    call's fixed cost). Compiled by numba.cfunc, never called from Python."""
    score(carray(x, (n, width)), carray(nodes, n_nodes), carray(meta, n_meta), carray(values, n_values),
          carray(params, n_params), carray(out, (n, k)), carray(label, n_label))
