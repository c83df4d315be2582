"""The RoI family's CPU results, forward and backward (box gradients
included), are the same bits for 1, 2 and 4 threads."""
import numpy as np
import pytest

import cyroi
from strategies import assert_same_bits_for_1_2_4_threads, thread_workload


def ps_ops(f, rois, layout):
    results = []
    for op, backward in [(cyroi.ps_roi_align, cyroi.ps_roi_align_backward),
                         (cyroi.ps_roi_pool, cyroi.ps_roi_pool_backward)]:
        out = op(f, rois, 6, 0.1, layout=layout)
        results += [out, backward(out * 0.37, rois, f.shape, 0.1, layout=layout)]
    return results


def rotated_ops(f, rois, layout):
    angles = np.linspace(-200, 200, len(rois)).astype(rois.dtype)
    b, x1, y1, x2, y2 = rois.T
    rotated = np.column_stack([b, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, angles])
    out = cyroi.roi_align_rotated(f, rotated, (5, 4), 0.1, layout=layout)
    grads = cyroi.roi_align_rotated_backward(out * 0.37, rotated, f.shape, 0.1, layout=layout,
                                             need_rois_grad=True, features=f)
    return [out, *grads]


def align_box_grad(f, rois, layout):
    out = cyroi.roi_align(f, rois, (5, 4), 0.1, 2, True, layout=layout)
    return list(cyroi.roi_align_backward(out * 0.37, rois, f.shape, 0.1, 2, True, layout=layout,
                                         need_rois_grad=True, features=f))


def precise_ops(f, rois, layout):
    out = cyroi.precise_roi_pool(f, rois, (5, 4), 0.1, layout=layout)
    return [out, *cyroi.precise_roi_pool_backward(out * 0.37, rois, f, 0.1, layout=layout)]


def multiscale_ops(f, rois, layout):
    # f's maps as the finest level of a 3-level pyramid (scales 1/8 .. 1/32)
    axes = (2, 3) if layout == "NCHW" else (1, 2)
    pyramid = [f]
    for _ in range(2):
        pyramid.append(np.ascontiguousarray(pyramid[-1][tuple(
            slice(None, None, 2) if axis in axes else slice(None) for axis in range(4))]))
    scales = [1 / 8, 1 / 16, 1 / 32]
    big = rois * [1, 1, 1, 3, 3]  # boxes for every level
    out = cyroi.multiscale_roi_align(pyramid, big, (5, 4), scales, layout=layout)
    grads = cyroi.multiscale_roi_align_backward(out * 0.37, big, [p.shape for p in pyramid],
                                                scales, layout=layout)
    return [out, *grads]


OPS = [ps_ops, rotated_ops, align_box_grad, precise_ops, multiscale_ops]


@pytest.mark.parametrize("ops", OPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_bitwise_identical_for_1_2_4_threads(ops, dtype, layout, restore_threads):
    workload = thread_workload(dtype, 72, 40)  # 72 = 2 * (6 * 6): ps ops too
    assert_same_bits_for_1_2_4_threads(ops, workload, layout)
