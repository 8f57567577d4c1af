# cython: language_level=3, boundscheck=False, wraparound=False
"""Row packing and scattering for the dynamic batcher, with the GIL released, and the
tree kernel's batch-1 call (TreeCall, in _treecall.pxi).

The batcher copies every request's rows into one contiguous batch buffer before
the model runs, and copies each request's output rows back out afterwards. Both
are many small memcpy calls. Here the pointers and byte counts are gathered
while the GIL is held and the copies run without it, so submitting threads and
ONNX Runtime keep going while a batch is assembled or split.

Rows are copied as bytes, so one code path serves every fixed-size dtype
(float32, float64, int64, bool, ...); only object arrays, whose elements are
reference-counted pointers, take the Python path.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memcpy

cimport numpy as cnp

import numpy as np

from mlc.errors import InvalidInputError

cnp.import_array()


cdef struct Span:
    char* data          # first byte of one request's rows (source when packing, destination when scattering)
    Py_ssize_t nbytes   # bytes of that request's rows: rows * bytes per row


cdef void _gather(char* dst, const Span* spans, Py_ssize_t n) noexcept nogil:
    """Copy n spans back to back into dst."""
    cdef Py_ssize_t i
    for i in range(n):
        memcpy(dst, spans[i].data, spans[i].nbytes)
        dst += spans[i].nbytes


cdef void _spread(const char* src, const Span* spans, Py_ssize_t n) noexcept nogil:
    """Copy consecutive stretches of src into the n spans."""
    cdef Py_ssize_t i
    for i in range(n):
        memcpy(spans[i].data, src, spans[i].nbytes)
        src += spans[i].nbytes


cdef Span* _alloc_spans(Py_ssize_t n) except NULL:
    cdef Span* spans = <Span*>PyMem_Malloc(max(n, 1) * sizeof(Span))
    if spans == NULL:
        raise MemoryError()
    return spans


def pack_rows(arrays, out=None):
    """Concatenate arrays along their first axis into one C-contiguous array.

    Every array must be a C-contiguous numpy array of the same dtype and the same
    trailing shape. `out`, when given, receives the rows and is returned; it must
    have exactly the concatenated shape and dtype, and must not overlap the inputs.
    """
    # A tuple keeps every array alive while the GIL is released, even if the
    # caller's list is changed by another thread meanwhile.
    cdef tuple items = tuple(arrays)
    cdef Py_ssize_t n = len(items)
    cdef Py_ssize_t i, d, ndim, total_rows = 0
    cdef cnp.ndarray arr, first, result
    cdef cnp.npy_intp* dims
    cdef cnp.npy_intp* first_dims
    cdef Span* spans
    cdef char* dst
    if n == 0:
        raise InvalidInputError("pack_rows needs at least one array")
    for i in range(n):
        if not isinstance(items[i], np.ndarray):
            raise InvalidInputError(f"pack_rows: item {i} is a {type(items[i]).__name__}, not a numpy array")
    first = items[0]
    ndim = cnp.PyArray_NDIM(first)
    if ndim < 1:
        raise InvalidInputError("pack_rows: arrays need a row axis; got a 0-d array")
    if first.dtype.hasobject:
        raise InvalidInputError(f"pack_rows: cannot pack {first.dtype} arrays (they hold Python objects)")
    first_dims = cnp.PyArray_DIMS(first)
    spans = _alloc_spans(n)
    try:
        for i in range(n):
            arr = items[i]
            if not cnp.PyArray_EquivTypes(arr.descr, first.descr):
                raise InvalidInputError(f"pack_rows: array {i} is {arr.dtype}, array 0 is {first.dtype}")
            dims = cnp.PyArray_DIMS(arr)
            if cnp.PyArray_NDIM(arr) != ndim:
                raise InvalidInputError(
                    f"pack_rows: array {i} has shape {items[i].shape}, array 0 has shape {items[0].shape}")
            for d in range(1, ndim):
                if dims[d] != first_dims[d]:
                    raise InvalidInputError(
                        f"pack_rows: array {i} has shape {items[i].shape}, array 0 has shape {items[0].shape}")
            if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
                raise InvalidInputError(f"pack_rows: array {i} is not C-contiguous",
                                        "pass np.ascontiguousarray(x)")
            spans[i].data = <char*>cnp.PyArray_DATA(arr)
            spans[i].nbytes = cnp.PyArray_NBYTES(arr)
            total_rows += dims[0]
        shape = (total_rows,) + items[0].shape[1:]
        if out is None:
            result = np.empty(shape, dtype=first.dtype)
        else:
            result = _check_out(out, shape, first.dtype)
        dst = <char*>cnp.PyArray_DATA(result)
        with nogil:
            _gather(dst, spans, n)
    finally:
        PyMem_Free(spans)
    return result


cdef cnp.ndarray _check_out(object out, tuple shape, object dtype):
    if not isinstance(out, np.ndarray):
        raise InvalidInputError(f"pack_rows: out is a {type(out).__name__}, not a numpy array")
    cdef cnp.ndarray arr = out
    if out.dtype != dtype or out.shape != shape:
        raise InvalidInputError(f"pack_rows: out is {out.dtype} {out.shape}; the rows need {dtype} {shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISWRITEABLE(arr):
        raise InvalidInputError("pack_rows: out must be C-contiguous and writeable")
    return arr


def scatter_rows(buffer, counts):
    """Split buffer's rows into consecutive pieces of counts[i] rows, each a fresh copy.

    Copies, rather than views, so a finished request never keeps the whole batch
    buffer alive or sees it change. The counts must add up to the buffer's rows.
    """
    if not isinstance(buffer, np.ndarray):
        raise ValueError(f"scatter_rows: buffer is a {type(buffer).__name__}, not a numpy array")
    if buffer.ndim < 1:
        raise ValueError("scatter_rows: buffer needs a row axis; got a 0-d array")
    cdef cnp.ndarray src = np.ascontiguousarray(buffer)
    cdef list sizes = list(counts)
    cdef Py_ssize_t n = len(sizes)
    cdef int d, ndim = cnp.PyArray_NDIM(src)
    cdef Py_ssize_t i, c, total = 0
    cdef Py_ssize_t row_bytes = cnp.PyArray_ITEMSIZE(src)
    for d in range(1, ndim):
        row_bytes *= cnp.PyArray_DIMS(src)[d]
    for i in range(n):
        c = sizes[i]
        if c < 0:
            raise ValueError(f"scatter_rows: count {i} is negative ({c})")
        total += c
    if total != cnp.PyArray_DIMS(src)[0]:
        raise ValueError(
            f"scatter_rows: counts add up to {total} rows but the buffer has {cnp.PyArray_DIMS(src)[0]}")
    if src.dtype.hasobject:
        return _scatter_objects(src, sizes)

    cdef list parts = [None] * n
    cdef cnp.ndarray part
    cdef Span* spans = NULL
    # Builtin native dtypes (all that ONNX Runtime returns) get their arrays from
    # numpy's C API: np.empty costs more than the copy of a one-row request.
    cdef bint builtin = src.dtype.isbuiltin == 1
    cdef int typenum = cnp.PyArray_TYPE(src)
    cdef cnp.npy_intp* part_dims = NULL
    trailing = buffer.shape[1:]
    try:
        spans = _alloc_spans(n)
        part_dims = <cnp.npy_intp*>PyMem_Malloc(ndim * sizeof(cnp.npy_intp))
        if part_dims == NULL:
            raise MemoryError()
        for d in range(ndim):
            part_dims[d] = cnp.PyArray_DIMS(src)[d]
        for i in range(n):
            c = sizes[i]
            if builtin:
                part_dims[0] = c
                part = cnp.PyArray_EMPTY(ndim, part_dims, typenum, 0)
            else:
                part = np.empty((c,) + trailing, dtype=src.dtype)
            parts[i] = part
            spans[i].data = <char*>cnp.PyArray_DATA(part)
            spans[i].nbytes = c * row_bytes
        with nogil:
            _spread(<const char*>cnp.PyArray_DATA(src), spans, n)
    finally:
        PyMem_Free(spans)
        PyMem_Free(part_dims)
    return parts


cdef list _scatter_objects(cnp.ndarray src, list sizes):
    """Object arrays (e.g. string labels) hold references: copy them with numpy, not memcpy."""
    cdef list parts = []
    cdef Py_ssize_t start = 0
    for c in sizes:
        parts.append(src[start:start + c].copy())
        start += c
    return parts


include "_treecall.pxi"
