"""A numba kernel that scores an ONNX tree-ensemble graph faster than ONNX Runtime.

``compile_tree_ensemble`` reads the graph (parse.py), packs the forest (layout.py), compiles
and warms the numba functions (_score.py), and returns a :class:`TreeKernel` whose ``predict``
returns exactly what ``InferenceSession.run`` returns for the graph: same output names, dtypes
and shapes, and values equal to ORT's single-threaded run up to float32 rounding.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import numba
import numpy as np
import onnx
from numba.core.dispatcher import Dispatcher

from mlc.errors import InvalidInputError
from mlc.trees import _score
from mlc.trees._tail import compile_tail, elem_type
from mlc.trees.layout import NODE_DTYPE, PackedForest, pack
from mlc.trees.parse import AGGREGATES, POST_TRANSFORMS, EnsembleGraph, TreeEnsemble, find_tree_ensemble

_PARALLEL_MIN_ROWS = 2 * _score.CHUNK  # below this, threads cost more than they save
# numba's workqueue threading layer (its fallback without OpenMP or TBB) cannot run two parallel
# regions at once; one parallel call at a time also keeps the thread count per call meaningful.
_PARALLEL_LOCK = threading.Lock()
_FLOAT32 = np.dtype(np.float32)


def compile_tree_ensemble(model: onnx.ModelProto, n_threads: int = 1) -> TreeKernel | None:
    """A warmed-up kernel for ``model``, or None when the graph is not one tree ensemble with
    a tail the kernel reproduces (see :func:`supports_tree_ensemble`)."""
    found = _kernel_graph(model)
    if found is None:
        return None
    graph, tail = found
    kernel = TreeKernel(graph, pack(graph.ensemble), tail, n_threads)
    kernel.warmup()
    return kernel


def supports_tree_ensemble(model: onnx.ModelProto) -> bool:
    """Whether compile_tree_ensemble would build a kernel for ``model``: the same checks,
    without packing the forest or compiling anything."""
    return _kernel_graph(model) is not None


def _kernel_graph(model: onnx.ModelProto) -> tuple[EnsembleGraph, tuple] | None:
    """The graph's tree ensemble and its compiled tail, or None when the kernel cannot
    reproduce the graph (see :func:`mlc.trees.parse.find_tree_ensemble`)."""
    graph = find_tree_ensemble(model)
    if graph is None:
        return None
    ens = graph.ensemble
    names = list(graph.node.output)
    dtypes = {names[-1]: ens.output_dtype}
    if ens.kind == "classifier":
        dtypes[names[0]] = np.dtype(object) if ens.string_labels else np.dtype(np.int64)
    tail = compile_tail(graph.tail, graph.constants, dtypes)
    if tail is None:
        return None
    declared = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    _, alias, out_dtypes = tail
    for name in graph.output_names:
        if elem_type(out_dtypes[alias.get(name, name)]) != declared[name]:
            return None
    if graph.n_columns is not None and graph.n_columns < max(ens.n_features, 1):  # pack's n_features
        return None  # ORT refuses such a graph at run time
    return graph, tail


class TreeKernel:
    """Scores float32 rows like the ONNX graph it was compiled from.

    ``predict`` is the hot path: it checks the input, allocates the outputs and makes one call
    into numba; the tail ops of the graph run only when they are not no-ops.
    """

    def __init__(self, graph: EnsembleGraph, packed: PackedForest, tail: tuple, n_threads: int = 1) -> None:
        ens = graph.ensemble
        self.ensemble = ens
        self.n_threads = max(1, int(n_threads))
        self.output_names: tuple[str, ...] = graph.output_names
        self._n_columns = graph.n_columns
        self._n_features = packed.n_features
        self._width = graph.n_columns or packed.n_features  # the width the fast path accepts
        self._k = ens.n_targets
        self._out_dtype = ens.output_dtype
        self._classifier = ens.kind == "classifier"
        self._classlabels = ens.classlabels if ens.string_labels else None
        self._nodes, self._meta, self._values, self._params = _kernel_arrays(ens, packed)
        self._parallel_min = _PARALLEL_MIN_ROWS if self.n_threads > 1 else None
        # numba.config sets its settings through globals(), which its type information cannot show.
        self._threads = min(self.n_threads, numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        # The dispatchers, bound to their compiled entry points in warmup().
        self._score: Callable[..., None] = _score.score
        self._score_parallel: Callable[..., None] = _score.score_parallel
        self._no_label = np.empty(0, np.int64)
        names = list(graph.node.output)
        self._label_name = names[0] if self._classifier else None
        self._scores_name = names[-1]
        self._steps, alias, _ = tail
        self._sources = tuple((name, alias.get(name, name)) for name in self.output_names)
        # Outputs that are the ensemble's own, as (name, 0 for label / 1 for scores): no dict to build.
        direct = {self._label_name: 0, self._scores_name: 1}
        simple = not self._steps and self._classlabels is None and all(src in direct for _, src in self._sources)
        self._direct = tuple((name, direct[src]) for name, src in self._sources) if simple else None

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs for the rows of ``x`` (float32, shape (n, n_columns)).

        warmup() replaces this method on the instance by the compiled core's TreeCall.predict
        for the common graphs (no tail ops): the same computation, entered from C.
        """
        try:
            n, width = x.shape
            if width != self._width or x.dtype != _FLOAT32 or not x.flags.c_contiguous:
                raise ValueError
        except (AttributeError, ValueError):
            x = self._prepare(x)
            n = x.shape[0]
        out = np.empty((n, self._k), self._out_dtype)
        label = np.empty(n, np.int64) if self._classifier else self._no_label
        if self._parallel_min is not None and n >= self._parallel_min:
            with _PARALLEL_LOCK:
                threads, chunk = numba.get_num_threads(), numba.set_parallel_chunksize(1)
                numba.set_num_threads(self._threads)
                try:
                    self._score_parallel(x, self._nodes, self._meta, self._values, self._params, out, label)
                finally:
                    numba.set_num_threads(threads)
                    numba.set_parallel_chunksize(chunk)
        else:
            self._score(x, self._nodes, self._meta, self._values, self._params, out, label)
        direct = self._direct
        if direct is not None:
            pair = (label, out)
            if len(direct) == 2:
                return {direct[0][0]: pair[direct[0][1]], direct[1][0]: pair[direct[1][1]]}
            return {name: pair[i] for name, i in direct}
        env = {self._scores_name: out}
        if self._label_name is not None:  # a classifier
            env[self._label_name] = label if self._classlabels is None else self._classlabels[label]
        for step in self._steps:
            step(env)
        return {name: env[source] for name, source in self._sources}

    def _prepare(self, x: object) -> np.ndarray:
        """x as C-contiguous float32 rows of an accepted width, else InvalidInputError."""
        arr = np.ascontiguousarray(x, dtype=np.float32)
        if arr.ndim != 2 or (arr.shape[1] != self._n_columns if self._n_columns else arr.shape[1] < self._n_features):
            raise InvalidInputError(
                f"expected float32 rows of shape (n, {self._width}), got shape {arr.shape}")
        return arr

    def warmup(self) -> None:
        """Compile (or load from numba's cache) every path predict can take, then bind the
        compiled functions so that calls skip numba's type dispatch."""
        for rows in (1, _score.ROW_PATH_MAX + 1, _PARALLEL_MIN_ROWS):
            self.predict(np.zeros((rows, self._width), np.float32))
        x = np.zeros((1, self._width), np.float32)
        args = (x, self._nodes, self._meta, self._values, self._params, np.empty((1, self._k), self._out_dtype),
                np.empty(1, np.int64))
        self._score = _entry_point(_score.score, args)
        if self._parallel_min is not None:
            self._score_parallel = _entry_point(_score.score_parallel, args)
        compiled = self._compiled_predict() if self._direct is not None else None
        if compiled is not None:
            self.__dict__["predict"] = compiled  # the instance's own attribute shadows the method

    def _compiled_predict(self) -> Callable[[np.ndarray], dict[str, np.ndarray]] | None:
        """predict through the compiled core's TreeCall (about 1 µs less per call than the
        Python method), or None when mlc runs without its extension (MLC_PURE_PYTHON=1)."""
        from mlc.runtime._check_build import core

        tree_call = getattr(core, "TreeCall", None)
        if tree_call is None:
            return None
        entry = c_entry(self._values.dtype, self._out_dtype)
        big = self._parallel_min or np.iinfo(np.int64).max
        call = tree_call(entry.address, self._nodes, self._meta, self._values, self._params, self._width, self._k,
                         self._out_dtype, self._classifier, self._direct, big, self._prepare,
                         TreeKernel.predict.__get__(self))
        return call.predict


@functools.cache
def c_entry(value_dtype: np.dtype, out_dtype: np.dtype) -> numba.core.ccallback.CFunc:
    """The kernel as a C function of raw pointers (_score.score_pointers), for these dtypes of
    the weights and the scores; compiled once per process, or loaded from numba's cache. The
    cache keeps the CFunc, and with it the address, alive."""
    t = numba.types
    ptr = t.CPointer
    i64 = t.int64
    signature = t.void(ptr(t.float32), i64, i64, ptr(numba.from_dtype(NODE_DTYPE)), i64, ptr(t.int32), i64,
                       ptr(numba.from_dtype(value_dtype)), i64, ptr(t.int64), i64, ptr(numba.from_dtype(out_dtype)),
                       i64, ptr(t.int64), i64)
    return numba.cfunc(signature, cache=True, error_model="numpy")(_score.score_pointers)


def _entry_point(dispatcher: Dispatcher, args: tuple) -> Callable[..., None]:
    """The compiled function for these argument types, called without numba's per-call type
    dispatch (a third of the call's overhead at batch 1).

    Safe because predict only passes arrays of exactly these dtypes, ranks and layouts; a
    read-only or unaligned input unboxes the same way and is only read.
    """
    signature = tuple(numba.typeof(a) for a in args)
    overload = dispatcher.overloads.get(signature)
    # CompileResult is a namedtuple built from a list of field names, which its type information cannot read.
    return overload.entry_point if overload is not None else dispatcher  # type: ignore[attr-defined]


def _kernel_arrays(ens: TreeEnsemble, packed: PackedForest) -> tuple[np.ndarray, ...]:
    """The packed arguments of _score.score: nodes, meta, values, params."""
    lanes = _score.LANES
    n_trees = ens.n_trees
    padded = -(-n_trees // lanes) * lanes
    # meta: per-tree sections padded to whole groups of lanes, then the weights' targets.
    roots = np.zeros(padded, np.int32)
    roots[:n_trees] = packed.roots
    depth = np.zeros(padded, np.int32)
    depth[:n_trees] = packed.depth
    # One-row walks take trees in groups of similar depth; spare lanes write past the trees.
    order = np.argsort(-packed.depth, kind="stable")
    spare = padded - n_trees
    lane_tree = np.r_[order, np.arange(n_trees, padded)]
    lane_roots = np.r_[packed.roots[order], np.full(spare, packed.roots[order[-1]])]
    group_depth = np.r_[packed.depth[order], np.zeros(spare, np.int32)].reshape(-1, lanes).max(axis=1)
    meta = np.concatenate([roots, depth, lane_roots, lane_tree, group_depth, packed.weight_target]).astype(np.int32)
    vdtype = ens.value_dtype
    values = np.concatenate([packed.weight_value, ens.base_values, [0.0, float(n_trees)]]).astype(vdtype)
    params = np.zeros(_score.N_PARAMS, np.int64)
    params[_score.P_TREES] = n_trees
    params[_score.P_TARGETS] = ens.n_targets
    params[_score.P_PER_LEAF] = packed.per_leaf
    params[_score.P_FEATURES] = packed.n_features
    params[_score.P_POST] = POST_TRANSFORMS.index(ens.post_transform)
    params[_score.P_AGG] = AGGREGATES.index(ens.aggregate)
    params[_score.P_CLASSIFIER] = ens.kind == "classifier"
    params[_score.P_BINARY] = ens.binary_case
    params[_score.P_POSITIVE] = ens.weights_all_positive
    params[_score.P_BASES] = len(ens.base_values)
    params[_score.P_ADD] = packed.add_mode
    params[_score.P_COLUMN] = packed.column
    if ens.kind == "classifier":
        labels = np.arange(ens.n_targets) if ens.string_labels else ens.classlabels
        params = np.concatenate([params, np.asarray(labels, np.int64)])
    return np.ascontiguousarray(packed.nodes), meta, values, params
