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
    int simd_bytes()

cdef extern from "cpu_roi_align.h" namespace "cyroi" nogil:
    cdef cppclass AlignParams[T]:
        T scale
        int64_t pooled_h, pooled_w, sampling_ratio
        bint aligned, max_mode
    # except +: the loops allocate (sample tables, channels-last copies); a
    # failure (absurd sampling_ratio) must become MemoryError, not terminate.
    # A: the argmax's integer type (int32_t or int64_t).
    void roi_align_forward[T, A](const Maps[T]& f, const T* boxes, const int64_t* batch,
                                 int64_t rois, const AlignParams[T]& p, const Pooled[T]& out,
                                 const Pooled[A]& argmax, int threads) except +
    void roi_align_backward[T, A](const Maps[T]& grad, const Pooled[T]& grad_out,
                                  const T* boxes, const int64_t* batch,
                                  const AlignParams[T]& p, const Pooled[A]& argmax,
                                  bint zero_first, int threads) except +

cdef extern from "cpu_roi_pool.h" namespace "cyroi" nogil:
    cdef cppclass PoolParams[T]:
        T scale
        int64_t pooled_h, pooled_w
    # A: the argmax's integer type (int32_t or int64_t).
    void roi_pool_forward[T, A](const Maps[T]& f, const T* boxes, const int64_t* batch,
                                int64_t rois, const PoolParams[T]& p, const Pooled[T]& out,
                                const Pooled[A]& argmax, int threads) except +
    void roi_pool_backward[T, A](const Maps[T]& grad, const Pooled[T]& grad_out,
                                 const int64_t* batch, const Pooled[A]& argmax,
                                 bint zero_first, int threads) except +
