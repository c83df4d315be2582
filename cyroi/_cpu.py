"""CPU backend: thin drivers over the compiled OpenMP loops (cyroi._cpu_ext,
cyroi._cpu_family).

Inputs arrive validated; (N, C, H, W) views of any layout or strides are
handed to the loops, which read through strides, so NHWC and strided inputs
need no copy. float16 computes in float32.
"""
import math

import numpy as np

from . import _cpu_ext, _cpu_family, _memory
from ._arrays import aligned_array
from ._threads import get_num_threads

# Channels per work item of the family loops (roi_align and roi_pool pick
# their own blocks in C++): enough to reuse each RoI's sample taps, few
# enough that (RoI, block) pairs keep every thread busy.
CHANNEL_BLOCK = 32


def compute_dtype(dtype):
    # By width, not equality: big-endian float64 and long double are not
    # == np.float64 but must not drop to float32.
    return np.dtype(np.float64) if dtype.itemsize >= 8 else np.dtype(np.float32)


def _as_compute(array):
    dtype = array.dtype
    if dtype.char in "fd" and dtype.isnative:  # already what the loops take
        return aligned_array(array)
    return aligned_array(array.astype(compute_dtype(dtype), copy=False))


def _logical(array, layout):
    """(N, C, H, W)-ordered view of an NCHW or NHWC array."""
    return array if layout == "NCHW" else array.transpose(0, 3, 1, 2)


def _nbytes(shape, dtype):
    return math.prod(shape) * np.dtype(dtype).itemsize


def _empty(shape, dtype):
    nbytes = _nbytes(shape, dtype)
    if not _memory.reusable(nbytes):
        return np.empty(shape, dtype)
    return np.frombuffer(_memory.Block(nbytes), dtype).reshape(shape)


def _allocate(shape_nchw, layout, dtype, zeroed=False):
    """A new array in `layout` and its (N, C, H, W) view."""
    n, c, h, w = shape_nchw
    shape = (n, c, h, w) if layout == "NCHW" else (n, h, w, c)
    # np.zeros, not np.full: the OS hands out zero pages lazily, so a huge
    # gradient costs memory only where RoIs write.
    array = np.zeros(shape, dtype) if zeroed else _empty(shape, dtype)
    return array, _logical(array, layout)


def _gradient(shape_nchw, layout, dtype, filled):
    """(gradient, its (N, C, H, W) view, zero_first) for roi_align's and
    roi_pool's backward loops. A reusable block if the loop runs (`filled`),
    which then zeroes it block by block (zero_first); else lazily zeroed
    pages, so a huge gradient costs memory only where RoIs write."""
    reuse = filled and _memory.reusable(_nbytes(shape_nchw, dtype))
    return (*_allocate(shape_nchw, layout, dtype, zeroed=not reuse), reuse)


def _group_by_image(batch, num_images):
    """RoI indices sorted by image (stable) and each image's start: the fixed
    visiting order that makes backward the same for any thread count."""
    valid = np.flatnonzero((batch >= 0) & (batch < num_images))
    order = valid[np.argsort(batch[valid], kind="stable")].astype(np.int64)
    begin = np.searchsorted(batch[order], np.arange(num_images + 1)).astype(np.int64)
    return order, begin


def _no_argmax(dtype):
    """What the loops take for an argmax that is not wanted (_cpu_ext)."""
    return np.empty((0, 0, 0, 0), dtype)


def _forward_with_argmax(loop, features, boxes, batch, size, layout, want_argmax, index,
                         *params):
    """(output, argmax) of roi_align or roi_pool, argmax (dtype `index`)
    None unless want_argmax: loop(features_view, boxes, batch, out_view,
    argmax_view, *params, threads) fills them."""
    x = _logical(_as_compute(features), layout)
    out, out_view = _allocate((len(boxes), x.shape[1], *size), layout, x.dtype)
    argmax, argmax_view = None, _no_argmax(index)
    if want_argmax:
        argmax, argmax_view = _allocate(out_view.shape, layout, index)
    if out.size:
        loop(x, boxes, batch, out_view, argmax_view, *params, get_num_threads())
    return out.astype(features.dtype, copy=False), argmax


def roi_align_forward(features, boxes, batch, size, scale, sampling_ratio, aligned, mode,
                      layout, want_argmax, index):
    return _forward_with_argmax(_cpu_ext.roi_align_forward, features, boxes, batch, size, layout,
                                want_argmax, index, scale, sampling_ratio, aligned,
                                mode == "max")


def roi_align_backward(grad_output, boxes, batch, shape, scale, sampling_ratio, aligned, mode,
                       argmax, layout, deterministic=False):  # always deterministic here
    g = _logical(_as_compute(grad_output), layout)
    grad, grad_view, zero_first = _gradient(shape, layout, g.dtype, g.size > 0)
    if grad.size and g.size:
        argmax_view = (_logical(aligned_array(argmax), layout) if mode == "max"
                       else _no_argmax(np.int64))
        _cpu_ext.roi_align_backward(g, boxes, batch, argmax_view, grad_view, zero_first,
                                    scale, sampling_ratio, aligned, mode == "max",
                                    get_num_threads())
    return grad.astype(grad_output.dtype, copy=False)


def roi_pool_forward(features, boxes, batch, size, scale, layout, want_argmax, index):
    return _forward_with_argmax(_cpu_ext.roi_pool_forward, features, boxes, batch, size, layout,
                                want_argmax, index, scale)


def roi_pool_backward(grad_output, batch, argmax, shape, layout, deterministic=False):
    g = _logical(_as_compute(grad_output), layout)
    grad, grad_view, zero_first = _gradient(shape, layout, g.dtype, g.size > 0)
    if grad.size and g.size:
        _cpu_ext.roi_pool_backward(g, batch, _logical(aligned_array(argmax), layout),
                                   grad_view, zero_first, get_num_threads())
    return grad.astype(grad_output.dtype, copy=False)


def _pooled_forward(loop, features, boxes, batch, channels, size, layout, *params):
    """Allocates the (K, channels, PH, PW) output in `layout` and lets the
    family loop fill it: loop(features_view, boxes, batch, out_view, *params,
    channel_block, threads)."""
    x = _logical(_as_compute(features), layout)
    out, out_view = _allocate((len(boxes), channels, *size), layout, x.dtype)
    if out.size:
        loop(x, boxes, batch, out_view, *params, CHANNEL_BLOCK, get_num_threads())
    return out.astype(features.dtype, copy=False)


def _scatter_backward(loop, grad_output, boxes, batch, shape, layout, *params):
    """Allocates a zeroed gradient of `shape` (NCHW order) in `layout` and
    lets the family loop accumulate into it: loop(grad_output_view, boxes,
    order, begin, grad_view, *params, channel_block, threads)."""
    g = _logical(_as_compute(grad_output), layout)
    grad, grad_view = _allocate(shape, layout, g.dtype, zeroed=True)
    if grad.size and g.size:
        order, begin = _group_by_image(batch, shape[0])
        loop(g, boxes, order, begin, grad_view, *params, CHANNEL_BLOCK, get_num_threads())
    return grad.astype(grad_output.dtype, copy=False)


def _rois_grad(loop, grad_output, features, boxes, batch, layout, *params):
    """The (K, B) gradient for box coordinates, one row per RoI, all in the
    compute dtype of the boxes: loop(features_view, grad_output_view, boxes,
    batch, grad_boxes, *params, threads) fills it."""
    x = _logical(aligned_array(features.astype(boxes.dtype, copy=False)), layout)
    g = _logical(aligned_array(grad_output.astype(boxes.dtype, copy=False)), layout)
    grad_boxes = np.zeros(boxes.shape, boxes.dtype)
    if len(boxes) and g.size:
        loop(x, g, boxes, batch, grad_boxes, *params, get_num_threads())
    return grad_boxes.astype(grad_output.dtype, copy=False)


def _channels(features, layout):
    return _logical(features, layout).shape[1]


def _ps_channels(features, size, layout):
    """Output channels of a position-sensitive op: C / (PH * PW)."""
    return _channels(features, layout) // (size[0] * size[1])


def ps_roi_align_forward(features, boxes, batch, size, scale, sampling_ratio, layout):
    return _pooled_forward(_cpu_family.ps_roi_align_forward, features, boxes, batch,
                           _ps_channels(features, size, layout), size, layout, scale,
                           sampling_ratio)


def ps_roi_align_backward(grad_output, boxes, batch, shape, scale, sampling_ratio, layout,
                          deterministic=False):  # always deterministic here
    return _scatter_backward(_cpu_family.ps_roi_align_backward, grad_output, boxes, batch, shape,
                             layout, scale, sampling_ratio)


def ps_roi_pool_forward(features, boxes, batch, size, scale, layout):
    return _pooled_forward(_cpu_family.ps_roi_pool_forward, features, boxes, batch,
                           _ps_channels(features, size, layout), size, layout, scale)


def ps_roi_pool_backward(grad_output, boxes, batch, shape, scale, layout,
                         deterministic=False):  # always deterministic here
    return _scatter_backward(_cpu_family.ps_roi_pool_backward, grad_output, boxes, batch, shape,
                             layout, scale)


def roi_align_rois_grad(grad_output, features, boxes, batch, scale, sampling_ratio, aligned,
                        layout):
    return _rois_grad(_cpu_family.roi_align_rois_grad, grad_output, features, boxes, batch,
                      layout, scale, sampling_ratio, aligned)


def roi_align_rotated_forward(features, boxes, batch, size, scale, sampling_ratio, aligned,
                              clockwise, layout):
    return _pooled_forward(_cpu_family.roi_align_rotated_forward, features, boxes, batch,
                           _channels(features, layout), size, layout, scale, sampling_ratio,
                           aligned, clockwise)


def roi_align_rotated_backward(grad_output, boxes, batch, shape, scale, sampling_ratio, aligned,
                               clockwise, layout, deterministic=False):  # always here
    return _scatter_backward(_cpu_family.roi_align_rotated_backward, grad_output, boxes, batch,
                             shape, layout, scale, sampling_ratio, aligned, clockwise)


def roi_align_rotated_rois_grad(grad_output, features, boxes, batch, scale, sampling_ratio,
                                aligned, clockwise, layout):
    return _rois_grad(_cpu_family.roi_align_rotated_rois_grad, grad_output, features, boxes,
                      batch, layout, scale, sampling_ratio, aligned, clockwise)


def precise_roi_pool_forward(features, boxes, batch, size, scale, layout):
    return _pooled_forward(_cpu_family.precise_roi_pool_forward, features, boxes, batch,
                           _channels(features, layout), size, layout, scale)


def precise_roi_pool_backward(grad_output, boxes, batch, shape, scale, layout,
                              deterministic=False):  # always deterministic here
    return _scatter_backward(_cpu_family.precise_roi_pool_backward, grad_output, boxes, batch,
                             shape, layout, scale)


def precise_roi_pool_rois_grad(grad_output, features, boxes, batch, scale, layout):
    return _rois_grad(_cpu_family.precise_roi_pool_rois_grad, grad_output, features, boxes,
                      batch, layout, scale)


def _fpn_levels(boxes, canonical_scale, canonical_level, levels):
    level = np.empty(len(boxes), np.int64)
    if len(boxes):
        _cpu_family.fpn_levels(boxes, level, canonical_scale, canonical_level, *levels,
                               get_num_threads())
    return level


def multiscale_roi_align_forward(features_list, boxes, batch, size, scales, levels,
                                 sampling_ratio, aligned, canonical_scale, canonical_level,
                                 layout):
    views = [_logical(_as_compute(features), layout) for features in features_list]
    level = _fpn_levels(boxes, canonical_scale, canonical_level, levels)
    order = np.argsort(level, kind="stable")
    out, out_view = _allocate((len(boxes), views[0].shape[1], *size), layout, views[0].dtype)
    if out.size:
        _cpu_family.multiscale_roi_align_forward(views, boxes, batch, level, order, out_view,
                                                 np.asarray(scales, np.float64), sampling_ratio,
                                                 aligned, CHANNEL_BLOCK, get_num_threads())
    return out.astype(features_list[0].dtype, copy=False)


def multiscale_roi_align_backward(grad_output, boxes, batch, shapes, scales, levels,
                                  sampling_ratio, aligned, canonical_scale, canonical_level,
                                  layout, deterministic=False):  # always deterministic here
    """One zero-initialised gradient per level; RoIs grouped by (level, image)."""
    g = _logical(_as_compute(grad_output), layout)
    grads, views = zip(*(_allocate(shape, layout, g.dtype, zeroed=True) for shape in shapes))
    if g.size and all(grad.size for grad in grads):
        level = _fpn_levels(boxes, canonical_scale, canonical_level, levels)
        images = shapes[0][0]
        group = np.where((batch >= 0) & (batch < images), level * images + batch, -1)
        order, begin = _group_by_image(group, len(shapes) * images)
        _cpu_family.multiscale_roi_align_backward(g, boxes, order, begin, list(views),
                                                  np.asarray(scales, np.float64),
                                                  sampling_ratio, aligned, CHANNEL_BLOCK,
                                                  get_num_threads())
    return [grad.astype(grad_output.dtype, copy=False) for grad in grads]
