# Typed memoryviews -> the C++ views of src/cpu_common.h, shared by the
# Cython drivers. Memoryviews only, no NumPy C-API, so one build serves
# NumPy 1 and 2. nogil, so a driver can make them in its call of a loop.
cimport cython
from libc.stdint cimport int32_t, int64_t

from cpu_loops cimport Maps, Pooled, RoisByImage, Strides4

ctypedef fused real:
    float
    double

# An argmax's integers: int32 where every index fits (roi_pool: torchvision's),
# else int64 (cyroi._checks.pool_argmax_dtype, align_argmax_dtype).
ctypedef fused argmax_index:
    int32_t
    int64_t

# What a pooled array holds: results, or argmax indices.
ctypedef fused element:
    float
    double
    int32_t
    int64_t


cdef inline bint is_empty(Py_ssize_t* shape) noexcept nogil:
    # An empty array has no element 0 to point at; the loops then read nothing.
    return shape[0] == 0 or shape[1] == 0 or shape[2] == 0 or shape[3] == 0


cdef inline Strides4 element_strides(Py_ssize_t* strides, size_t itemsize) noexcept nogil:
    cdef Strides4 s
    s.n, s.c = strides[0] // itemsize, strides[1] // itemsize
    s.h, s.w = strides[2] // itemsize, strides[3] // itemsize
    return s


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline Pooled[element] as_pooled(const element[:, :, :, :] a) noexcept nogil:
    cdef Pooled[element] m
    m.data = <element*>NULL if is_empty(a.shape) else <element*>&a[0, 0, 0, 0]
    m.K, m.C, m.PH, m.PW = a.shape[0], a.shape[1], a.shape[2], a.shape[3]
    m.s = element_strides(a.strides, sizeof(element))
    return m


cdef inline Maps[real] as_maps(const real[:, :, :, :] a) noexcept nogil:
    # The same 4-D view as as_pooled's, by the names of feature maps.
    cdef Pooled[real] v = as_pooled(a)
    cdef Maps[real] m
    m.data, m.N, m.C, m.H, m.W, m.s = v.data, v.K, v.C, v.PH, v.PW, v.s
    return m


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline RoisByImage as_groups(const int64_t[::1] order,
                                 const int64_t[::1] begin) noexcept nogil:
    cdef RoisByImage g
    g.order = &order[0] if order.shape[0] else NULL
    g.begin = &begin[0]
    return g


cdef inline int64_t row_step(const real[:, ::1] table) noexcept nogil:
    """Elements from one row of a (K, B) table to the next."""
    return table.strides[0] // sizeof(real)
