# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Entry points of the RoI family's CPU loops (ps_roi_align, ps_roi_pool,
...): each hands its op's tag, views and parameters to the shared parallel
loops of src/cpu_family_drivers.h, which spread the work items over OpenMP
threads, with the GIL released.

Arrays arrive validated and allocated by cyroi._cpu; gradients for features
arrive zeroed. Channel blocks are in output channels. Gradients for box
coordinates have one work item per RoI.
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t

from libcpp.vector cimport vector

from cpu_family_loops cimport (FpnParams, PreciseParams, PreciseRoiPool, PsRoiAlign, PsRoiPool,
                               RoiAlign, RoiAlignRotated, RotatedParams, backward_items,
                               forward_items, fpn_level_of, multiscale_backward_items,
                               multiscale_forward_items, rois_grad_items)
from cpu_loops cimport AlignParams, Maps
from cpu_params cimport align_params, pool_params
from cpu_views cimport as_groups, as_maps, as_pooled, real, row_step


def ps_roi_align_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                         const int64_t[::1] batch, real[:, :, :, :] out, double scale,
                         int64_t sampling_ratio, int64_t channel_block, int num_threads):
    cdef AlignParams[real] p = align_params(out, scale, sampling_ratio, True, False)
    with nogil:
        forward_items(PsRoiAlign(), as_maps(features), &boxes[0, 0], row_step(boxes), &batch[0],
                      boxes.shape[0], p, as_pooled(out), channel_block, num_threads)


def ps_roi_align_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                          const int64_t[::1] order, const int64_t[::1] begin,
                          real[:, :, :, :] grad, double scale, int64_t sampling_ratio,
                          int64_t channel_block, int num_threads):
    cdef AlignParams[real] p = align_params(grad_out, scale, sampling_ratio, True, False)
    with nogil:
        backward_items(PsRoiAlign(), as_maps(grad), as_pooled(grad_out), &boxes[0, 0],
                       as_groups(order, begin), p, channel_block, num_threads)


def ps_roi_pool_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                        const int64_t[::1] batch, real[:, :, :, :] out, double scale,
                        int64_t channel_block, int num_threads):
    with nogil:
        forward_items(PsRoiPool(), as_maps(features), &boxes[0, 0], row_step(boxes), &batch[0],
                      boxes.shape[0], pool_params(out, scale), as_pooled(out), channel_block,
                      num_threads)


def ps_roi_pool_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                         const int64_t[::1] order, const int64_t[::1] begin,
                         real[:, :, :, :] grad, double scale, int64_t channel_block,
                         int num_threads):
    with nogil:
        backward_items(PsRoiPool(), as_maps(grad), as_pooled(grad_out), &boxes[0, 0],
                       as_groups(order, begin), pool_params(grad_out, scale), channel_block,
                       num_threads)


cdef inline RotatedParams[real] rotated_params(const real[:, :, :, :] pooled, double scale,
                                               int64_t sampling_ratio, bint aligned,
                                               bint clockwise) noexcept:
    cdef RotatedParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, pooled.shape[2], pooled.shape[3]
    p.sampling_ratio, p.aligned, p.clockwise = sampling_ratio, aligned, clockwise
    return p


def roi_align_rotated_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                              const int64_t[::1] batch, real[:, :, :, :] out, double scale,
                              int64_t sampling_ratio, bint aligned, bint clockwise,
                              int64_t channel_block, int num_threads):
    cdef RotatedParams[real] p = rotated_params(out, scale, sampling_ratio, aligned, clockwise)
    with nogil:
        forward_items(RoiAlignRotated(), as_maps(features), &boxes[0, 0], row_step(boxes),
                      &batch[0], boxes.shape[0], p, as_pooled(out), channel_block, num_threads)


def roi_align_rotated_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                               const int64_t[::1] order, const int64_t[::1] begin,
                               real[:, :, :, :] grad, double scale, int64_t sampling_ratio,
                               bint aligned, bint clockwise, int64_t channel_block,
                               int num_threads):
    cdef RotatedParams[real] p = rotated_params(grad_out, scale, sampling_ratio, aligned,
                                                clockwise)
    with nogil:
        backward_items(RoiAlignRotated(), as_maps(grad), as_pooled(grad_out), &boxes[0, 0],
                       as_groups(order, begin), p, channel_block, num_threads)


def roi_align_rotated_rois_grad(const real[:, :, :, :] features, const real[:, :, :, :] grad_out,
                                const real[:, ::1] boxes, const int64_t[::1] batch,
                                real[:, ::1] grad_boxes, double scale, int64_t sampling_ratio,
                                bint aligned, bint clockwise, int num_threads):
    cdef RotatedParams[real] p = rotated_params(grad_out, scale, sampling_ratio, aligned,
                                                clockwise)
    with nogil:
        rois_grad_items(RoiAlignRotated(), as_maps(features), as_pooled(grad_out), &boxes[0, 0],
                        row_step(boxes), &batch[0], boxes.shape[0], p, &grad_boxes[0, 0],
                        row_step(grad_boxes), num_threads)


def roi_align_rois_grad(const real[:, :, :, :] features, const real[:, :, :, :] grad_out,
                        const real[:, ::1] boxes, const int64_t[::1] batch,
                        real[:, ::1] grad_boxes, double scale, int64_t sampling_ratio,
                        bint aligned, int num_threads):
    cdef AlignParams[real] p = align_params(grad_out, scale, sampling_ratio, aligned, False)
    with nogil:
        rois_grad_items(RoiAlign(), as_maps(features), as_pooled(grad_out), &boxes[0, 0],
                        row_step(boxes), &batch[0], boxes.shape[0], p, &grad_boxes[0, 0],
                        row_step(grad_boxes), num_threads)


cdef inline PreciseParams[real] precise_params(const real[:, :, :, :] pooled,
                                               double scale) noexcept:
    cdef PreciseParams[real] p
    p.scale, p.pooled_h, p.pooled_w = <real>scale, pooled.shape[2], pooled.shape[3]
    return p


def precise_roi_pool_forward(const real[:, :, :, :] features, const real[:, ::1] boxes,
                             const int64_t[::1] batch, real[:, :, :, :] out, double scale,
                             int64_t channel_block, int num_threads):
    cdef PreciseParams[real] p = precise_params(out, scale)
    with nogil:
        forward_items(PreciseRoiPool(), as_maps(features), &boxes[0, 0], row_step(boxes),
                      &batch[0], boxes.shape[0], p, as_pooled(out), channel_block, num_threads)


def precise_roi_pool_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                              const int64_t[::1] order, const int64_t[::1] begin,
                              real[:, :, :, :] grad, double scale, int64_t channel_block,
                              int num_threads):
    cdef PreciseParams[real] p = precise_params(grad_out, scale)
    with nogil:
        backward_items(PreciseRoiPool(), as_maps(grad), as_pooled(grad_out), &boxes[0, 0],
                       as_groups(order, begin), p, channel_block, num_threads)


def precise_roi_pool_rois_grad(const real[:, :, :, :] features,
                               const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                               const int64_t[::1] batch, real[:, ::1] grad_boxes, double scale,
                               int num_threads):
    cdef PreciseParams[real] p = precise_params(grad_out, scale)
    with nogil:
        rois_grad_items(PreciseRoiPool(), as_maps(features), as_pooled(grad_out), &boxes[0, 0],
                        row_step(boxes), &batch[0], boxes.shape[0], p, &grad_boxes[0, 0],
                        row_step(grad_boxes), num_threads)


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


# One formula per RoI that cannot throw: a plain prange serves.
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
    with nogil:
        multiscale_forward_items(maps.data(), params.data(), &levels[0], &order[0], &boxes[0, 0],
                                 row_step(boxes), &batch[0], boxes.shape[0], as_pooled(out),
                                 channel_block, num_threads)


def multiscale_roi_align_backward(const real[:, :, :, :] grad_out, const real[:, ::1] boxes,
                                  const int64_t[::1] order, const int64_t[::1] begin,
                                  list grads, const double[::1] scales, int64_t sampling_ratio,
                                  bint aligned, int64_t channel_block, int num_threads):
    """begin groups the RoIs by (level, image): group level * N + n."""
    cdef vector[Maps[real]] maps = level_maps(boxes, grads)
    cdef vector[AlignParams[real]] params = level_params(boxes, scales, grad_out.shape[2],
                                                         grad_out.shape[3], sampling_ratio,
                                                         aligned)
    with nogil:
        multiscale_backward_items(maps.data(), params.data(), maps.size(), as_pooled(grad_out),
                                  &boxes[0, 0], as_groups(order, begin), channel_block,
                                  num_threads)
