"""KServe v2 tensors on the wire: JSON tensors and Triton's binary tensor extension, both ways.

Decoding turns a request body into numpy arrays and says which outputs the client wants and
in which encoding; encoding does the reverse for a response. Nothing here knows about models,
so the same code serves every model and every transport. Every malformed input raises
InvalidInputError with what is wrong, never a bare exception (that would read as a 500).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mlc.errors import InvalidInputError

# KServe v2 datatype <-> numpy dtype. BYTES (variable-length strings) is not taken as input:
# the scoring core takes numeric tensors only, and saying so beats a confusing failure later.
# Outputs may be BYTES (string class labels, the classification extension).
_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_FROM_NUMPY = {dtype: name for name, dtype in _TO_NUMPY.items()}
_MAX_DIMS = 32  # numpy's own limit is 64 (32 before numpy 2); a model's input has a handful
_MAX_BYTES = int(np.iinfo(np.intp).max)  # no array is bigger, even one with a zero dimension
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def datatype_of(dtype: str | np.dtype[Any]) -> str:
    """The v2 datatype name (FP32, INT64, ...) of a numpy dtype or dtype name."""
    try:
        return _FROM_NUMPY[np.dtype(dtype)]
    except (KeyError, TypeError):
        return "BYTES"


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    try:
        return _TO_NUMPY[datatype]
    except KeyError:
        known = ", ".join(_TO_NUMPY)
        raise InvalidInputError(f"unsupported datatype {datatype!r}", f"use one of {known}") from None


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool
    classification: int = 0  # top classes asked for (Triton's classification extension); 0: the values


@dataclass
class InferRequest:
    """A decoded inference request: input arrays by name, and what the client wants back."""

    inputs: dict[str, np.ndarray]
    request_id: str | None = None
    # None: every output, each in `binary_default` encoding.
    outputs: list[RequestedOutput] | None = None
    binary_default: bool = False


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _shape(tensor: dict[str, Any], name: str, dtype: np.dtype[Any]) -> tuple[int, ...]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                               for d in shape):
        raise InvalidInputError(f"input {name!r}: 'shape' must be a list of non-negative integers, not {shape!r}")
    return check_shape(name, tuple(shape), dtype)


def check_shape(name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[int, ...]:
    """A shape an array of rows can have, or InvalidInputError saying why not (for every transport).

    A scalar (shape []) is refused here, before its data is read: every model mlc serves takes
    a batch of rows. Shapes numpy cannot build (too many axes, or a size that overflows even
    when a zero dimension leaves no elements) were numpy's ValueError, a 500.
    """
    if not shape:
        raise InvalidInputError(f"input {name!r} has shape []: a scalar is not a batch of rows",
                                "give it a row dimension first: shape [rows, ...]")
    if len(shape) > _MAX_DIMS:
        raise InvalidInputError(f"input {name!r}: shape has {len(shape)} dimensions; at most {_MAX_DIMS} are taken")
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize > _MAX_BYTES:
        raise InvalidInputError(f"input {name!r}: shape {list(shape)} is too large for any array")
    return shape


# JSON value kinds a datatype takes: booleans for BOOL, integers for integer types, and any
# number for floats. Anything else (a string, 1.9 for an INT64, "no" for a BOOL) is refused,
# as Triton does, instead of being cast into a different input.
_JSON_KINDS = {"b": "b", "i": "biu", "u": "biu", "f": "biuf"}


def _tensor_from_json(name: str, data: Any, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    if data is None:
        raise InvalidInputError(f"input {name!r} has neither 'data' nor 'parameters.binary_data_size'")
    try:
        parsed = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"input {name!r}: 'data' is not a (nested) list of numbers ({exc})") from None
    if parsed.size == 0:  # no values to judge: [] is float64 to numpy, and the range check found no min()
        parsed = parsed.astype(dtype)
    if parsed.dtype.kind == "O" or (dtype.kind in "iu" and parsed.dtype.kind == "f"):
        parsed = _mixed_numbers(name, data, parsed, dtype)
    if parsed.size and parsed.dtype.kind not in _JSON_KINDS[dtype.kind]:
        raise InvalidInputError(f"input {name!r}: 'data' holds {_kind_name(parsed)} values, not {dtype.name} ones")
    if dtype.kind in "iu" and parsed.size and parsed.dtype.kind in "iu" and parsed.dtype != dtype:
        _check_range(name, parsed.min(), parsed.max(), dtype)
    try:
        array = parsed.astype(dtype, copy=False)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInputError(f"input {name!r}: 'data' does not hold {dtype.name} values ({exc})") from None
    if array.size != math.prod(shape):
        raise InvalidInputError(
            f"input {name!r}: 'data' has {array.size} elements but shape {list(shape)} needs {math.prod(shape)}")
    return array.reshape(shape)


def _mixed_numbers(name: str, data: Any, parsed: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """Values numpy gave no numeric type, that are still numbers: null among floats (JSON has no
    NaN, so null is how a client sends a missing value) and integers beyond int64 among smaller
    ones. Anything else (a string, an object) is left for the kind check to refuse."""
    values = parsed.ravel() if parsed.dtype.kind == "O" else np.asarray(data, dtype=object).ravel()
    kinds = {type(v) for v in values.tolist()}
    if dtype.kind == "f" and kinds <= {int, float, type(None)}:
        return np.array(data, dtype=np.float64)  # null -> NaN
    if dtype.kind in "iu" and kinds <= {int}:
        _check_range(name, min(values), max(values), dtype)
        return np.array(data, dtype=dtype)
    return parsed


def _check_range(name: str, low: Any, high: Any, dtype: np.dtype[Any]) -> None:
    info = np.iinfo(dtype)
    if low < info.min or high > info.max:
        raise InvalidInputError(f"input {name!r}: 'data' has values outside {dtype.name}'s range")


def _kind_name(array: np.ndarray) -> str:
    return {"b": "boolean", "i": "integer", "u": "integer", "f": "floating-point", "U": "string"}.get(
        array.dtype.kind, f"mixed or {array.dtype.name}")


def _tensor_from_binary(name: str, raw: memoryview, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInputError(
            f"input {name!r}: binary_data_size is {len(raw)} bytes but shape {list(shape)} of "
            f"{datatype_of(dtype)} needs {expected}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _requested_outputs(body: dict[str, Any], binary_default: bool) -> list[RequestedOutput] | None:
    outputs = body.get("outputs")
    if outputs is None or outputs == []:
        return None  # every output
    if not isinstance(outputs, list):
        raise InvalidInputError("'outputs' must be a list of {\"name\": ...} objects")
    wanted = []
    for item in outputs:
        item = _as_dict(item, "each entry of 'outputs'")
        name = item.get("name")
        if not isinstance(name, str):
            raise InvalidInputError("each entry of 'outputs' needs a string 'name'")
        params = _as_dict(item.get("parameters") or {}, f"parameters of output {name!r}")
        count = params.get("classification", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInputError(f"output {name!r}: 'classification' must be a count of classes, not {count!r}")
        # Triton's clients say `binary_data`; accept `binary_data_output` here too, as some docs spell it.
        # Unset, the request's own `binary_data_output` applies, as the binary extension says.
        binary = bool(params.get("binary_data", params.get("binary_data_output", binary_default)))
        wanted.append(RequestedOutput(name, binary, count))
    return wanted


def decode_request(body: bytes, json_length: int | None = None) -> InferRequest:
    """Parse a v2 inference request; `json_length` is the Inference-Header-Content-Length header."""
    json_part: bytes | memoryview
    if json_length is None:
        json_part, binary_part = body, memoryview(b"")
    else:
        if json_length < 0 or json_length > len(body):
            raise InvalidInputError(
                f"Inference-Header-Content-Length is {json_length} but the body has only {len(body)} bytes")
        view = memoryview(body)
        json_part, binary_part = view[:json_length], view[json_length:]
    try:
        parsed = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"the request body is not valid JSON: {exc}") from None
    parsed = _as_dict(parsed, "the request body")
    raw_inputs = parsed.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInputError("the request needs a non-empty 'inputs' list")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in raw_inputs:
        tensor = _as_dict(tensor, "each entry of 'inputs'")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise InvalidInputError("each entry of 'inputs' needs a string 'name'")
        if name in inputs:
            raise InvalidInputError(f"input {name!r} appears twice")
        datatype = tensor.get("datatype")
        if not isinstance(datatype, str):
            raise InvalidInputError(f"input {name!r} needs a string 'datatype' (e.g. \"FP32\")")
        dtype = numpy_dtype(datatype)
        shape = _shape(tensor, name, dtype)
        params = _as_dict(tensor.get("parameters") or {}, f"parameters of input {name!r}")
        size = params.get("binary_data_size")
        if size is None:
            inputs[name] = _tensor_from_json(name, tensor.get("data"), dtype, shape)
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInputError(f"input {name!r}: binary_data_size must be a non-negative integer")
        if offset + size > len(binary_part):
            raise InvalidInputError(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(binary_part) - offset} binary bytes left)")
        inputs[name] = _tensor_from_binary(name, binary_part[offset:offset + size], dtype, shape)
        offset += size
    if offset != len(binary_part):
        raise InvalidInputError(
            f"the body has {len(binary_part) - offset} binary bytes that no input's binary_data_size accounts for")
    params = _as_dict(parsed.get("parameters") or {}, "'parameters'")
    request_id = parsed.get("id")
    binary_default = bool(params.get("binary_data_output", False))
    return InferRequest(
        inputs=inputs,
        request_id=str(request_id) if request_id is not None else None,
        outputs=_requested_outputs(parsed, binary_default),
        binary_default=binary_default,
    )


def wanted_outputs(outputs: dict[str, np.ndarray], request: InferRequest) -> list[RequestedOutput]:
    """The outputs a response carries, in order: those the request names (each must exist), else all."""
    if request.outputs is None:
        return [RequestedOutput(name, request.binary_default) for name in outputs]
    missing = [o.name for o in request.outputs if o.name not in outputs]
    if missing:
        raise InvalidInputError(f"the model has no output {', '.join(map(repr, missing))}",
                                f"its outputs are: {', '.join(outputs)}")
    return request.outputs


def encode_response(model_name: str, model_version: str, outputs: dict[str, np.ndarray],
                    request: InferRequest) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when any output is sent as binary.

    Binary outputs follow the JSON header in the order the header lists them, as the
    extension requires; a caller sets Inference-Header-Content-Length from the int.
    """
    wanted = wanted_outputs(outputs, request)
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for item in wanted:
        array = np.ascontiguousarray(outputs[item.name])
        tensor: dict[str, Any] = {"name": item.name, "datatype": datatype_of(array.dtype), "shape": array.shape}
        strings = tensor["datatype"] == "BYTES"
        if item.binary:
            blob = bytes_blob(array) if strings else array.tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = [_text(v) for v in array.reshape(-1)] if strings else array.reshape(-1)
        tensors.append(tensor)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.request_id is not None:
        document["id"] = request.request_id
    document["outputs"] = tensors
    header = orjson.dumps(document, option=_JSON_OPTS)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def bytes_blob(array: np.ndarray) -> bytes:
    """A BYTES tensor in the binary extension's layout: each element's length (uint32 LE), then it."""
    parts = [_as_bytes(v) for v in array.reshape(-1)]
    return b"".join(len(p).to_bytes(4, "little") + p for p in parts)


def dumps(document: Any) -> bytes:
    """JSON for every non-inference response (metadata, stats, errors)."""
    return orjson.dumps(document, option=_JSON_OPTS)
