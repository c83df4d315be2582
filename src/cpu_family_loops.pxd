# Declarations of the C++ CPU loops of the RoI family beyond roi_align /
# roi_pool (src/cpu_ps_roi.h, ...) for the Cython drivers.
from libc.stdint cimport int64_t

from cpu_loops cimport AlignParams, Maps, PoolParams, Pooled, RoisByImage

cdef extern from "cpu_ps_roi.h" namespace "cyroi" nogil:
    void ps_roi_align_forward_item[T](const Maps[T]& f, const T* box, int64_t n,
                                      const AlignParams[T]& p, int64_t k, int64_t c0,
                                      int64_t c1, const Pooled[T]& out)
    void ps_roi_align_backward_item[T](const Maps[T]& grad, const Pooled[T]& grad_out,
                                       const T* boxes, const RoisByImage& rois,
                                       const AlignParams[T]& p, int64_t n, int64_t c0,
                                       int64_t c1)
    void ps_roi_pool_forward_item[T](const Maps[T]& f, const T* box, int64_t n,
                                     const PoolParams[T]& p, int64_t k, int64_t c0, int64_t c1,
                                     const Pooled[T]& out)
    void ps_roi_pool_backward_item[T](const Maps[T]& grad, const Pooled[T]& grad_out,
                                      const T* boxes, const RoisByImage& rois,
                                      const PoolParams[T]& p, int64_t n, int64_t c0, int64_t c1)
