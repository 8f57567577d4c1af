# Included by _core.pyx.
# TreeCall: the batch-1 hot path of mlc.trees' kernel, in C.
#
# At one row the kernel's tree walks take 1.5 to 4 µs, and calling it from Python cost another
# 1 to 1.3 µs: numba unboxes each of its seven array arguments on every call, and the Python
# wrapper checks the input and builds the outputs. Here the input check, the output
# allocation and the dict cost a few hundred nanoseconds, and the kernel is entered through a
# numba cfunc (kernel.c_entry) with raw pointers, so nothing is unboxed.

from libc.stdint cimport int64_t


ctypedef void (*ScoreFn)(const void* x, int64_t n, int64_t width, const void* nodes, int64_t n_nodes,
                         const void* meta, int64_t n_meta, const void* values, int64_t n_values,
                         const void* params, int64_t n_params, void* out, int64_t k, void* label,
                         int64_t n_label) noexcept nogil


cdef inline bint _fast_input(object x, Py_ssize_t width):
    """Whether x is what the kernel reads as is: native float32, C-contiguous, (n, width)."""
    if not cnp.PyArray_Check(x):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    return (cnp.PyArray_NDIM(a) == 2 and cnp.PyArray_DIM(a, 1) == width
            and cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32 and cnp.PyArray_ISNOTSWAPPED(a)
            and cnp.PyArray_IS_C_CONTIGUOUS(a))


cdef class TreeCall:
    """predict(x) -> {name: array} for a tree kernel whose outputs are the ensemble's own
    (label and scores, no tail ops).

    entry: the address of a numba cfunc with ScoreFn's signature (kernel.c_entry), kept
    valid by the caller. prepare(x) turns any other input into float32 C-contiguous rows or
    raises; batches of big_rows or more go to general(x) (the kernel's parallel path).
    outputs: (name, 0 for the label or 1 for the scores) in the graph's output order.
    The GIL is held at one row (shorter than handing it over) and released for more.
    """

    cdef ScoreFn fn
    cdef cnp.ndarray nodes, meta, values, params, no_label
    cdef Py_ssize_t width, k, big_rows
    cdef int out_type
    cdef bint classifier
    cdef tuple outputs
    cdef object prepare, general

    def __init__(self, size_t entry, cnp.ndarray nodes, cnp.ndarray meta, cnp.ndarray values,
                 cnp.ndarray params, Py_ssize_t width, Py_ssize_t k, out_dtype, bint classifier,
                 tuple outputs, Py_ssize_t big_rows, prepare, general):
        for a in (nodes, meta, values, params):
            if not cnp.PyArray_IS_C_CONTIGUOUS(a):
                raise ValueError("TreeCall needs C-contiguous kernel arrays")
        if entry == 0:
            raise ValueError("TreeCall needs the address of the kernel's C entry point")
        self.fn = <ScoreFn><void*>entry
        self.nodes, self.meta, self.values, self.params = nodes, meta, values, params
        self.no_label = np.empty(0, np.int64)
        self.width, self.k, self.big_rows = width, k, big_rows
        self.out_type = np.dtype(out_dtype).num
        self.classifier = classifier
        self.outputs = outputs
        self.prepare, self.general = prepare, general

    def predict(self, x):
        """The graph's outputs for the rows of x."""
        if not _fast_input(x, self.width):
            x = self.prepare(x)
        cdef cnp.ndarray a = <cnp.ndarray>x
        cdef cnp.npy_intp n = cnp.PyArray_DIM(a, 0)
        if n >= self.big_rows:
            return self.general(a)
        cdef cnp.npy_intp dims[2]
        dims[0], dims[1] = n, self.k
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, self.out_type, 0)
        cdef cnp.ndarray label = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INT64, 0) if self.classifier else self.no_label
        cdef ScoreFn fn = self.fn
        cdef const void* xp = cnp.PyArray_DATA(a)
        cdef int64_t width = cnp.PyArray_DIM(a, 1)
        cdef const void* nodes = cnp.PyArray_DATA(self.nodes)
        cdef const void* meta = cnp.PyArray_DATA(self.meta)
        cdef const void* values = cnp.PyArray_DATA(self.values)
        cdef const void* params = cnp.PyArray_DATA(self.params)
        cdef int64_t n_nodes = cnp.PyArray_DIM(self.nodes, 0), n_meta = cnp.PyArray_DIM(self.meta, 0)
        cdef int64_t n_values = cnp.PyArray_DIM(self.values, 0), n_params = cnp.PyArray_DIM(self.params, 0)
        cdef void* outp = cnp.PyArray_DATA(out)
        cdef void* labelp = cnp.PyArray_DATA(label)
        cdef int64_t n_label = cnp.PyArray_DIM(label, 0)
        if n > 1:
            with nogil:
                fn(xp, n, width, nodes, n_nodes, meta, n_meta, values, n_values, params, n_params,
                   outp, self.k, labelp, n_label)
        else:
            fn(xp, n, width, nodes, n_nodes, meta, n_meta, values, n_values, params, n_params,
               outp, self.k, labelp, n_label)
        cdef dict result = {}
        for name, which in self.outputs:
            result[name] = label if which == 0 else out
        return result
