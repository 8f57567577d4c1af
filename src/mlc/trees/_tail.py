"""The ops converters put after a tree ensemble, evaluated with numpy as ORT does them.

Most tails are no-ops (an Identity, a Cast to the same type, LightGBM's multiplication by
one); those are folded into renames at compile time so that the common case costs nothing
per call. What remains (Exp for Poisson objectives, Sigmoid, scaling) runs as numpy float32.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

Env = dict[str, np.ndarray]
Step = Callable[[Env], None]

_CAST: dict[int, np.dtype] = {onnx.TensorProto.FLOAT: np.dtype(np.float32),
                              onnx.TensorProto.DOUBLE: np.dtype(np.float64),
                              onnx.TensorProto.INT64: np.dtype(np.int64)}
_ELEM = {np.dtype(np.float32): onnx.TensorProto.FLOAT, np.dtype(np.float64): onnx.TensorProto.DOUBLE,
         np.dtype(np.int64): onnx.TensorProto.INT64, np.dtype(object): onnx.TensorProto.STRING}
_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
_NEUTRAL = {"Add": 0.0, "Sub": 0.0, "Mul": 1.0, "Div": 1.0}


def elem_type(dtype: np.dtype) -> int:
    """The ONNX element type of a numpy dtype the kernel produces."""
    return _ELEM[np.dtype(dtype)]


def compile_tail(nodes: tuple[onnx.NodeProto, ...], constants: dict[str, np.ndarray],
                 dtypes: dict[str, np.dtype]) -> tuple[list[Step], dict[str, str], dict[str, np.dtype]] | None:
    """Steps that compute the tail, the renames that replace no-op nodes, and output dtypes.

    ``dtypes`` gives the dtype of the ensemble's outputs; returns None when a node does not
    apply to the dtype it receives (a Cast of string labels, arithmetic on labels).
    """
    alias: dict[str, str] = {}
    dtypes = dict(dtypes)
    steps: list[Step] = []

    def source(name: str) -> str:
        return alias.get(name, name)

    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        op, out = node.op_type, node.output[0]
        data = source(next(i for i in node.input if i not in constants))
        dtype = dtypes[data]
        if dtype.kind == "O" and op != "Identity":
            return None
        if op == "Identity" or (op == "Cast" and _CAST[attrs["to"]] == dtype):
            alias[out] = data
            dtypes[out] = dtype
            continue
        if op in _BINARY:
            const = constants[next(i for i in node.input if i in constants)]
            if dtype not in (np.float32, np.float64) or const.dtype != dtype:
                return None
            data_first = node.input[0] not in constants
            if const.size == 1 and const.ndim <= 2 and float(const.ravel()[0]) == _NEUTRAL[op] \
                    and (op in ("Add", "Mul") or data_first):
                alias[out] = data  # x*1, x/1, x+0, x-0: exact no-ops
                dtypes[out] = dtype
                continue
        step, dtypes[out] = _step(node, attrs, data, dtype, constants)
        steps.append(step)
    return steps, alias, dtypes


def _step(node: onnx.NodeProto, attrs: dict, data: str, dtype: np.dtype,
          constants: dict[str, np.ndarray]) -> tuple[Step, np.dtype]:
    op, out = node.op_type, node.output[0]
    if op == "Cast":
        to = _CAST[attrs["to"]]
        return (lambda env: env.__setitem__(out, env[data].astype(to))), to
    if op in _BINARY:
        fn = _BINARY[op]
        args = [constants.get(i) for i in node.input]

        def binary(env: Env) -> None:
            a, b = (env[data] if v is None else v for v in args)
            env[out] = fn(a, b)
        return binary, dtype
    if op == "Exp":
        return (lambda env: env.__setitem__(out, np.exp(env[data]))), dtype
    if op == "Sigmoid":
        def sigmoid(env: Env) -> None:
            with np.errstate(over="ignore"):
                env[out] = (1 / (1 + np.exp(-env[data]))).astype(dtype)
        return sigmoid, dtype
    if op == "Reshape":
        shape = constants[node.input[1]].astype(np.int64)

        def reshape(env: Env) -> None:
            x = env[data]
            env[out] = x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(shape)])
        return reshape, dtype
    if op == "ArrayFeatureExtractor":
        index = constants[node.input[1]].astype(np.int64).ravel()

        def extract(env: Env) -> None:
            x = env[data]
            env[out] = np.take(x, index, axis=-1).reshape(1, -1) if x.ndim == 1 else np.take(x, index, axis=-1)
        return extract, dtype
    norm = attrs.get("norm", b"MAX")
    norm = norm.decode() if isinstance(norm, bytes) else norm
    return (lambda env: env.__setitem__(out, _normalize(env[data], norm))), np.dtype(np.float32)


def _normalize(x: np.ndarray, norm: str) -> np.ndarray:
    """ORT's Normalizer (ai.onnx.ml): rows divided by their max, L1 or L2 norm, unless it is 0."""
    x = np.atleast_2d(x).astype(np.float32)
    if norm == "MAX":
        scale = np.maximum(x.max(axis=1, keepdims=True), np.float32(np.finfo(np.float32).min))
        return np.where(scale != 0, x / np.where(scale != 0, scale, 1), x).astype(np.float32)
    if norm == "L1":
        total = np.abs(x).sum(axis=1, keepdims=True, dtype=np.float32)
        return np.where(total != 0, x / np.where(total != 0, total, 1), x).astype(np.float32)
    squares = x * x
    total = squares.sum(axis=1, keepdims=True, dtype=np.float32)
    scaled = np.sqrt(squares / np.where(total != 0, total, 1)) * np.where(x < 0, -1, 1).astype(np.float32)
    return np.where(total != 0, scaled, x).astype(np.float32)
