# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Entry points of the CPU loops (src/cpu_*.h), which spread their work over
OpenMP threads themselves, and the one-pass RoI scan of cyroi._rois.

Arrays arrive already validated and allocated by cyroi._cpu (any strides;
gradients zero-initialised, or zeroed by the loops with zero_first). An
argmax that is not wanted or not needed comes as an empty array, which the
loops see as none (None would leave the fused index type undecided).
Typed memoryviews only, no NumPy C-API, so one build serves NumPy 1 and 2.
The GIL is released while the loops run.
"""
from libc.math cimport floor, isfinite
from libc.stdint cimport INT64_MIN, int64_t

from cpu_loops cimport (AlignParams, Pooled, roi_align_backward as align_backward,
                        roi_align_forward as align_forward, roi_pool_backward as pool_backward,
                        roi_pool_forward as pool_forward, simd_bytes as loops_simd_bytes)
from cpu_params cimport align_params, pool_params
from cpu_views cimport as_maps, as_pooled, argmax_index, real

cdef extern from "omp.h":
    int omp_get_max_threads() nogil


def max_threads():
    """OpenMP's current default team size (OMP_NUM_THREADS, threadpoolctl)."""
    return omp_get_max_threads()


def simd_bytes():
    """The vector register bytes of the SIMD target the loops run on: 64
    (AVX-512), 32 (AVX2) or 16 (SSE2, and other CPUs), or a narrower one that
    the environment variable CYROI_SIMD_BYTES asked for."""
    return loops_simd_bytes()


def roi_align_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                      const int64_t[::1] batch, real[:, :, :, :] out,
                      argmax_index[:, :, :, :] argmax, double scale, int64_t sampling_ratio,
                      bint aligned, bint max_mode, int num_threads):
    cdef Pooled[argmax_index] a = as_pooled(argmax)
    cdef AlignParams[real] p = align_params(out, scale, sampling_ratio, aligned, max_mode)
    with nogil:
        align_forward(as_maps(features), &boxes[0, 0], &batch[0], boxes.shape[0], p,
                      as_pooled(out), a, num_threads)


def roi_align_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                       const int64_t[::1] batch, const argmax_index[:, :, :, :] argmax,
                       real[:, :, :, :] grad, bint zero_first, double scale,
                       int64_t sampling_ratio, bint aligned, bint max_mode, int num_threads):
    cdef Pooled[argmax_index] a = as_pooled(argmax)
    cdef AlignParams[real] p = align_params(grad_out, scale, sampling_ratio, aligned, max_mode)
    with nogil:
        align_backward(as_maps(grad), as_pooled(grad_out), &boxes[0, 0], &batch[0], p, a,
                       zero_first, num_threads)


def roi_pool_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                     const int64_t[::1] batch, real[:, :, :, :] out,
                     argmax_index[:, :, :, :] argmax, double scale, int num_threads):
    cdef Pooled[argmax_index] a = as_pooled(argmax)
    with nogil:
        pool_forward(as_maps(features), &boxes[0, 0], &batch[0], boxes.shape[0],
                     pool_params(out, scale), as_pooled(out), a, num_threads)


def roi_pool_backward(const real[:, :, :, :] grad_out, const int64_t[::1] batch,
                      const argmax_index[:, :, :, :] argmax, real[:, :, :, :] grad,
                      bint zero_first, int num_threads):
    cdef Pooled[argmax_index] a = as_pooled(argmax)
    with nogil:
        pool_backward(as_maps(grad), as_pooled(grad_out), &batch[0], a, zero_first,
                      num_threads)


ctypedef fused coord:
    float
    double


def scan_rois(const coord[:, :] table, Py_ssize_t first, real[:, ::1] boxes,
              int64_t[::1] batch, bint with_index):
    """One pass over a (K, B) table of RoIs for cyroi._rois: converts the box
    columns [first, first + boxes.shape[1]) into `boxes` and, with_index, the
    batch column 0 into `batch` as NumPy's cast does on x86-64 after NaN and
    inf became -1 (integral values kept, out of int64 range -> INT64_MIN).
    Returns (fractional, low, high, nonfinite): whether column 0 held a
    fractional or NaN value, the range of `batch` (K > 0), and whether a
    converted box coordinate is not finite."""
    cdef Py_ssize_t k, j, rois = boxes.shape[0], columns = boxes.shape[1]
    cdef bint fractional = False, nonfinite = False
    cdef int64_t low = 0, high = 0
    cdef double v
    cdef real converted
    with nogil:
        for k in range(rois):
            if with_index:
                v = table[k, 0]
                fractional = fractional or v != floor(v)
                if not isfinite(v):
                    batch[k] = -1
                elif -9.2233720368547758e18 <= v < 9.2233720368547758e18:
                    batch[k] = <int64_t>v
                else:
                    batch[k] = INT64_MIN
            if k == 0 or batch[k] < low:
                low = batch[k]
            if k == 0 or batch[k] > high:
                high = batch[k]
            for j in range(columns):
                converted = <real>table[k, first + j]
                boxes[k, j] = converted
                nonfinite = nonfinite or not isfinite(converted)
    return fractional, low, high, nonfinite
