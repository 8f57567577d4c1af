"""Pure-numpy twin of the compiled core, used only when MLC_PURE_PYTHON=1.

It exists for machines without a C compiler (and to debug the compiled path).
It keeps the compiled functions' contract, checks and error classes; the test
suite runs both side by side so the two cannot drift apart. It holds the GIL
for longer, which costs throughput under concurrency, not correctness.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence

import numpy as np

from mlc.errors import InvalidInputError


def pack_rows(arrays: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Concatenate C-contiguous arrays of one dtype and trailing shape along their first axis."""
    items = tuple(arrays)
    if not items:
        raise InvalidInputError("pack_rows needs at least one array")
    for i, arr in enumerate(items):
        if not isinstance(arr, np.ndarray):
            raise InvalidInputError(f"pack_rows: item {i} is a {type(arr).__name__}, not a numpy array")
    first = items[0]
    if first.ndim < 1:
        raise InvalidInputError("pack_rows: arrays need a row axis; got a 0-d array")
    if first.dtype.hasobject:
        raise InvalidInputError(f"pack_rows: cannot pack {first.dtype} arrays (they hold Python objects)")
    for i, arr in enumerate(items):
        if arr.dtype != first.dtype:
            raise InvalidInputError(f"pack_rows: array {i} is {arr.dtype}, array 0 is {first.dtype}")
        if arr.shape[1:] != first.shape[1:] or arr.ndim != first.ndim:
            raise InvalidInputError(f"pack_rows: array {i} has shape {arr.shape}, array 0 has shape {first.shape}")
        if not arr.flags.c_contiguous:
            raise InvalidInputError(f"pack_rows: array {i} is not C-contiguous", "pass np.ascontiguousarray(x)")
    shape = (sum(a.shape[0] for a in items), *first.shape[1:])
    if out is None:
        return np.concatenate(items)
    if not isinstance(out, np.ndarray):
        raise InvalidInputError(f"pack_rows: out is a {type(out).__name__}, not a numpy array")
    if out.dtype != first.dtype or out.shape != shape:
        raise InvalidInputError(f"pack_rows: out is {out.dtype} {out.shape}; the rows need {first.dtype} {shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise InvalidInputError("pack_rows: out must be C-contiguous and writeable")
    return np.concatenate(items, out=out)


def scatter_rows(buffer: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    """Split buffer's rows into consecutive fresh copies of counts[i] rows each."""
    if not isinstance(buffer, np.ndarray):
        raise ValueError(f"scatter_rows: buffer is a {type(buffer).__name__}, not a numpy array")
    if buffer.ndim < 1:
        raise ValueError("scatter_rows: buffer needs a row axis; got a 0-d array")
    sizes = [operator.index(c) for c in counts]
    for i, c in enumerate(sizes):
        if c < 0:
            raise ValueError(f"scatter_rows: count {i} is negative ({c})")
    if sum(sizes) != buffer.shape[0]:
        raise ValueError(f"scatter_rows: counts add up to {sum(sizes)} rows but the buffer has {buffer.shape[0]}")
    bounds = np.cumsum([0, *sizes])
    return [buffer[a:b].copy() for a, b in itertools.pairwise(bounds)]
