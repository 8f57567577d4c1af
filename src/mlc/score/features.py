"""Input rows as the model's input array, and the rows that cannot be: one place for both engines.

A chunk's feature columns become one C-contiguous (rows, features) array of the model's dtype.
Numbers cast directly; a missing value (null) is NaN for a float model, which trees route down a
branch of their own. Text (CSV cells, a string column) is parsed in Arrow at once; only when that
fails is each value looked at, so a chunk without bad values never pays for the search. A value
that is no number makes its row rejected, with a reason naming the column and the value; it is
never dropped silently and never fails the chunk. `mlc score` and the Spark adapter both call
`to_features`, so a row is judged the same way by either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlc.errors import UsageError

# Cell texts read as a missing value (as pandas and pyarrow's CSV reader read them).
NA_TEXTS = frozenset(["", "na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"])

_BOOLEANS = {"true": 1.0, "false": 0.0}  # JSON's booleans, as their text reaches the parser
Rejects = dict[int, str]  # row index in the chunk -> why it was rejected (the first reason found)


def check_type(column: str, dtype: pa.DataType, source: str) -> None:
    """Refuse, before any work, a feature column of a type that holds no numbers."""
    if not _numeric(dtype) and not _textual(dtype) and not pa.types.is_null(dtype):
        raise UsageError(f"{source}: feature column {column!r} is of type {dtype}, which holds no numbers",
                         "the model takes numeric features (numbers, booleans, or text that parses as numbers)")


def to_features(data: pa.Table | pa.RecordBatch | np.ndarray, features: Sequence[str],
                dtype: np.dtype) -> tuple[np.ndarray, Rejects]:
    """(x, rejects): x holds every row (a rejected row's values are meaningless); rejects says which."""
    if isinstance(data, np.ndarray):
        return _from_array(data, dtype)
    n = data.num_rows
    x = np.empty((n, len(features)), dtype=dtype)
    rejects: Rejects = {}
    for j, name in enumerate(features):
        values, bad = _column(_whole(data.column(name)), name, dtype)
        x[:, j] = values
        for row, reason in bad.items():
            rejects.setdefault(row, reason)
    return x, rejects


def _from_array(data: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, Rejects]:
    """An .npy chunk: numbers of one type already, so the only check is that they fit the model."""
    if dtype.kind == "f" or np.can_cast(data.dtype, dtype, "safe"):
        return np.ascontiguousarray(data, dtype=dtype), {}
    x = np.zeros(data.shape, dtype=dtype)
    rejects: Rejects = {}
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(data) & (data == np.round(data))
    for row in np.flatnonzero(~integral.all(axis=1)):
        col = int(np.flatnonzero(~integral[row])[0])
        rejects[int(row)] = f"column {col}: {data[row, col]!r} is not an integer, which the model's {dtype} input takes"
    good = integral.all(axis=1)
    x[good] = data[good].astype(dtype)
    return x, rejects


def _whole(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as one Array (a column of a table read from one batch is one chunk: no copy)."""
    if isinstance(col, pa.Array):
        return col
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def _column(col: pa.Array, name: str, dtype: np.dtype) -> tuple[np.ndarray, Rejects]:
    target = pa.from_numpy_dtype(dtype)
    if dtype.kind == "f" and _textual(col.type):
        # Text is parsed to float64 and then rounded, as the value-by-value path does: one result either way.
        try:
            return _numbers(pc.cast(col, pa.float64()), np.dtype(np.float64)).astype(dtype, copy=False), {}
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _value_by_value(col, name, dtype)
    if dtype.kind == "f" and (_numeric(col.type) or pa.types.is_null(col.type)):
        return _numbers(pc.cast(col, target, safe=False), dtype), {}
    if dtype.kind in "iub" and _numeric(col.type) and col.null_count == 0:
        try:
            return _numbers(pc.cast(col, target), dtype), {}
        except pa.ArrowInvalid:
            pass  # a fraction or an overflow somewhere: found value by value below
    return _value_by_value(col, name, dtype)


def _numbers(arr: pa.Array, dtype: np.dtype) -> np.ndarray:
    """An Array of dtype's Arrow type as numpy, read from its buffers (a view where it has no
    nulls; a null is NaN, only floats have any here). Not Array.to_numpy: that imports pandas,
    a third of a second of every worker's start-up."""
    n, offset = len(arr), arr.offset
    validity, data = arr.buffers()[:2]
    if data is None:  # no values at all (an all-null column)
        values = np.zeros(n, dtype)
    elif dtype.kind == "b":  # Arrow packs booleans into bits
        values = _bits(data, offset, n)
    else:
        values = np.frombuffer(data, dtype=dtype, count=n, offset=offset * dtype.itemsize)
    if arr.null_count:
        values = values.copy()
        values[~_bits(validity, offset, n) if validity is not None else slice(None)] = np.nan
    return values


def _bits(buffer: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """Arrow's bit-packed booleans (least significant bit first) as a numpy bool array."""
    return np.unpackbits(np.frombuffer(buffer, np.uint8), count=offset + n, bitorder="little")[offset:].astype(bool)


def _value_by_value(col: pa.Array, name: str, dtype: np.dtype) -> tuple[np.ndarray, Rejects]:
    """The slow path for a column Arrow could not cast whole: each value parsed, each failure named."""
    out = np.zeros(len(col), dtype=dtype)
    rejects: Rejects = {}
    floating = dtype.kind == "f"
    for i, value in enumerate(col.to_pylist()):
        number, why = _parse(value, floating)
        if why is None:
            out[i] = number
        else:
            rejects[i] = f"column {name!r}: {why}"
    return out, rejects


def _parse(value: object, floating: bool) -> tuple[float, str | None]:
    if value is None:
        return (math.nan, None) if floating else (0.0, "missing value, and the model's input is integer")
    if isinstance(value, bool | int | float):
        number = float(value)
    else:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        lowered = text.strip().lower()
        if lowered in NA_TEXTS:
            return (math.nan, None) if floating else (0.0, "missing value, and the model's input is integer")
        if lowered in _BOOLEANS:
            return _BOOLEANS[lowered], None
        try:
            number = float(text)
        except ValueError:
            return 0.0, f"{_short(text)!r} is not a number"
    if not floating and not (math.isfinite(number) and number == int(number)):
        return 0.0, f"{value!r} is not an integer, which the model's input takes"
    return number, None


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _numeric(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)
                or pa.types.is_decimal(dtype))


def _textual(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_binary(dtype)
                or pa.types.is_large_binary(dtype) or pa.types.is_string_view(dtype))
