# Declarations of the C++ CPU loops of the RoI family beyond roi_align /
# roi_pool (src/cpu_family_drivers.h and the ops' headers) for the Cython
# drivers. An op is picked by passing its tag (PsRoiAlign, ...).
from libc.stdint cimport int64_t

from cpu_loops cimport AlignParams, Maps, Pooled, RoisByImage

cdef extern from "cpu_ps_roi.h" namespace "cyroi" nogil:
    cdef cppclass PsRoiAlign:
        PsRoiAlign()
    cdef cppclass PsRoiPool:
        PsRoiPool()

cdef extern from "cpu_rotated.h" namespace "cyroi" nogil:
    cdef cppclass RoiAlignRotated:
        RoiAlignRotated()
    cdef cppclass RotatedParams[T]:
        T scale
        int64_t pooled_h, pooled_w, sampling_ratio
        bint aligned, clockwise

cdef extern from "cpu_align_rois_grad.h" namespace "cyroi" nogil:
    cdef cppclass RoiAlign:
        RoiAlign()

cdef extern from "cpu_prroi.h" namespace "cyroi" nogil:
    cdef cppclass PreciseRoiPool:
        PreciseRoiPool()
    cdef cppclass PreciseParams[T]:
        T scale
        int64_t pooled_h, pooled_w

# The loops are except +: the items' sample and weight tables are
# std::vectors, and an allocation failure (an absurd sampling_ratio) must
# become MemoryError, not std::terminate. They rethrow it after the
# OpenMP region.
cdef extern from "cpu_family_drivers.h" namespace "cyroi" nogil:
    void forward_items[Op, T, P](Op op, const Maps[T]& f, const T* boxes, int64_t box_stride,
                                 const int64_t* batch, int64_t rois, const P& p,
                                 const Pooled[T]& out, int64_t channel_block,
                                 int threads) except +
    void backward_items[Op, T, P](Op op, const Maps[T]& grad, const Pooled[T]& grad_out,
                                  const T* boxes, const RoisByImage& rois, const P& p,
                                  int64_t channel_block, int threads) except +
    void rois_grad_items[Op, T, P](Op op, const Maps[T]& f, const Pooled[T]& grad_out,
                                   const T* boxes, int64_t box_stride, const int64_t* batch,
                                   int64_t rois, const P& p, T* grad_boxes, int64_t grad_stride,
                                   int threads) except +

cdef extern from "cpu_multiscale.h" namespace "cyroi" nogil:
    cdef cppclass FpnParams[T]:
        T canonical_scale, canonical_level
        int64_t k_min, k_max
    int64_t fpn_level_of[T](const T* box, const FpnParams[T]& fpn)
    void multiscale_forward_items[T](const Maps[T]* maps, const AlignParams[T]* params,
                                     const int64_t* levels, const int64_t* order, const T* boxes,
                                     int64_t box_stride, const int64_t* batch, int64_t rois,
                                     const Pooled[T]& out, int64_t channel_block,
                                     int threads) except +
    void multiscale_backward_items[T](const Maps[T]* grads, const AlignParams[T]* params,
                                      int64_t levels, const Pooled[T]& grad_out, const T* boxes,
                                      const RoisByImage& rois, int64_t channel_block,
                                      int threads) except +
