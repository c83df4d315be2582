# Declarations of the C++ CPU loops of the RoI family beyond roi_align /
# roi_pool (src/cpu_ps_roi.h, ...) for the Cython drivers.
from libc.stdint cimport int64_t

from cpu_loops cimport AlignParams, Maps, PoolParams, Pooled, RoisByImage

# The item functions are except +: their sample and weight tables are
# std::vectors, and an allocation failure (an absurd sampling_ratio) must
# become MemoryError, not std::terminate.

cdef extern from "cpu_ps_roi.h" namespace "cyroi" nogil:
    void ps_roi_align_forward_item[T](const Maps[T]& f, const T* box, int64_t n,
                                      const AlignParams[T]& p, int64_t k, int64_t c0,
                                      int64_t c1, const Pooled[T]& out) except +
    void ps_roi_align_backward_item[T](const Maps[T]& grad, const Pooled[T]& grad_out,
                                       const T* boxes, const RoisByImage& rois,
                                       const AlignParams[T]& p, int64_t n, int64_t c0,
                                       int64_t c1) except +
    void ps_roi_pool_forward_item[T](const Maps[T]& f, const T* box, int64_t n,
                                     const PoolParams[T]& p, int64_t k, int64_t c0, int64_t c1,
                                     const Pooled[T]& out) except +
    void ps_roi_pool_backward_item[T](const Maps[T]& grad, const Pooled[T]& grad_out,
                                      const T* boxes, const RoisByImage& rois,
                                      const PoolParams[T]& p, int64_t n, int64_t c0, int64_t c1) except +

cdef extern from "cpu_rotated.h" namespace "cyroi" nogil:
    cdef cppclass RotatedParams[T]:
        T scale
        int64_t pooled_h, pooled_w, sampling_ratio
        bint aligned, clockwise
    void roi_align_rotated_forward_item[T](const Maps[T]& f, const T* box, int64_t n,
                                           const RotatedParams[T]& p, int64_t k, int64_t c0,
                                           int64_t c1, const Pooled[T]& out) except +
    void roi_align_rotated_backward_item[T](const Maps[T]& grad, const Pooled[T]& grad_out,
                                            const T* boxes, const RoisByImage& rois,
                                            const RotatedParams[T]& p, int64_t n, int64_t c0,
                                            int64_t c1) except +
    void roi_align_rotated_rois_grad_item[T](const Maps[T]& f, const Pooled[T]& grad_out,
                                             const T* box, int64_t n, const RotatedParams[T]& p,
                                             int64_t k, T* grad_box) except +

cdef extern from "cpu_align_rois_grad.h" namespace "cyroi" nogil:
    void roi_align_rois_grad_item[T](const Maps[T]& f, const Pooled[T]& grad_out, const T* box,
                                     int64_t n, const AlignParams[T]& p, int64_t k, T* grad_box) except +

cdef extern from "cpu_prroi.h" namespace "cyroi" nogil:
    cdef cppclass PreciseParams[T]:
        T scale
        int64_t pooled_h, pooled_w
    void precise_roi_pool_forward_item[T](const Maps[T]& f, const T* box, int64_t n,
                                          const PreciseParams[T]& p, int64_t k, int64_t c0,
                                          int64_t c1, const Pooled[T]& out) except +
    void precise_roi_pool_backward_item[T](const Maps[T]& grad, const Pooled[T]& grad_out,
                                           const T* boxes, const RoisByImage& rois,
                                           const PreciseParams[T]& p, int64_t n, int64_t c0,
                                           int64_t c1) except +
    void precise_roi_pool_rois_grad_item[T](const Maps[T]& f, const Pooled[T]& grad_out,
                                            const T* box, int64_t n, const PreciseParams[T]& p,
                                            int64_t k, T* grad_box) except +

cdef extern from "cpu_multiscale.h" namespace "cyroi" nogil:
    cdef cppclass FpnParams[T]:
        T canonical_scale, canonical_level
        int64_t k_min, k_max
    int64_t fpn_level_of[T](const T* box, const FpnParams[T]& fpn)
    void multiscale_roi_align_forward_item[T](const Maps[T]* maps, const AlignParams[T]* params,
                                              int64_t level, const T* box, int64_t n, int64_t k,
                                              int64_t c0, int64_t c1, const Pooled[T]& out) except +
    void multiscale_roi_align_backward_item[T](const Maps[T]* grads,
                                               const AlignParams[T]* params,
                                               const Pooled[T]& grad_out, const T* boxes,
                                               const RoisByImage& rois, int64_t level, int64_t n,
                                               int64_t c0, int64_t c1) except +
