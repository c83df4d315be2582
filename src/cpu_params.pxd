# The loops' parameter structs, filled from a pooled array's shape (its
# PH, PW), for the Cython drivers of both extensions.
from libc.stdint cimport int64_t

from cpu_loops cimport AlignParams, PoolParams
from cpu_views cimport real


cdef inline AlignParams[real] align_params(const real[:, :, :, :] pooled, double scale,
                                           int64_t sampling_ratio, bint aligned,
                                           bint max_mode) noexcept nogil:
    cdef AlignParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, pooled.shape[2], pooled.shape[3]
    p.sampling_ratio, p.aligned, p.max_mode = sampling_ratio, aligned, max_mode
    return p


cdef inline PoolParams[real] pool_params(const real[:, :, :, :] pooled,
                                         double scale) noexcept nogil:
    cdef PoolParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, pooled.shape[2], pooled.shape[3]
    return p
