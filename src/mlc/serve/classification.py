"""Triton's classification extension: an output returned as its top classes instead of its values.

A client asks with `"parameters": {"classification": K}` on a requested output (tritonclient's
`InferRequestedOutput(name, class_count=K)`). The output comes back as BYTES of shape
[rows, min(K, classes)], each element "<value>:<index>[:<label>]", best first, the value with
nine decimals as Triton writes it. Every element after the row dimension counts as a class,
as Triton counts them. The label is the model's class at that index, where the registered
signature knows the classes and the output has one column per class (the probabilities).

The top classes come from mlc.runtime.postprocess's numba kernel (compiled at import, no GIL),
and ties go to the lowest index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlc.errors import InvalidInputError
from mlc.runtime.postprocess import top_k


def classify(name: str, values: np.ndarray, count: int, classes: Sequence[Any] | None) -> np.ndarray:
    """The top `count` classes of each row of `values` as Triton's "value:index[:label]" bytes."""
    if values.dtype.kind not in "biuf":
        raise InvalidInputError(f"output {name!r} is not numeric ({values.dtype}): it has no classes to rank",
                                "ask for classification on a score or probability output")
    if values.ndim == 0 or values.size == 0:
        raise InvalidInputError(f"output {name!r} of shape {list(values.shape)} has no classes to rank")
    scores = values.reshape(values.shape[0], -1)
    indices, best = top_k(scores, min(count, scores.shape[1]))
    labels = [str(c) for c in classes] if classes is not None and len(classes) == scores.shape[1] else None
    out = np.empty(indices.shape, dtype=object)
    for (row, k), index in np.ndenumerate(indices):
        text = f"{best[row, k]:.9f}:{index}"
        out[row, k] = (f"{text}:{labels[index]}" if labels else text).encode()
    return out
