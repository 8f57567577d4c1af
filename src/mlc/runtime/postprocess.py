"""Numeric post-processing of model outputs: labels, top-k classes, binary thresholds.

The kernels are numba functions with explicit signatures, so they are compiled
when this module is imported (and cached on disk with cache=True), never on a
call: importing this module is the warm-up point (mlc serve imports it at start).
mlc serve ranks classes with top_k for Triton's classification extension; labels
and thresholds are a library API for scoring code (mlc.runtime exports them), as
the converted graphs already emit labels. Explicit signatures also turn an
unexpected dtype into an error instead of a silent compile in the middle of
serving; the wrappers below cast inputs to one of the compiled types first. The
kernels run without the GIL.

Ties go to the lowest column index (like np.argmax and a stable sort). Scores
must not be NaN (probabilities never are): the order of NaN rows is unspecified.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

from mlc.errors import InvalidInputError

_FLOATS = (types.float32, types.float64)


def _inputs(ndim: int) -> list[types.Array]:
    """The array types the kernels accept: float32/float64 of any layout.

    Declared read-only: a writeable array converts to it too, so one signature
    per dtype serves both (arrays over a request's bytes are read-only).
    """
    return [types.Array(dt, ndim, "A", readonly=True) for dt in _FLOATS]


_LABELS = types.Array(types.int64, 1, "C")
_INDICES = types.Array(types.int64, 2, "C")


@njit([_LABELS(p) for p in _inputs(2)], cache=True, nogil=True)
def _argmax_kernel(proba):  # pragma: no cover - compiled
    n, k = proba.shape
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        best = 0
        value = proba[i, 0]
        for j in range(1, k):
            if proba[i, j] > value:
                value = proba[i, j]
                best = j
        out[i] = best
    return out


@njit(
    [types.void(p, _INDICES, types.Array(p.dtype, 2, "C")) for p in _inputs(2)],
    cache=True,
    nogil=True,
)
def _top_k_kernel(proba, indices, values):  # pragma: no cover - compiled
    # Insertion into a sorted k-slot window per row: O(columns * k), which beats a
    # full sort for the small k (and few classes) classifiers have.
    n, cols = proba.shape
    k = indices.shape[1]
    for i in range(n):
        filled = 0
        for j in range(cols):
            v = proba[i, j]
            if filled == k and not v > values[i, k - 1]:
                continue
            pos = filled if filled < k else k - 1
            while pos > 0 and v > values[i, pos - 1]:
                values[i, pos] = values[i, pos - 1]
                indices[i, pos] = indices[i, pos - 1]
                pos -= 1
            values[i, pos] = v
            indices[i, pos] = j
            if filled < k:
                filled += 1


@njit([_LABELS(s, types.float64) for s in _inputs(1)], cache=True, nogil=True)
def _threshold_kernel(scores, threshold):  # pragma: no cover - compiled
    n = scores.shape[0]
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = 1 if scores[i] > threshold else 0
    return out


def _scores(x: np.ndarray, what: str) -> np.ndarray:
    """x as a float32/float64 array (the compiled types), without copying when it already is one."""
    arr = np.asarray(x)
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        return arr
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    raise InvalidInputError(f"{what} needs numeric scores; got {arr.dtype}")


def _matrix(x: np.ndarray, what: str) -> np.ndarray:
    arr = _scores(x, what)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise InvalidInputError(f"{what} needs a (rows, classes) array with at least one class; got {arr.shape}")
    return arr


def argmax_labels(proba: np.ndarray) -> np.ndarray:
    """The column index of each row's largest score, as int64: class indices from probabilities."""
    return _argmax_kernel(_matrix(proba, "argmax_labels"))


def top_k(proba: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best classes per row, best first: (indices as int64, their scores), both (rows, k)."""
    arr = _matrix(proba, "top_k")
    if not 1 <= k <= arr.shape[1]:
        raise InvalidInputError(f"top_k: k must be between 1 and the {arr.shape[1]} classes; got {k}")
    indices = np.empty((arr.shape[0], k), dtype=np.int64)
    values = np.empty((arr.shape[0], k), dtype=arr.dtype)
    _top_k_kernel(arr, indices, values)
    return indices, values


def threshold_labels(scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary labels (int64 0/1): 1 where the positive-class score is strictly above threshold.

    Takes positive-class scores of shape (rows,) or (rows, 1), or two-class
    probabilities of shape (rows, 2) (column 1 is the positive class). Strictly
    above, so a 0.5/0.5 tie gives class 0, as argmax and scikit-learn do.
    """
    arr = _scores(scores, "threshold_labels")
    if arr.ndim == 2 and arr.shape[1] in (1, 2):
        arr = arr[:, -1]
    if arr.ndim != 1:
        raise InvalidInputError(
            f"threshold_labels needs (rows,), (rows, 1) or (rows, 2) scores; got {arr.shape}",
            "for more than two classes use argmax_labels or top_k",
        )
    return _threshold_kernel(arr, float(threshold))
