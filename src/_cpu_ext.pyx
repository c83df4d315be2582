# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Parallel drivers of the CPU loops: spread work items over OpenMP threads.

Arrays arrive already validated and allocated by cyroi._cpu (any strides;
outputs and gradients zero-initialised where they accumulate). Typed
memoryviews only, no NumPy C-API, so one build serves NumPy 1 and 2.
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t

from cpu_loops cimport (AlignParams, Maps, PoolParams, Pooled, RoisByImage,
                        roi_align_backward_item, roi_align_forward_item,
                        roi_pool_backward_item, roi_pool_forward_item)
from cpu_views cimport as_groups, as_indices, as_maps, as_pooled, real

cdef extern from "omp.h":
    int omp_get_max_threads() nogil


def max_threads():
    """OpenMP's current default team size (OMP_NUM_THREADS, threadpoolctl)."""
    return omp_get_max_threads()


def roi_align_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                      const int64_t[::1] batch, real[:, :, :, :] out,
                      int64_t[:, :, :, :] argmax, double scale, int64_t sampling_ratio,
                      bint aligned, bint max_mode, int64_t channel_block, int num_threads):
    cdef Maps[real] f = as_maps(features)
    cdef Pooled[real] o = as_pooled(out)
    cdef Pooled[int64_t] a = as_indices(argmax)
    cdef AlignParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, out.shape[2], out.shape[3]
    p.sampling_ratio, p.aligned, p.max_mode = sampling_ratio, aligned, max_mode
    cdef int64_t blocks = (f.C + channel_block - 1) // channel_block
    cdef int64_t item, k, c0
    for item in prange(boxes.shape[0] * blocks, nogil=True, schedule="static",
                       num_threads=num_threads):
        k = item // blocks
        c0 = (item % blocks) * channel_block
        roi_align_forward_item(f, &boxes[k, 0], batch[k], p, k, c0,
                               min(c0 + channel_block, f.C), o, a)


def roi_align_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                       const int64_t[::1] order, const int64_t[::1] begin,
                       const int64_t[:, :, :, :] argmax, real[:, :, :, :] grad,
                       double scale, int64_t sampling_ratio, bint aligned, bint max_mode,
                       int64_t channel_block, int num_threads):
    cdef Maps[real] g = as_maps(grad)
    cdef Pooled[real] go = as_pooled(grad_out)
    cdef Pooled[int64_t] a = as_indices(argmax)
    cdef RoisByImage rois = as_groups(order, begin)
    cdef AlignParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, grad_out.shape[2], grad_out.shape[3]
    p.sampling_ratio, p.aligned, p.max_mode = sampling_ratio, aligned, max_mode
    cdef int64_t blocks = (g.C + channel_block - 1) // channel_block
    cdef int64_t item, c0
    for item in prange(g.N * blocks, nogil=True, schedule="static", num_threads=num_threads):
        c0 = (item % blocks) * channel_block
        roi_align_backward_item(g, go, &boxes[0, 0], rois, p, a, item // blocks, c0,
                                min(c0 + channel_block, g.C))


def roi_pool_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                     const int64_t[::1] batch, real[:, :, :, :] out,
                     int64_t[:, :, :, :] argmax, double scale, int64_t channel_block,
                     int num_threads):
    cdef Maps[real] f = as_maps(features)
    cdef Pooled[real] o = as_pooled(out)
    cdef Pooled[int64_t] a = as_indices(argmax)
    cdef PoolParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, out.shape[2], out.shape[3]
    cdef int64_t blocks = (f.C + channel_block - 1) // channel_block
    cdef int64_t item, k, c0
    for item in prange(boxes.shape[0] * blocks, nogil=True, schedule="static",
                       num_threads=num_threads):
        k = item // blocks
        c0 = (item % blocks) * channel_block
        roi_pool_forward_item(f, &boxes[k, 0], batch[k], p, k, c0,
                              min(c0 + channel_block, f.C), o, a)


def roi_pool_backward(const real[:, :, :, :] grad_out, const int64_t[::1] order,
                      const int64_t[::1] begin, const int64_t[:, :, :, :] argmax,
                      real[:, :, :, :] grad, int64_t channel_block, int num_threads):
    cdef Maps[real] g = as_maps(grad)
    cdef Pooled[real] go = as_pooled(grad_out)
    cdef Pooled[int64_t] a = as_indices(argmax)
    cdef RoisByImage rois = as_groups(order, begin)
    cdef int64_t blocks = (g.C + channel_block - 1) // channel_block
    cdef int64_t item, c0
    for item in prange(g.N * blocks, nogil=True, schedule="static", num_threads=num_threads):
        c0 = (item % blocks) * channel_block
        roi_pool_backward_item(g, go, rois, a, item // blocks, c0, min(c0 + channel_block, g.C))
