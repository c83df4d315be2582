# Declarations of the C++ CPU loops (src/cpu_*.h) for the Cython drivers.
from libc.stdint cimport int64_t

cdef extern from "cpu_common.h" namespace "cyroi" nogil:
    cdef struct Strides4:
        int64_t n, c, h, w
    cdef cppclass Maps[T]:
        T* data
        int64_t N, C, H, W
        Strides4 s
    cdef cppclass Pooled[T]:
        T* data
        int64_t K, C, PH, PW
        Strides4 s
    cdef struct RoisByImage:
        const int64_t* order
        const int64_t* begin

cdef extern from "cpu_roi_align.h" namespace "cyroi" nogil:
    cdef cppclass AlignParams[T]:
        T scale
        int64_t pooled_h, pooled_w, sampling_ratio
        bint aligned, max_mode
    # except +: their sample tables are std::vectors; an allocation failure
    # (absurd sampling_ratio) must become MemoryError, not std::terminate.
    void roi_align_forward_item[T](const Maps[T]& f, const T* box, int64_t n,
                                   const AlignParams[T]& p, int64_t k, int64_t c0, int64_t c1,
                                   const Pooled[T]& out, const Pooled[int64_t]& argmax) except +
    void roi_align_backward_item[T](const Maps[T]& grad, const Pooled[T]& grad_out,
                                    const T* boxes, const RoisByImage& rois,
                                    const AlignParams[T]& p, const Pooled[int64_t]& argmax,
                                    int64_t n, int64_t c0, int64_t c1) except +

cdef extern from "cpu_roi_pool.h" namespace "cyroi" nogil:
    cdef cppclass PoolParams[T]:
        T scale
        int64_t pooled_h, pooled_w
    void roi_pool_forward_item[T](const Maps[T]& f, const T* box, int64_t n,
                                  const PoolParams[T]& p, int64_t k, int64_t c0, int64_t c1,
                                  const Pooled[T]& out, const Pooled[int64_t]& argmax)
    void roi_pool_backward_item[T](const Maps[T]& grad, const Pooled[T]& grad_out,
                                   const RoisByImage& rois, const Pooled[int64_t]& argmax,
                                   int64_t n, int64_t c0, int64_t c1)
