# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Parallel drivers of the RoI family's CPU loops (ps_roi_align, ps_roi_pool,
...): spread work items over OpenMP threads, as cyroi._cpu_ext does.

Arrays arrive validated and allocated by cyroi._cpu; gradients for features
arrive zeroed. Channel counts and blocks are in output channels. Gradients
for box coordinates have one work item per RoI.
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t

from libcpp.vector cimport vector

from cpu_family_loops cimport (FpnParams, PreciseParams, RotatedParams, fpn_level_of,
                               multiscale_roi_align_backward_item,
                               multiscale_roi_align_forward_item, precise_roi_pool_backward_item,
                               precise_roi_pool_forward_item, precise_roi_pool_rois_grad_item,
                               ps_roi_align_backward_item,
                               ps_roi_align_forward_item, ps_roi_pool_backward_item,
                               ps_roi_pool_forward_item, roi_align_rois_grad_item,
                               roi_align_rotated_backward_item, roi_align_rotated_forward_item,
                               roi_align_rotated_rois_grad_item)
from cpu_loops cimport AlignParams, Maps, PoolParams, Pooled, RoisByImage
from cpu_views cimport as_groups, as_maps, as_pooled, real


def ps_roi_align_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                         const int64_t[::1] batch, real[:, :, :, :] out, double scale,
                         int64_t sampling_ratio, int64_t channel_block, int num_threads):
    cdef Maps[real] f = as_maps(features)
    cdef Pooled[real] o = as_pooled(out)
    cdef AlignParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, out.shape[2], out.shape[3]
    p.sampling_ratio, p.aligned, p.max_mode = sampling_ratio, True, False
    cdef int64_t blocks = (o.C + channel_block - 1) // channel_block
    cdef int64_t item, k, c0
    for item in prange(boxes.shape[0] * blocks, nogil=True, schedule="static",
                       num_threads=num_threads):
        k = item // blocks
        c0 = (item % blocks) * channel_block
        ps_roi_align_forward_item(f, &boxes[k, 0], batch[k], p, k, c0,
                                  min(c0 + channel_block, o.C), o)


def ps_roi_align_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                          const int64_t[::1] order, const int64_t[::1] begin,
                          real[:, :, :, :] grad, double scale, int64_t sampling_ratio,
                          int64_t channel_block, int num_threads):
    cdef Maps[real] g = as_maps(grad)
    cdef Pooled[real] go = as_pooled(grad_out)
    cdef RoisByImage rois = as_groups(order, begin)
    cdef AlignParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, grad_out.shape[2], grad_out.shape[3]
    p.sampling_ratio, p.aligned, p.max_mode = sampling_ratio, True, False
    cdef int64_t blocks = (go.C + channel_block - 1) // channel_block
    cdef int64_t item, c0
    for item in prange(g.N * blocks, nogil=True, schedule="static", num_threads=num_threads):
        c0 = (item % blocks) * channel_block
        ps_roi_align_backward_item(g, go, &boxes[0, 0], rois, p, item // blocks, c0,
                                   min(c0 + channel_block, go.C))


def ps_roi_pool_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                        const int64_t[::1] batch, real[:, :, :, :] out, double scale,
                        int64_t channel_block, int num_threads):
    cdef Maps[real] f = as_maps(features)
    cdef Pooled[real] o = as_pooled(out)
    cdef PoolParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, out.shape[2], out.shape[3]
    cdef int64_t blocks = (o.C + channel_block - 1) // channel_block
    cdef int64_t item, k, c0
    for item in prange(boxes.shape[0] * blocks, nogil=True, schedule="static",
                       num_threads=num_threads):
        k = item // blocks
        c0 = (item % blocks) * channel_block
        ps_roi_pool_forward_item(f, &boxes[k, 0], batch[k], p, k, c0,
                                 min(c0 + channel_block, o.C), o)


def ps_roi_pool_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                         const int64_t[::1] order, const int64_t[::1] begin,
                         real[:, :, :, :] grad, double scale, int64_t channel_block,
                         int num_threads):
    cdef Maps[real] g = as_maps(grad)
    cdef Pooled[real] go = as_pooled(grad_out)
    cdef RoisByImage rois = as_groups(order, begin)
    cdef PoolParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, grad_out.shape[2], grad_out.shape[3]
    cdef int64_t blocks = (go.C + channel_block - 1) // channel_block
    cdef int64_t item, c0
    for item in prange(g.N * blocks, nogil=True, schedule="static", num_threads=num_threads):
        c0 = (item % blocks) * channel_block
        ps_roi_pool_backward_item(g, go, &boxes[0, 0], rois, p, item // blocks, c0,
                                  min(c0 + channel_block, go.C))


cdef inline RotatedParams[real] rotated_params(const real[:, :, :, :] pooled, double scale,
                                               int64_t sampling_ratio, bint aligned,
                                               bint clockwise):
    cdef RotatedParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, pooled.shape[2], pooled.shape[3]
    p.sampling_ratio, p.aligned, p.clockwise = sampling_ratio, aligned, clockwise
    return p


def roi_align_rotated_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                              const int64_t[::1] batch, real[:, :, :, :] out, double scale,
                              int64_t sampling_ratio, bint aligned, bint clockwise,
                              int64_t channel_block, int num_threads):
    cdef Maps[real] f = as_maps(features)
    cdef Pooled[real] o = as_pooled(out)
    cdef RotatedParams[real] p = rotated_params(out, scale, sampling_ratio, aligned, clockwise)
    cdef int64_t blocks = (f.C + channel_block - 1) // channel_block
    cdef int64_t item, k, c0
    for item in prange(boxes.shape[0] * blocks, nogil=True, schedule="static",
                       num_threads=num_threads):
        k = item // blocks
        c0 = (item % blocks) * channel_block
        roi_align_rotated_forward_item(f, &boxes[k, 0], batch[k], p, k, c0,
                                       min(c0 + channel_block, f.C), o)


def roi_align_rotated_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                               const int64_t[::1] order, const int64_t[::1] begin,
                               real[:, :, :, :] grad, double scale, int64_t sampling_ratio,
                               bint aligned, bint clockwise, int64_t channel_block,
                               int num_threads):
    cdef Maps[real] g = as_maps(grad)
    cdef Pooled[real] go = as_pooled(grad_out)
    cdef RoisByImage rois = as_groups(order, begin)
    cdef RotatedParams[real] p = rotated_params(grad_out, scale, sampling_ratio, aligned,
                                                clockwise)
    cdef int64_t blocks = (g.C + channel_block - 1) // channel_block
    cdef int64_t item, c0
    for item in prange(g.N * blocks, nogil=True, schedule="static", num_threads=num_threads):
        c0 = (item % blocks) * channel_block
        roi_align_rotated_backward_item(g, go, &boxes[0, 0], rois, p, item // blocks, c0,
                                        min(c0 + channel_block, g.C))


def roi_align_rotated_rois_grad(const real[:, :, :, :] features, const real[:, :, :, :] grad_out,
                                const real[:, ::1] boxes, const int64_t[::1] batch,
                                real[:, ::1] grad_boxes, double scale, int64_t sampling_ratio,
                                bint aligned, bint clockwise, int num_threads):
    cdef Maps[real] f = as_maps(features)
    cdef Pooled[real] go = as_pooled(grad_out)
    cdef RotatedParams[real] p = rotated_params(grad_out, scale, sampling_ratio, aligned,
                                                clockwise)
    cdef int64_t k
    for k in prange(boxes.shape[0], nogil=True, schedule="static", num_threads=num_threads):
        roi_align_rotated_rois_grad_item(f, go, &boxes[k, 0], batch[k], p, k, &grad_boxes[k, 0])


def roi_align_rois_grad(const real[:, :, :, :] features, const real[:, :, :, :] grad_out,
                        const real[:, ::1] boxes, const int64_t[::1] batch,
                        real[:, ::1] grad_boxes, double scale, int64_t sampling_ratio,
                        bint aligned, int num_threads):
    cdef Maps[real] f = as_maps(features)
    cdef Pooled[real] go = as_pooled(grad_out)
    cdef AlignParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, grad_out.shape[2], grad_out.shape[3]
    p.sampling_ratio, p.aligned, p.max_mode = sampling_ratio, aligned, False
    cdef int64_t k
    for k in prange(boxes.shape[0], nogil=True, schedule="static", num_threads=num_threads):
        roi_align_rois_grad_item(f, go, &boxes[k, 0], batch[k], p, k, &grad_boxes[k, 0])


cdef inline PreciseParams[real] precise_params(const real[:, :, :, :] pooled, double scale):
    cdef PreciseParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, pooled.shape[2], pooled.shape[3]
    return p


def precise_roi_pool_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                             const int64_t[::1] batch, real[:, :, :, :] out, double scale,
                             int64_t channel_block, int num_threads):
    cdef Maps[real] f = as_maps(features)
    cdef Pooled[real] o = as_pooled(out)
    cdef PreciseParams[real] p = precise_params(out, scale)
    cdef int64_t blocks = (f.C + channel_block - 1) // channel_block
    cdef int64_t item, k, c0
    for item in prange(boxes.shape[0] * blocks, nogil=True, schedule="static",
                       num_threads=num_threads):
        k = item // blocks
        c0 = (item % blocks) * channel_block
        precise_roi_pool_forward_item(f, &boxes[k, 0], batch[k], p, k, c0,
                                      min(c0 + channel_block, f.C), o)


def precise_roi_pool_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                              const int64_t[::1] order, const int64_t[::1] begin,
                              real[:, :, :, :] grad, double scale, int64_t channel_block,
                              int num_threads):
    cdef Maps[real] g = as_maps(grad)
    cdef Pooled[real] go = as_pooled(grad_out)
    cdef RoisByImage rois = as_groups(order, begin)
    cdef PreciseParams[real] p = precise_params(grad_out, scale)
    cdef int64_t blocks = (g.C + channel_block - 1) // channel_block
    cdef int64_t item, c0
    for item in prange(g.N * blocks, nogil=True, schedule="static", num_threads=num_threads):
        c0 = (item % blocks) * channel_block
        precise_roi_pool_backward_item(g, go, &boxes[0, 0], rois, p, item // blocks, c0,
                                       min(c0 + channel_block, g.C))


def precise_roi_pool_rois_grad(const real[:, :, :, :] features,
                               const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                               const int64_t[::1] batch, real[:, ::1] grad_boxes, double scale,
                               int num_threads):
    cdef Maps[real] f = as_maps(features)
    cdef Pooled[real] go = as_pooled(grad_out)
    cdef PreciseParams[real] p = precise_params(grad_out, scale)
    cdef int64_t k
    for k in prange(boxes.shape[0], nogil=True, schedule="static", num_threads=num_threads):
        precise_roi_pool_rois_grad_item(f, go, &boxes[k, 0], batch[k], p, k, &grad_boxes[k, 0])


cdef inline FpnParams[real] fpn_params(const real[:, ::1] boxes, double canonical_scale,
                                       double canonical_level, int64_t k_min, int64_t k_max):
    cdef FpnParams[real] fpn
    fpn.canonical_scale, fpn.canonical_level = <real>canonical_scale, <real>canonical_level
    fpn.k_min, fpn.k_max = k_min, k_max
    return fpn


cdef vector[AlignParams[real]] level_params(const real[:, ::1] boxes, const double[::1] scales,
                                            Py_ssize_t pooled_h, Py_ssize_t pooled_w,
                                            int64_t sampling_ratio, bint aligned):
    """roi_align's parameters for each level (boxes only picks the dtype)."""
    cdef vector[AlignParams[real]] params
    cdef AlignParams[real] p
    cdef Py_ssize_t i
    for i in range(scales.shape[0]):
        p.scale, p.pooled_h, p.pooled_w = <real>scales[i], pooled_h, pooled_w
        p.sampling_ratio, p.aligned, p.max_mode = sampling_ratio, aligned, False
        params.push_back(p)
    return params


cdef vector[Maps[real]] level_maps(const real[:, ::1] boxes, list arrays):
    """Views of each level's (N, C, H, W) array; `arrays` keeps them alive."""
    cdef vector[Maps[real]] maps
    cdef const real[:, :, :, :] view
    for array in arrays:
        view = array
        maps.push_back(as_maps(view))
    return maps


def fpn_levels(const real[:, ::1] boxes, int64_t[::1] levels, double canonical_scale,
               double canonical_level, int64_t k_min, int64_t k_max, int num_threads):
    cdef FpnParams[real] fpn = fpn_params(boxes, canonical_scale, canonical_level, k_min, k_max)
    cdef int64_t k
    for k in prange(boxes.shape[0], nogil=True, schedule="static", num_threads=num_threads):
        levels[k] = fpn_level_of(&boxes[k, 0], fpn)


def multiscale_roi_align_forward(list features, const real[:, ::1] boxes,
                                 const int64_t[::1] batch, const int64_t[::1] levels,
                                 const int64_t[::1] order, real[:, :, :, :] out,
                                 const double[::1] scales, int64_t sampling_ratio, bint aligned,
                                 int64_t channel_block, int num_threads):
    """RoI k is on level levels[k]; RoIs are visited in `order` (by level)."""
    cdef vector[Maps[real]] maps = level_maps(boxes, features)
    cdef vector[AlignParams[real]] params = level_params(boxes, scales, out.shape[2],
                                                         out.shape[3], sampling_ratio, aligned)
    cdef Pooled[real] o = as_pooled(out)
    cdef int64_t blocks = (o.C + channel_block - 1) // channel_block
    cdef int64_t item, k, c0
    for item in prange(boxes.shape[0] * blocks, nogil=True, schedule="static",
                       num_threads=num_threads):
        k = order[item // blocks]
        c0 = (item % blocks) * channel_block
        multiscale_roi_align_forward_item(maps.data(), params.data(), levels[k], &boxes[k, 0],
                                          batch[k], k, c0, min(c0 + channel_block, o.C), o)


def multiscale_roi_align_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                                  const int64_t[::1] order, const int64_t[::1] begin,
                                  list grads, const double[::1] scales, int64_t sampling_ratio,
                                  bint aligned, int64_t channel_block, int num_threads):
    """begin groups the RoIs by (level, image): group level * N + n. Items
    differ in cost (level 0 is the largest), so threads take them as they
    free up; each still owns its planes, so the bits do not change."""
    cdef vector[Maps[real]] maps = level_maps(boxes, grads)
    cdef vector[AlignParams[real]] params = level_params(boxes, scales, grad_out.shape[2],
                                                         grad_out.shape[3], sampling_ratio,
                                                         aligned)
    cdef Pooled[real] go = as_pooled(grad_out)
    cdef RoisByImage rois = as_groups(order, begin)
    cdef int64_t images = maps[0].N
    cdef int64_t blocks = (go.C + channel_block - 1) // channel_block
    cdef int64_t item, group, c0
    for item in prange(<int64_t>maps.size() * images * blocks, nogil=True, schedule="dynamic",
                       num_threads=num_threads):
        group = item // blocks
        c0 = (item % blocks) * channel_block
        multiscale_roi_align_backward_item(maps.data(), params.data(), go, &boxes[0, 0], rois,
                                           group // images, group % images, c0,
                                           min(c0 + channel_block, go.C))
