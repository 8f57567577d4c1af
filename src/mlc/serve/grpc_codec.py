"""KServe v2 tensors in gRPC messages: ModelInferRequest in, ModelInferResponse out.

The gRPC twin of codec.py: it yields the same InferRequest the JSON decoder does, so the data
plane and the model never see which transport a request came by. Inputs come either all in
`raw_input_contents` (little-endian bytes, one entry per input: what tritonclient and
perf_analyzer send) or each in its typed `contents` field; outputs always go back in
`raw_output_contents`, as Triton answers (BYTES outputs, i.e. classification strings, in the
binary extension's length-prefixed layout). Every malformed message raises InvalidInputError
with what is wrong, never a bare exception that would read as INTERNAL.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlc.errors import InvalidInputError
from mlc.serve.codec import (
    InferRequest,
    RequestedOutput,
    bytes_blob,
    check_shape,
    datatype_of,
    numpy_dtype,
    wanted_outputs,
)
from mlc.serve.grpc_proto import pb

# The InferTensorContents field that holds each datatype's typed values (FP16 has none: raw only).
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
# Wire types of the fields above; values are range-checked into the tensor's own (narrower) type.
_WIRE = {"bool_contents": np.bool_, "int_contents": np.int32, "int64_contents": np.int64,
         "uint_contents": np.uint32, "uint64_contents": np.uint64, "fp32_contents": np.float32,
         "fp64_contents": np.float64}


def _shape(name: str, dims: Any, dtype: np.dtype[Any]) -> tuple[int, ...]:
    """The shape, checked as REST checks it (codec.check_shape: rows, axes, a size numpy can hold)."""
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        raise InvalidInputError(f"input {name!r}: 'shape' must be a list of non-negative integers, not {list(shape)}")
    return check_shape(name, shape, dtype)


def _from_raw(name: str, raw: bytes, dtype: np.dtype[Any], datatype: str, shape: tuple[int, ...]) -> np.ndarray:
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInputError(f"input {name!r}: raw_input_contents has {len(raw)} bytes but shape {list(shape)} "
                                f"of {datatype} needs {expected}")
    flat = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    return (flat if flat.dtype.isnative else flat.astype(dtype)).reshape(shape)


def _from_contents(name: str, tensor: Any, dtype: np.dtype[Any], datatype: str,
                   shape: tuple[int, ...]) -> np.ndarray:
    field = _CONTENTS.get(datatype)
    if field is None:
        raise InvalidInputError(f"input {name!r}: {datatype} has no typed contents field",
                                "send it in raw_input_contents (little-endian)")
    others = [f.name for f, _ in tensor.contents.ListFields() if f.name != field]
    if others:
        raise InvalidInputError(f"input {name!r} is {datatype}: its values go in contents.{field}, "
                                f"not {', '.join(others)}")
    values = getattr(tensor.contents, field)
    needed = math.prod(shape)
    if len(values) != needed:
        raise InvalidInputError(f"input {name!r}: contents.{field} has {len(values)} elements but shape "
                                f"{list(shape)} needs {needed}")
    flat: np.ndarray = np.array(values, dtype=_WIRE[field])
    if dtype.kind in "iu" and flat.size and flat.dtype != dtype:
        info = np.iinfo(dtype)
        if flat.min() < info.min or flat.max() > info.max:
            raise InvalidInputError(f"input {name!r}: contents.{field} has values outside {dtype.name}'s range")
    return flat.astype(dtype, copy=False).reshape(shape)


def _classification(output: Any) -> int:
    """Triton's classification extension: the requested output's `classification` parameter."""
    if "classification" not in output.parameters:
        return 0
    param = output.parameters["classification"]
    kind = param.WhichOneof("parameter_choice")
    count = getattr(param, kind) if kind in ("int64_param", "uint64_param") else None
    if count is None or count < 0:
        raise InvalidInputError(f"output {output.name!r}: 'classification' must be a count of classes, "
                                f"not {getattr(param, kind) if kind else None!r}")
    return int(count)


def decode_infer(message: Any) -> InferRequest:
    """The InferRequest a ModelInferRequest carries."""
    inputs: dict[str, np.ndarray] = {}
    raw = message.raw_input_contents
    if not message.inputs:
        raise InvalidInputError("the request needs a non-empty 'inputs' list")
    if raw and len(raw) != len(message.inputs):
        raise InvalidInputError(f"the request has {len(message.inputs)} inputs but {len(raw)} raw_input_contents",
                                "send one raw_input_contents entry per input, in order, or none (typed contents)")
    for index, tensor in enumerate(message.inputs):
        name = tensor.name
        if name in inputs:
            raise InvalidInputError(f"input {name!r} appears twice")
        dtype = numpy_dtype(tensor.datatype)
        shape = _shape(name, tensor.shape, dtype)
        if raw:
            if tensor.HasField("contents"):
                raise InvalidInputError(f"input {name!r} has typed contents beside raw_input_contents",
                                        "send every input raw, or every input typed")
            inputs[name] = _from_raw(name, raw[index], dtype, tensor.datatype, shape)
        else:
            inputs[name] = _from_contents(name, tensor, dtype, tensor.datatype, shape)
    outputs = [RequestedOutput(o.name, True, _classification(o)) for o in message.outputs]
    return InferRequest(inputs=inputs, request_id=message.id or None, outputs=outputs or None, binary_default=True)


def encode_infer(model_name: str, model_version: str, outputs: dict[str, np.ndarray],
                 request: InferRequest) -> Any:
    """The ModelInferResponse: requested (else all) outputs, their values in raw_output_contents."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=request.request_id or "")
    for item in wanted_outputs(outputs, request):
        array = np.ascontiguousarray(outputs[item.name])
        datatype = datatype_of(array.dtype)
        response.outputs.add(name=item.name, datatype=datatype, shape=array.shape)
        response.raw_output_contents.append(bytes_blob(array) if datatype == "BYTES" else array.tobytes())
    return response
